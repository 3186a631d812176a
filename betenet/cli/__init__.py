"""The `betenet` console script: one subcommand per job (analyze-a2f, kq-grid, predict, ...).

The subcommands live in this package's modules: ``physics`` (analyze-a2f, kq-grid), ``ensemble``
(predict, evaluate, calibrate, screen, landscape), ``dft`` (dft inputs | run | collect) and ``phonons``.

Each subcommand parses its arguments, calls the package function that does the work and prints
either a human-readable table or JSON. Exit status: 0 when the command did its job; 1 when it ran
but produced nothing usable (``predict`` with no input predicted: its files still hold every row
with its reason); 2 for bad input, with one line naming the input (nothing is written). Numeric
options shared by several subcommands (``--batch-size``, ``--mu-star``, ``--seed``) are checked
before any work (:mod:`betenet.validation`).
Warnings (e.g. about an a2F file) go to stderr, one line each.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Callable

from betenet import validation
from betenet.cli.dft import add_dft_commands
from betenet.cli.ensemble import add_ensemble_commands
from betenet.cli.phonons import add_phonon_commands
from betenet.cli.physics import add_physics_commands
from betenet.errors import InputError
from betenet.runtime import configure

#: Numeric options of several subcommands: argparse attribute → (flag, check from betenet/validation.py).
NUMERIC_OPTIONS = {"batch_size": ("--batch-size", validation.batch_size), "mu_star": ("--mu-star", validation.mu_star),
                   "seed": ("--seed", validation.seed)}


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


def check_numeric_options(args: argparse.Namespace) -> None:
    """Refuse a numeric option out of its range before any work (``InputError`` naming the flag)."""
    for attr, (flag, check) in NUMERIC_OPTIONS.items():
        if getattr(args, attr, None) is not None:
            setattr(args, attr, check(getattr(args, attr), flag))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="betenet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    add_physics_commands(sub)
    add_ensemble_commands(sub)
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
        check_numeric_options(args)
        if hasattr(args, "threads"):  # commands that run the network (betenet/runtime.py)
            configure(threads=args.threads, setting="--threads")
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
