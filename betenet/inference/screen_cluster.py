"""Stage 1 of ``betenet screen --cluster local|slurm``: the pool as a submitit job array, through the path
``betenet phonons --cluster`` uses (:func:`betenet.phonons.cluster.run_on_cluster`: the engine of training's
``hydra/launcher=slurm``), and one merge in the calling process.

The pool is cut into contiguous parts of whole chunks (``chunk_size`` inputs): ``jobs`` parts on ``local``
(submitit's local executor, one torch thread each: the same code path as Slurm, so it is tested here),
one part per ``cluster_chunk`` inputs (:data:`DEFAULT_TASK_INPUTS`) on ``slurm``, resources from
``conf/cluster`` (``cpus_per_task`` torch threads per task). Each array task loads the ensemble once and
predicts its part with the streaming engine of ``betenet predict``
(:func:`betenet.inference.predict.predict_files` on :meth:`InputPool.select
<betenet.inference.stream.InputPool.select>`) into ``stage1/parts/part_<k>.csv`` (+ ``.json``), so a task
that dies or times out keeps every chunk it finished and the same command goes on from there; a part
already complete is not submitted again. The merge concatenates the parts in order into
``stage1/predictions.csv`` and ``.json`` through the same writer (:class:`~betenet.inference.stream.PartialRun`):
as the parts hold the chunks a run without a cluster predicts, the merged files are that run's, byte for
byte. submitit's own files go to ``stage1/cluster/``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

from betenet.errors import InputError

__all__ = ["DEFAULT_TASK_INPUTS", "plan_parts", "predict_on_cluster"]

#: Inputs per Slurm array task by default (``--cluster-chunk``).
DEFAULT_TASK_INPUTS = 10_000
PARTS_DIR, CLUSTER_DIR = "parts", "cluster"


def plan_parts(total: int, n_tasks: int, chunk_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of up to ``n_tasks`` contiguous parts covering ``total`` inputs, each a whole number of
    chunks (the last may end short)."""
    if total <= 0:
        return []
    chunks = math.ceil(total / chunk_size)
    per_part = math.ceil(chunks / max(1, min(int(n_tasks), chunks))) * chunk_size
    return [(start, min(start + per_part, total)) for start in range(0, total, per_part)]


def part_csv(folder: Path, k: int) -> Path:
    return Path(folder) / f"part_{k:05d}.csv"


def _complete(csv_path: Path) -> bool:
    from betenet.inference.predict import spectra_path
    from betenet.inference.stream import partial_dir

    return csv_path.is_file() and spectra_path(csv_path).is_file() and not partial_dir(csv_path).exists()


def _part_task(group: list, cwd: str, inputs: list, ensemble_spec: tuple, predict_options: dict,
               threads: int) -> list:
    """One array task: predict each part of ``group`` (``{"index", "start", "stop", "csv"}``) from the pool of
    ``inputs`` (opened in ``cwd``, so its ids are the calling process's) with the ensemble
    ``load_ensemble(*ensemble_spec)``; returns ``[(part, summary), ...]``."""
    import warnings

    from betenet.inference.ensemble import load_ensemble
    from betenet.inference.predict import predict_files
    from betenet.inference.stream import open_inputs
    from betenet.runtime import configure

    warnings.filterwarnings("ignore", category=UserWarning, module=r"pymatgen(\..*)?")
    os.chdir(cwd)
    configure(threads=threads)
    ensemble = load_ensemble(*ensemble_spec)
    pool = open_inputs(inputs)
    return [(part, predict_files(ensemble, pool.select(part["start"], part["stop"]), part["csv"], progress=False,
                                 **predict_options).summary) for part in group]


def _merge(parts: list[Path], out_csv: Path) -> dict:
    """Concatenate the parts' CSVs and spectra into ``out_csv`` and its ``.json`` (module docstring); returns the
    counts of :func:`~betenet.inference.predict.predict_files`' summary."""
    from betenet.inference.predict import read_table, spectra_path
    from betenet.inference.stream import PartialRun, partial_dir

    shutil.rmtree(partial_dir(out_csv), ignore_errors=True)  # a merge killed half way starts again
    counts = {"inputs": 0, "predicted": 0, "with_warnings": 0}
    default_header = None
    with PartialRun(out_csv, "merge of the array tasks' parts") as run:
        for k, path in enumerate(parts):
            text = path.read_text()
            if k:
                text = text.split("\n", 1)[1]  # the header line once, from the first part
            table = read_table(path, columns=["status", "warnings"])
            predicted = int((table["status"] == "ok").sum())
            counts["inputs"] += len(table)
            counts["predicted"] += predicted
            counts["with_warnings"] += int((table["warnings"] != "").sum())
            spectra = json.loads(spectra_path(path).read_text())
            entries = spectra.pop("entries")
            default_header = default_header or spectra
            run.append(text, entries, [], counts, spectra if predicted else None)
        run.finish(spectra_path(out_csv), default_header)
    return counts


def predict_on_cluster(cluster: str, pool, inputs, out_csv, ensemble_spec: tuple, predict_options: dict, *,
                       jobs: int = 1, cluster_chunk: int | None = None, resources: dict,
                       progress_stream=None, label: str = "screen stage 1") -> dict:
    """Predict ``pool`` (opened from ``inputs``) into ``out_csv`` as a job array (module docstring);
    ``predict_options``: the keyword arguments of ``predict_files`` (``chunk_size`` among them). Returns the
    summary counts with ``carried_over`` (inputs of parts complete before, plus those carried over inside a
    resumed part). Raises ``InputError`` when a task failed (the finished parts are kept)."""
    from betenet.phonons.cluster import n_groups, run_on_cluster
    from betenet.progress import ProgressLine

    out_csv = Path(out_csv)
    folder = out_csv.parent / PARTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    chunk_size = int(predict_options["chunk_size"])
    spans = plan_parts(pool.total, n_groups(cluster, pool.total, jobs, cluster_chunk or DEFAULT_TASK_INPUTS),
                       chunk_size)
    parts = [{"index": k, "start": a, "stop": b, "csv": str(part_csv(folder, k))} for k, (a, b) in enumerate(spans)]
    todo = [p for p in parts if not _complete(Path(p["csv"]))]
    carried = sum(p["stop"] - p["start"] for p in parts if p not in todo)
    bar = ProgressLine(pool.total, label, unit="input", every=1, stream=progress_stream, initial=carried)
    if carried:
        bar.note(f"{label}: {carried} inputs carried over (parts complete in an earlier run into this --out)")
    failed: list[str] = []

    def done(part, summary):
        nonlocal carried
        carried += int(summary.get("carried_over", 0))
        bar.update(part["stop"] - part["start"])

    def lost(part, why):
        failed.append(f"inputs {part['start']}-{part['stop'] - 1}: {why}")
        bar.note(f"{label}: array task of inputs {part['start']}-{part['stop'] - 1} failed ({why})")

    threads = 1 if cluster == "local" else int(resources.get("cpus_per_task") or 1)
    try:
        if todo:
            run_on_cluster(cluster, out_csv.parent / CLUSTER_DIR, [[p] for p in todo], _part_task,
                           (os.getcwd(), [str(t) for t in inputs], ensemble_spec, predict_options, threads),
                           on_done=done, on_failed=lost, resources=resources, name="betenet-screen")
    finally:
        bar.close()
    if failed:
        raise InputError(f"--cluster {cluster}", f"{len(failed)} of {len(todo)} array tasks failed ({failed[0]}); "
                                                 "their finished chunks are kept: run the same command again")
    counts = _merge([Path(p["csv"]) for p in parts], out_csv)
    return {**counts, "failed": counts["inputs"] - counts["predicted"], "carried_over": carried,
            "array_tasks": len(todo)}
