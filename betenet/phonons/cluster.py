"""``betenet phonons --cluster local|slurm``: the pool as a submitit job array, the engine training
already uses for Slurm (Hydra's submitit launcher), and one merge step in the calling process.

The calling process plans the run as without a cluster (what failed, what is done, what is too large;
:func:`betenet.phonons.batch.run_batch`) and holds the output folder's lock while the array runs. The
structures still to compute are dealt round-robin, largest first, into the array tasks, so every task
gets a like share of large and small ones:

* ``local``: ``jobs`` tasks run at once on this machine (submitit's ``LocalExecutor``), one torch thread
  each; the same code path as Slurm, so it is tested here;
* ``slurm``: tasks of ``chunk`` structures (:data:`DEFAULT_CHUNK`), resources from ``conf/cluster``
  (``partition``, ``cpus_per_task``, ``mem_gb``, ``timeout_min``, ``array_parallelism``; ``gpus_per_node``
  only with ``--device cuda``), each setting overridable (``--cluster-option partition=gpu``); a task
  runs ``cpus_per_task`` worker processes (:mod:`betenet.phonons.workers`).

Each task computes its structures with the same per-structure function as a local run, which writes
that structure's files at once, so a task that dies (or times out) keeps what it finished: its other
structures are reported failed with the task's error, and the same command computes them again. As the
tasks finish, their rows join the run's report and progress line; at the end the calling process
rebuilds ``labels.json`` and the report (the merge). submitit's own files (pickled tasks, logs) go to
``<out>/cluster/``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

from betenet.errors import InputError

#: Executors and the structures per Slurm array task by default.
CLUSTERS = ("local", "slurm")
DEFAULT_CHUNK = 100
#: Folder of submitit's files inside the output folder; seconds between two looks at the tasks.
CLUSTER_DIR = "cluster"
POLL_SECONDS = 1.0
#: conf/cluster keys and what submitit calls them (``slurm_`` settings apply to Slurm only).
_GENERIC = {"cpus_per_task": "cpus_per_task", "mem_gb": "mem_gb", "timeout_min": "timeout_min",
            "gpus_per_node": "gpus_per_node"}
_SLURM = {"partition": "slurm_partition", "array_parallelism": "slurm_array_parallelism"}


def cluster_resources(overrides=(), device: str = "cpu") -> dict:
    """``conf/cluster/default.yaml`` with ``overrides`` (``key=value`` texts) applied; ``gpus_per_node`` 0
    unless ``device`` is cuda. Unknown keys raise ``InputError``."""
    import yaml

    from betenet.conf import CONF_DIR

    resources = dict(yaml.safe_load((CONF_DIR / "cluster" / "default.yaml").read_text()) or {})
    for text in overrides or ():
        key, sep, value = str(text).partition("=")
        if not sep or key not in resources:
            raise InputError(f"--cluster-option {text}", f"give KEY=VALUE with KEY one of {', '.join(resources)}")
        resources[key] = yaml.safe_load(value)
    if device != "cuda":
        resources["gpus_per_node"] = 0
    return resources


def deal(tasks: list, n_groups: int) -> list[list]:
    """``tasks`` (largest first) dealt round-robin into ``n_groups`` non-empty groups."""
    n_groups = max(1, min(int(n_groups), len(tasks)))
    return [tasks[g::n_groups] for g in range(n_groups)]


def _executor(cluster: str, folder: Path, resources: dict, name: str):
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params = {submitit_key: resources[key] for key, submitit_key in _GENERIC.items()
              if resources.get(key) is not None}
    if cluster == "slurm":
        params.update({submitit_key: resources[key] for key, submitit_key in _SLURM.items()
                       if resources.get(key) is not None})
    executor.update_parameters(name=name, **params)
    return executor


def _why(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else type(exc).__name__
    return " ".join(f"cluster task failed: {last}".split())[:300]


def run_on_cluster(cluster: str, folder, groups: list[list], task_fn: Callable, args: tuple, on_done: Callable,
                   on_failed: Callable, resources: dict, name: str = "betenet-phonons") -> None:
    """Submit ``task_fn(group, *args)`` for every group as one job array on ``cluster`` (files in
    ``folder``); ``on_done(task, row)`` for each ``(task, row)`` a finished job returns, ``on_failed(task,
    reason)`` for each task of a job that failed. Interrupted: the jobs not finished are cancelled."""
    if cluster not in CLUSTERS:
        raise InputError(f"--cluster {cluster}", f"unknown; use one of {', '.join(CLUSTERS)}")
    executor = _executor(cluster, Path(folder), resources, name)
    with executor.batch():
        jobs = [executor.submit(task_fn, group, *args) for group in groups]
    pending = dict(zip(jobs, groups))
    try:
        while pending:
            finished = [job for job in pending if job.done()]
            for job in finished:
                group = pending.pop(job)
                try:
                    rows = job.result()
                except Exception as exc:  # the job died, timed out or raised: its unfinished structures
                    for task in group:
                        on_failed(task, _why(exc))
                    continue
                for task, row in rows:
                    on_done(task, row)
            if pending and not finished:
                time.sleep(POLL_SECONDS)
    except BaseException:
        for job in pending:
            try:
                job.cancel(check=False)
            except Exception:
                pass
        raise


def n_groups(cluster: str, n_tasks: int, jobs: int, chunk: int | None) -> int:
    """Array tasks: ``jobs`` for ``local``, ``ceil(n / chunk)`` for ``slurm``."""
    if cluster == "local":
        return max(1, jobs)
    return max(1, math.ceil(n_tasks / max(1, int(chunk or DEFAULT_CHUNK))))
