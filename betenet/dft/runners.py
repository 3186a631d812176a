"""Execution of material folders: a local runner (serial or under ``mpirun -np N``) and a cluster
runner that hands whole materials to Slurm through submitit (no scheduler of our own).

:func:`run_material` walks the steps of ``workflow.json`` in order, skips those ``state.json``
records as done and runs the rest, each as ``[mpi prefix] program -in step.in > step.out`` in the
material folder (stderr to ``step.err``). A step that fails (non-zero exit, no ``JOB DONE``, a
missing product) is recorded ``failed`` and raises :class:`StepFailed`, which names its output file.
:func:`submit_materials` submits one submitit job per folder; each job calls :func:`run_material`,
so a requeued or resubmitted job resumes where the last one stopped.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

from betenet.dft.inputs import prepare_after_relax
from betenet.dft.settings import DFTSettings
from betenet.dft.state import MaterialState, locked, missing_products, output_finished
from betenet.dft.workflow import Step, Workflow, read_workflow
from betenet.errors import InputError

#: Lines of a failed step's output quoted in the error.
_TAIL_LINES = 6


class StepFailed(InputError):
    """A step of the chain did not finish; ``subject`` is its output file, ``reason`` says why."""


def command_line(step: Step, settings: DFTSettings, ranks: int) -> list[str]:
    """argv of a QE step: ``[mpi prefix] program -in input``; MPI only for ``run.parallel`` programs."""
    exe = settings.run.executables.get(step.program, step.program)
    prefix = []
    if ranks > 1 and step.program in settings.run.parallel:
        prefix = shlex.split(settings.run.mpi.format(np=ranks))
    return prefix + shlex.split(exe) + ["-in", step.input]


def _tail(path: Path) -> str:
    if not path.is_file():
        return ""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return " | ".join(lines[-_TAIL_LINES:])


def _run_qe_step(workdir: Path, wf: Workflow, step: Step, state: MaterialState, ranks: int) -> float:
    deck = workdir / step.input
    if not deck.is_file():
        raise InputError(deck, f"input deck of step {step.name} missing")
    argv = command_line(step, wf.settings, ranks)
    env = {**os.environ, **{k: str(v) for k, v in wf.settings.run.env.items()}}
    state.started(step.name, shlex.join(argv))
    t0 = time.monotonic()
    out, err = workdir / step.output, workdir / f"{step.name}.err"
    try:
        with open(out, "w") as fo, open(err, "w") as fe:
            rc = subprocess.run(argv, cwd=workdir, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=env).returncode
    except FileNotFoundError:
        state.failed(step.name, time.monotonic() - t0, f"{argv[0]} not found")
        raise StepFailed(out, f"step {step.name}: program {argv[0]!r} not found (set run.executables)") from None
    seconds = time.monotonic() - t0
    problems = []
    if rc != 0:
        problems.append(f"exit status {rc}")
    if not output_finished(workdir, step):
        problems.append("no 'JOB DONE' in the output")
    missing = missing_products(workdir, step)
    if missing:
        problems.append(f"products missing: {missing}")
    if problems:
        reason = "; ".join(problems)
        state.failed(step.name, seconds, reason)
        tail = _tail(out) or _tail(err)
        ending = f"; ends: {tail}" if tail else ""
        raise StepFailed(out, f"step {step.name} ({step.program}) failed: {reason}{ending}")
    state.done(step.name, seconds, step.products)
    return seconds


def _run_internal_step(workdir: Path, step: Step, state: MaterialState) -> float:
    state.started(step.name, "betenet: write the decks from the relaxed cell")
    t0 = time.monotonic()
    try:
        prepare_after_relax(workdir)
    except InputError as err:
        state.failed(step.name, time.monotonic() - t0, str(err))
        raise
    seconds = time.monotonic() - t0
    missing = missing_products(workdir, step)
    if missing:
        state.failed(step.name, seconds, f"products missing: {missing}")
        raise StepFailed(workdir, f"step {step.name} wrote no {missing}")
    state.done(step.name, seconds, step.products)
    return seconds


def run_material(workdir, np: int | None = None, until: str | None = None, dry_run: bool = False) -> dict:
    """Run the unfinished steps of a material folder, in order; finished ones are never rerun.

    ``np``: MPI ranks (default ``run.np`` of the settings); ``until``: stop after this step;
    ``dry_run``: list the commands of the pending steps without running anything.
    Returns ``dict(id, folder, ran, skipped, pending, seconds)``.
    """
    workdir = Path(workdir).resolve()
    wf = read_workflow(workdir)
    names = [s.name for s in wf.steps]
    if until is not None and until not in names:
        raise InputError(until, f"no such step; the steps are {names}")
    ranks = int(np if np is not None else wf.settings.run.np)
    if ranks < 1:
        raise InputError("np", f"MPI ranks must be >= 1, got {ranks}")
    ran, skipped, pending, seconds = [], [], [], {}
    with locked(workdir):
        state = MaterialState(workdir)
        for step in wf.steps:
            if state.is_done(step.name):
                missing = missing_products(workdir, step)
                if missing:
                    raise InputError(workdir, f"step {step.name} is recorded done but {missing} are gone; "
                                              f"finished steps are not rerun: restore them or start a new folder")
                skipped.append(step.name)
            elif dry_run:
                pending.append(step.name if step.internal else shlex.join(command_line(step, wf.settings, ranks)))
            else:
                if step.internal:
                    seconds[step.name] = round(_run_internal_step(workdir, step, state), 3)
                else:
                    seconds[step.name] = round(_run_qe_step(workdir, wf, step, state, ranks), 3)
                ran.append(step.name)
            if step.name == until:
                break
    return {"id": wf.id, "folder": str(workdir), "ran": ran, "skipped": skipped, "pending": pending,
            "seconds": seconds}


def submit_materials(workdirs, cluster: str | None = None, folder="dft_jobs", np: int | None = None,
                     timeout_min: int = 2880, mem_gb: float | None = None, partition: str | None = None,
                     until: str | None = None):
    """Submit one submitit job per material folder; each runs :func:`run_material` (resumable).

    ``cluster``: None (Slurm if available, else local), ``"slurm"``, ``"local"`` or ``"debug"``
    (runs in this process when the result is asked for). ``np`` ranks get one CPU each.
    Every folder is checked before anything is submitted. Returns the submitit jobs.
    """
    import submitit

    paths = [Path(d).resolve() for d in workdirs]
    for p in paths:
        read_workflow(p)
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params = {"timeout_min": int(timeout_min), "nodes": 1, "tasks_per_node": 1,
              "cpus_per_task": int(np or 1), "name": "betenet-dft"}
    if mem_gb is not None:
        params["mem_gb"] = mem_gb
    if partition is not None:
        params["slurm_partition"] = partition
    executor.update_parameters(**params)
    return [executor.submit(run_material, str(p), np, until) for p in paths]
