"""``betenet phonons``: site-projected phonon DOS of structures from a machine-learned potential,
written as a dataset folder in the generic directory format (see :mod:`betenet.phonons.batch`).

``add_phonon_commands(subparsers)`` registers the command on the main parser; the handler returns a
summary dict that the main CLI prints (``--json`` for JSON) and raises
:class:`betenet.errors.InputError` (exit status 2) only when no structure succeeded or the settings
are unusable.
"""

from __future__ import annotations

import argparse

from betenet.phonons.potentials import DEFAULT_POTENTIAL, DEVICES, POTENTIALS

#: ``betenet phonons --help``'s description.
DESCRIPTION = ("Site-projected phonon DOS of structures from a machine-learned interatomic potential (phonopy "
               "finite displacements), written as a dataset folder in the directory format (structures/, "
               "labels.json with the phdos_coarse_* columns) that CPD/FPD training and prediction read. "
               "Finished structures are skipped when the command runs again.")


def cmd_phonons(args: argparse.Namespace) -> dict:
    from betenet.phonons.batch import run_batch
    from betenet.phonons.settings import PhononSettings

    settings = PhononSettings(potential=args.potential, supercell=args.supercell, mesh=args.mesh,
                              fine_length_A=args.fine_length, displacement_A=args.displacement,
                              sigma_meV=args.sigma, relax=args.relax, device=args.device)
    kinds = ("coarse", "fine") if args.fine else ("coarse",)
    return run_batch(args.inputs, args.out, settings, kinds=kinds, cache_dir=args.cache_dir)


def add_phonon_commands(sub) -> None:
    from betenet.phonons.settings import PhononSettings

    defaults = PhononSettings()
    p = sub.add_parser("phonons", help="site-projected phonon DOS from an ML potential → dataset folder",
                       description=DESCRIPTION)
    p.add_argument("inputs", nargs="+", metavar="STRUCTURE_OR_DIR",
                   help="structure files (CIF / POSCAR / extxyz), folders, globs, or a dataset folder "
                        "(structures/ + labels, whose labels are carried over)")
    p.add_argument("--out", required=True, help="output dataset folder (created; resumed when it exists)")
    p.add_argument("--potential", choices=sorted(POTENTIALS), default=DEFAULT_POTENTIAL,
                   help=f"ML potential (default {DEFAULT_POTENTIAL}: closest to DFT on fcc Al, see README)")
    p.add_argument("--supercell", type=int, default=defaults.supercell,
                   help="coarse supercell N (N×N×N; the paper's 2)")
    p.add_argument("--mesh", type=int, default=defaults.mesh, help="q-mesh per axis (Γ-centred; the paper's 20)")
    p.add_argument("--fine", action="store_true", help="also the fine PhDOS (a larger supercell, see --fine-length)")
    p.add_argument("--fine-length", type=float, default=defaults.fine_length_A,
                   help="fine supercell: at least this long (Å) along each lattice vector")
    p.add_argument("--displacement", type=float, default=defaults.displacement_A, help="finite displacement (Å)")
    p.add_argument("--sigma", type=float, default=defaults.sigma_meV, help="Gaussian smearing of the DOS (meV)")
    p.add_argument("--relax", action="store_true",
                   help="relax the positions first with the potential (cell fixed, symmetry kept)")
    p.add_argument("--device", choices=DEVICES, default="cpu", help="where the potential runs")
    p.add_argument("--cache-dir", default=None,
                   help="PhDOS cache (default $BETENET_CACHE/phonons or ~/.cache/betenet/phonons)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_phonons)

