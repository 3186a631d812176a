"""The `betenet` console script: one subcommand per job (analyze-a2f, kq-grid, ...).

Each subcommand parses its arguments, calls the package function that does the work and prints
either a human-readable table or JSON. Exit status: 0 when the command did its job; 1 when it ran
but produced nothing usable (``predict`` with no input predicted: its files still hold every row
with its reason); 2 for bad input, with one line naming the input (nothing is written).
Warnings (e.g. about an a2F file) go to stderr, one line each.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Callable

import numpy as np

from betenet.dft.cli import add_dft_commands
from betenet.errors import InputError
from betenet.evaluation.commands import add_evaluation_commands
from betenet.phonons.cli import add_phonon_commands
from betenet.physics.units import MU_STAR_DEFAULT
from betenet.runtime import configure


def _print_result(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        if key == "warnings":  # printed to stderr
            continue
        if isinstance(value, float):
            value = f"{value:.6g}"
        print(f"{key:<{width}}  {value}")


def cmd_analyze_a2f(args: argparse.Namespace) -> dict:
    from betenet.physics.a2f_files import check_a2f_range, read_a2f
    from betenet.physics.eliashberg_solver import eliashberg_tc
    from betenet.physics.properties import a2f_properties, mcmillan_tc, spectrum_warnings

    spec = read_a2f(args.file, format=args.format)
    check_a2f_range(spec)  # raises InputError for values the formulas cannot integrate
    try:
        with np.errstate(all="ignore"):
            props = a2f_properties(spec.omega_meV, spec.a2f, mu_star=args.mu_star)
            result = {"lambda": props["lambda"], "omega_log_K": props["omega_log_K"],
                      "omega_2_K": props["omega_2_K"], "tc_allen_dynes_K": props["tc_K"],
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
    result["warnings"] = [f"{spec.source}: {note}" for note in notes]  # printed on stderr by main()
    return result


def cmd_kq_grid(args: argparse.Namespace) -> dict:
    from betenet.physics.grids import kq_grid_report

    return kq_grid_report(args.structure, k_density=args.k_density, q_density=args.q_density)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="betenet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("analyze-a2f", help="lambda, omega_log, omega_2 and Tc of an a2F file")
    p.add_argument("file", help="QE matdyn a2F.dosN file or two columns (meV, a2F)")
    p.add_argument("--format", choices=["auto", "qe", "columns"], default="auto")
    p.add_argument("--mu-star", type=float, default=MU_STAR_DEFAULT, help="Coulomb pseudopotential mu*")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_analyze_a2f)

    p = sub.add_parser("kq-grid", help="standardized commensurate k/q grids of a structure")
    p.add_argument("structure", help="CIF / POSCAR / extxyz file")
    p.add_argument("--k-density", type=float, default=40.0, help="k-points per 1/Å (no 2π)")
    p.add_argument("--q-density", type=float, default=15.0, help="q-points per 1/Å (no 2π)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_kq_grid)

    add_evaluation_commands(sub)
    add_dft_commands(sub)
    add_phonon_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # CIF parsers warn about harmless format details; the CLI reports only real errors.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pymatgen(\..*)?")
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], dict] = args.func
    try:
        if hasattr(args, "threads"):  # commands that run the network (betenet/runtime.py)
            configure(threads=args.threads, source="--threads")
        result = func(args)
    except InputError as err:
        print(f"betenet {args.command}: error: {err}", file=sys.stderr)
        return 2
    for note in result.get("warnings") or ():
        print(f"betenet {args.command}: warning: {note}", file=sys.stderr)
    _print_result(result, getattr(args, "json", False))
    status = int(result.get("exit_status", 0))
    if status:
        print(f"betenet {args.command}: error: no input could be predicted ({result.get('inputs', 0)} inputs; "
              f"reasons in the status column of {result.get('out')})", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
