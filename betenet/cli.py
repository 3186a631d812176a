"""The `betenet` console script: one subcommand per job (analyze-a2f, kq-grid, ...).

Each subcommand parses its arguments, calls the package function that does the work and prints
either a human-readable table or JSON. Bad input ends with one line naming the input and a
non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Callable

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
        if isinstance(value, float):
            value = f"{value:.6g}"
        print(f"{key:<{width}}  {value}")


def cmd_analyze_a2f(args: argparse.Namespace) -> dict:
    from betenet.physics.a2f_files import read_a2f
    from betenet.physics.eliashberg import a2f_properties
    from betenet.physics.eliashberg_solver import eliashberg_tc

    spec = read_a2f(args.file, format=args.format)
    result = a2f_properties(spec.omega_meV, spec.a2f, mu_star=args.mu_star)
    result["tc_eliashberg_K"] = float(eliashberg_tc(spec.omega_meV, spec.a2f, mu_star=args.mu_star))
    if spec.lambda_reported is not None:
        result["lambda_reported"] = spec.lambda_reported
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
    _print_result(result, getattr(args, "json", False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
