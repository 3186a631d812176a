"""``betenet dft inputs | run | collect``: the Quantum ESPRESSO data pipeline from the command line.

``add_dft_commands(subparsers)`` registers ``dft`` with its three subcommands on the main
parser's subparsers; each handler returns a dict that the main CLI prints (``--json`` for JSON)
and raises :class:`betenet.errors.InputError` for bad input.
"""

from __future__ import annotations

import argparse

from betenet.errors import InputError


def _settings(args):
    from betenet.dft.settings import load_settings

    return load_settings(args.profile, args.set)


def cmd_inputs(args: argparse.Namespace) -> dict:
    from betenet.dft.inputs import write_inputs

    return write_inputs(args.structure, args.out, _settings(args), entry_id=args.id)


def cmd_run(args: argparse.Namespace) -> dict:
    from betenet.dft.runners import run_material, submit_materials

    if args.cluster is None:
        if len(args.folders) == 1:
            return run_material(args.folders[0], np=args.np, until=args.until, dry_run=args.dry_run)
        results, failed = {}, {}
        for d in args.folders:  # one failing material does not stop the others
            try:
                results[d] = run_material(d, np=args.np, until=args.until, dry_run=args.dry_run)
            except InputError as err:
                failed[d] = str(err)
        if failed:
            raise InputError("dft run", f"{len(failed)} of {len(args.folders)} folders failed: "
                             + "; ".join(failed.values()))
        return {r["id"]: r for r in results.values()}
    jobs = submit_materials(args.folders, cluster=args.cluster, folder=args.jobs_folder, np=args.np,
                            timeout_min=args.timeout_min, mem_gb=args.mem_gb, partition=args.partition,
                            until=args.until)
    out = {"cluster": args.cluster, "jobs_folder": args.jobs_folder,
           "jobs": {d: j.job_id for d, j in zip(args.folders, jobs)}}
    if args.wait:
        out["results"] = {d: j.result() for d, j in zip(args.folders, jobs)}
    return out


def cmd_collect(args: argparse.Namespace) -> dict:
    from betenet.dft.collect import collect

    return collect(args.folders, args.out, format=args.format, keep_rejected=args.keep_rejected)


def add_dft_commands(subparsers) -> argparse.ArgumentParser:
    """Register ``dft inputs``, ``dft run`` and ``dft collect`` on the main CLI's subparsers."""
    from betenet.dft.settings import profile_names

    dft = subparsers.add_parser("dft", help="Quantum ESPRESSO el-ph pipeline: inputs, run, collect")
    sub = dft.add_subparsers(dest="dft_command", required=True)

    p = sub.add_parser("inputs", help="write the input decks and run script of one structure")
    p.add_argument("structure", help="CIF / POSCAR / extxyz file")
    p.add_argument("--out", required=True, help="material folder to create")
    p.add_argument("--profile", default="paper",
                   help=f"settings profile ({', '.join(profile_names())}) or a YAML file (default: paper)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set run.np=4 --set grids.q_density=10 (repeatable)")
    p.add_argument("--id", default=None, help="dataset id (default: the structure file's stem)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inputs)

    p = sub.add_parser("run", help="run (resume) material folders locally or submit them with submitit")
    p.add_argument("folders", nargs="+", help="material folders written by `dft inputs`")
    p.add_argument("--np", type=int, default=None, help="MPI ranks (default: run.np of the profile)")
    p.add_argument("--until", default=None, help="stop after this step")
    p.add_argument("--dry-run", action="store_true", help="list the pending commands only")
    p.add_argument("--cluster", choices=["slurm", "local", "debug"], default=None,
                   help="submit one submitit job per folder instead of running here")
    p.add_argument("--jobs-folder", default="dft_jobs", help="submitit log folder (with --cluster)")
    p.add_argument("--timeout-min", type=int, default=2880, help="job time limit (with --cluster)")
    p.add_argument("--mem-gb", type=float, default=None, help="job memory (with --cluster)")
    p.add_argument("--partition", default=None, help="Slurm partition (with --cluster slurm)")
    p.add_argument("--wait", action="store_true", help="wait for the submitted jobs and report them")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("collect", help="filter finished folders and write them as a dataset")
    p.add_argument("folders", nargs="+", help="finished material folders")
    p.add_argument("--out", required=True, help="dataset root (created or extended)")
    p.add_argument("--format", choices=["directory", "release"], default="directory",
                   help="generic directory format (labels.json) or the release's database.json")
    p.add_argument("--keep-rejected", action="store_true", help="write filtered materials too")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_collect)
    return dft
