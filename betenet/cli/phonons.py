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
               "labels.json with the phdos_coarse_* columns) that CPD/FPD training and prediction read, plus "
               "phonopy's own phonopy_params.yaml per structure (phonopy/<id>/<kind>/; with --plot, a band "
               "structure and DOS figure). Structures run largest first, on --jobs worker processes; "
               "finished structures are skipped when the command runs again.")


def cmd_phonons(args: argparse.Namespace) -> dict:
    from betenet.phonons.batch import run_batch
    from betenet.phonons.settings import PhononSettings

    settings = PhononSettings(potential=args.potential, supercell=args.supercell, mesh=args.mesh,
                              fine_length_A=args.fine_length, displacement_A=args.displacement,
                              sigma_meV=args.sigma, relax=args.relax, device=args.device, max_atoms=args.max_atoms,
                              batch_edges=args.batch_edges)
    kinds = ("coarse", "fine") if args.fine else ("coarse",)
    return run_batch(args.inputs, args.out, settings, kinds=kinds, cache_dir=args.cache_dir, jobs=args.jobs,
                     threads=args.threads if args.jobs > 1 else None, plot=args.plot,
                     progress_every=args.progress_every, cluster=args.cluster, cluster_chunk=args.cluster_chunk,
                     cluster_options=args.cluster_option)


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
    p.add_argument("--device", choices=DEVICES, default="cpu",
                   help="where the potential runs (cuda: refused with a reason where torch sees no GPU)")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes, each loading the potential once and using --threads torch threads "
                        "(1 when not given); 1: in this process")
    p.add_argument("--max-atoms", type=int, default=defaults.max_atoms,
                   help="structures with more atoms in the cell are skipped with a reason (phonons.max_atoms)")
    p.add_argument("--batch-edges", type=int, default=None,
                   help="graph edges per batched forward pass of the potential (default: 6000 on cpu, 400000 on "
                        "cuda; 0: one displaced supercell at a time); results do not depend on it")
    p.add_argument("--plot", action="store_true",
                   help="also draw each structure's band structure and PhDOS (phonopy/<id>/<kind>/band_dos.png)")
    p.add_argument("--progress-every", type=int, default=None, metavar="N",
                   help="when stderr is not a terminal: a progress line every N structures (default: about 1 %% "
                        "of them); on a terminal a bar")
    p.add_argument("--cluster", choices=["local", "slurm"], default=None,
                   help="run the structures as a submitit job array: local (--jobs tasks on this machine) or "
                        "slurm (tasks of --cluster-chunk structures, resources from conf/cluster); this process "
                        "waits and merges")
    p.add_argument("--cluster-chunk", type=int, default=None, metavar="N",
                   help="--cluster slurm: structures per array task (default 100)")
    p.add_argument("--cluster-option", action="append", default=[], metavar="KEY=VALUE",
                   help="override a conf/cluster setting (partition, cpus_per_task, mem_gb, timeout_min, "
                        "array_parallelism, gpus_per_node); repeat for several")
    p.add_argument("--cache-dir", default=None,
                   help="PhDOS cache (default $BETENET_CACHE/phonons or ~/.cache/betenet/phonons)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's choice; with --jobs > 1: per worker, default 1)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_phonons)

