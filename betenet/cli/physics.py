"""``betenet analyze-a2f`` and ``betenet kq-grid``: the physics of one a2F file and the k/q grids of one
structure file."""

from __future__ import annotations

import argparse

import numpy as np

from betenet.errors import InputError
from betenet.physics.units import MU_STAR_DEFAULT


def cmd_analyze_a2f(args: argparse.Namespace) -> dict:
    from betenet.physics.a2f_files import check_a2f_range, read_a2f
    from betenet.physics.eliashberg_solver import eliashberg_tc
    from betenet.physics.properties import TC_ALLEN_DYNES, a2f_properties, mcmillan_tc, spectrum_warnings

    spec = read_a2f(args.file, format=args.format)
    check_a2f_range(spec)  # raises InputError for values the formulas cannot integrate
    try:
        with np.errstate(all="ignore"):
            props = a2f_properties(spec.omega_meV, spec.a2f, mu_star=args.mu_star)
            result = {"lambda": props["lambda"], "omega_log_K": props["omega_log_K"],
                      "omega_2_K": props["omega_2_K"], TC_ALLEN_DYNES: props["tc_K"],
                      "tc_mcmillan_K": float(mcmillan_tc(props["lambda"], props["omega_log_K"], args.mu_star)),
                      "tc_eliashberg_K": float(eliashberg_tc(spec.omega_meV, spec.a2f, mu_star=args.mu_star))}
        finite = all(np.isfinite(v) for v in result.values())
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        finite = False
    if not finite:
        w, a = spec.omega_meV, spec.a2f
        raise InputError(args.file, f"lambda and Tc are not finite for this spectrum (frequencies {w.min():.3g} to "
                                    f"{w.max():.3g} meV, a2F {a.min():.3g} to {a.max():.3g}); check the values")
    if spec.lambda_reported is not None:
        result["lambda_reported"] = spec.lambda_reported
    notes, facts = spectrum_warnings(spec.omega_meV, spec.a2f)
    result["negative_lambda_fraction"] = facts["negative_lambda_fraction"]
    result["warnings"] = [f"{spec.path}: {note}" for note in notes]  # printed on stderr by main()
    return result


def cmd_kq_grid(args: argparse.Namespace) -> dict:
    from betenet.data.structures import load_structure
    from betenet.physics.grids import kq_grid_report

    structure = load_structure(args.structure)
    return kq_grid_report(structure, k_density=args.k_density, q_density=args.q_density, name=args.structure)


def add_physics_commands(sub) -> None:
    """Register analyze-a2f and kq-grid on the ``betenet`` subparsers."""
    p = sub.add_parser("analyze-a2f", help="lambda, omega_log, omega_2 and Tc of an a2F file")
    p.add_argument("file", help="QE matdyn a2F.dosN file or two columns (meV, a2F)")
    p.add_argument("--format", choices=["auto", "qe", "columns"], default="auto",
                   help="qe: QE matdyn a2F.dosN (frequencies in Ry, total a2F, 'lambda =' line); columns: two "
                        "columns, frequency in meV and a2F ('#' comments); auto: qe when the file looks like it")
    p.add_argument("--mu-star", type=float, default=MU_STAR_DEFAULT, help="Coulomb pseudopotential mu*, in [0, 0.4]")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_analyze_a2f)

    p = sub.add_parser("kq-grid", help="standardized commensurate k/q grids of a structure")
    p.add_argument("structure", help="CIF / POSCAR / extxyz file")
    p.add_argument("--k-density", type=float, default=40.0, help="k-points per 1/Å (no 2π)")
    p.add_argument("--q-density", type=float, default=15.0, help="q-points per 1/Å (no 2π)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_kq_grid)
