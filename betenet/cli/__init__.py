"""The `betenet` console script: one subcommand per job (analyze-a2f, kq-grid, predict, ...).

The subcommands live in this package's modules: ``physics`` (analyze-a2f, kq-grid), ``ensemble``
(predict, evaluate, calibrate, screen, landscape), ``dft`` (dft inputs | run | collect) and ``phonons``.

Each subcommand parses its arguments, calls the package function that does the work and prints
either a human-readable table or JSON. Exit status: 0 when the command did its job; 1 when it ran
but produced nothing usable (``predict`` with no input predicted: its files still hold every row
with its reason); 2 for bad input, with one line naming the input (nothing is written). Numeric
options shared by several subcommands (``--batch-size``, ``--mu-star``, ``--seed``) are checked
before any work (:mod:`betenet.validation`).
Warnings (e.g. about an a2F file) go to stderr, one line each. A command whose output file went to
stdout (``--out -``: its summary's ``out`` is ``-``) leaves stdout to that file: no summary is printed.
Every subcommand's ``--help`` shows each option's default (:class:`HelpFormatter`); ``betenet --version``
prints the installed version.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from importlib import metadata
from typing import Callable

from betenet import validation
from betenet.cli.dft import add_dft_commands
from betenet.cli.ensemble import add_ensemble_commands
from betenet.cli.phonons import add_phonon_commands
from betenet.cli.physics import add_physics_commands
from betenet.errors import InputError
from betenet.files import STDOUT
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


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` with each option's default, ``(default: 2)``, unless its help already names one or
    there is nothing to show (None, a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text, default = action.help or "", action.default
        nothing = default is None or default is False or default is argparse.SUPPRESS or default == []
        if "default" in text or nothing or not action.option_strings:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def version() -> str:
    """The installed package's version (its metadata; the source's when not installed)."""
    try:
        return metadata.version("betenet")
    except metadata.PackageNotFoundError:
        from betenet import __version__

        return __version__


def _subparsers(parser: argparse.ArgumentParser):
    """(parser, its help line) of every subcommand below ``parser``, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield sub, helps.get(name)
                yield from _subparsers(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="betenet", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    add_physics_commands(sub)
    add_ensemble_commands(sub)
    add_dft_commands(sub)
    add_phonon_commands(sub)
    for p, line in _subparsers(parser):  # defaults in every --help; the one-line help as description
        p.formatter_class = HelpFormatter
        if p.description is None and line:
            p.description = line[0].upper() + line[1:] + ("" if line.endswith(".") else ".")
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
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback; what was finished stays written
        print(f"betenet {args.command}: interrupted; what was finished is kept (run the same command again to "
              "go on)", file=sys.stderr)
        return 130
    for note in result.get("warnings") or ():
        print(f"betenet {args.command}: warning: {note}", file=sys.stderr)
    to_stdout = result.get("out") == STDOUT
    if not to_stdout:
        _print_result(result, getattr(args, "json", False))
    status = int(result.get("exit_status", 0))
    if status:
        where, column = ("the CSV on stdout" if to_stdout else result.get("out")), "status"
        if result.get("dropped_file"):  # screen: every input's reason in dropped.csv
            where, column = result["dropped_file"], "reason"
        print(f"betenet {args.command}: error: no input could be predicted ({result.get('inputs', 0)} inputs; "
              f"reasons in the {column} column of {where})", file=sys.stderr)
    return status
