"""``betenet screen`` on unlabelled structures: the paper's two-stage funnel (Fig. 5) as one streaming,
resumable command, :func:`screen_inputs`.

Stage 1 ranks the whole pool with a structure-only (or pretrained-feature) ensemble, read and predicted a
chunk at a time by the engine of ``betenet predict`` (:func:`betenet.inference.predict.predict_files`: files,
folders, globs, multi-structure extxyz, ASE databases, list files; memory flat in the pool size; a progress
line), or, with ``cluster``, as a submitit job array of chunks (:mod:`betenet.inference.screen_cluster`). With
a second ensemble, the top of that ranking gets the PhDOS that ensemble reads from the phonons engine and is
ranked again by it (:mod:`betenet.inference.funnel`). ``out`` (a folder) then holds::

    candidates_stage1.csv    stage 1's ranking (:mod:`betenet.inference.candidates`)
    candidates_stage2.csv    stage 2's ranking, with each candidate's stage-1 rank and Tc (with a stage 2)
    dropped.csv              every input not in the last ranking: where it left the funnel and why
    candidates.json          ensembles, settings, counts, the first 20 of each ranking, the dropped counts
    screen_state.json        the run's fingerprints and the stages complete
    stage1/predictions.csv   predict's table (+ .json spectra) of every input; stage1/parts/, stage1/cluster/
    stage2/inputs/           the structures whose phonons stage 2 computes; stage2/phonons/ their
                             `betenet phonons` folder
    stage2/predictions.csv   predict's table (+ .json) of stage 2 on them; predictions_given.csv of the
                             inputs whose PhDOS ``labels`` gave

Resumable, never stale: a run stopped anywhere (killed, Ctrl-C, a crashed node) is continued by the same
command: the stage-1 chunks done are carried over (and said so), a stage already complete is not run again,
finished phonons are skipped, and the final files equal one uninterrupted run's. Every run first removes the
final tables of the run before; a run whose stage-1 fingerprint (inputs, ensemble, options) differs from
the folder's starts afresh, and one whose stage-2 fingerprint differs (or that has no stage 2) removes
``stage2/``, so a reused ``--out`` never keeps another run's ``candidates_stage2.csv``. Two runs into one
``--out`` at once are refused (:func:`betenet.locks.folder_lock`).
"""

from __future__ import annotations

import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from betenet.errors import InputError
from betenet.files import write_json
from betenet.inference.candidates import (DROPPED_CSV, READ_COLUMNS, REPORT_JSON, STAGE1_CSV, STAGE2_CSV, ranked,
                                          top_rows, write_dropped, write_ranking_csv)
from betenet.inference.funnel import STAGE2_DIR, phonon_settings, run_stage2, stage2_fraction
from betenet.inference.stream import DEFAULT_CHUNK_SIZE
from betenet.physics.properties import TC_ALLEN_DYNES

__all__ = ["ScreenOptions", "screen_inputs", "FINAL_FILES", "STATE_FILE"]

STAGE1_DIR, PREDICTIONS_CSV = "stage1", "predictions.csv"
STATE_FILE, LOCK_NAME, STATE_VERSION = "screen_state.json", "screen_lock", 1
#: Tables of earlier versions' ``screen`` on INPUTS, removed from a reused ``--out`` with the stale ones.
LEGACY_FILES = ("candidates.csv", "candidates_failed.csv", "candidates_stage2_failed.csv")
#: The final files of a run: removed when a run starts, written when it ends.
FINAL_FILES = (STAGE1_CSV, STAGE2_CSV, DROPPED_CSV, REPORT_JSON) + LEGACY_FILES


@dataclass
class ScreenOptions:
    """The settings of :func:`screen_inputs` (``betenet screen --help`` describes each).

    Stage 1: ``labels`` (site PhDOS of the inputs, for a CPD/FPD first stage), ``mu_star``, ``batch_size``,
    ``device``, ``chunk_size`` (inputs read, predicted and appended together), ``progress`` / ``progress_every``
    / ``progress_stream``. Stage 2: ``stage2_fraction`` and ``stage1_threshold`` (the cut,
    :func:`betenet.inference.funnel.stage2_fraction`), ``potential`` and ``max_atoms`` (the phonons; default the
    second ensemble's recipe), ``jobs`` and ``threads`` (phonon worker processes; ``local`` array tasks),
    ``phonons_cache``. Both: ``cluster`` (``local`` or ``slurm``), ``cluster_chunk`` (inputs per stage-1 Slurm
    task), ``cluster_options`` (``KEY=VALUE`` overrides of conf/cluster)."""

    labels: str | Path | None = None
    mu_star: float | None = None
    batch_size: int = 64
    device: str = "cpu"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    progress: bool | str = "auto"
    progress_every: int | None = None
    progress_stream: object = None
    stage2_fraction: float | None = None
    stage1_threshold: float | None = None
    potential: str | None = None
    max_atoms: int | None = None
    jobs: int = 1
    threads: int | None = None
    phonons_cache: str | Path | None = None
    cluster: str | None = None
    cluster_chunk: int | None = None
    cluster_options: tuple = ()


def _positive_int(value, flag: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(flag, f"must be an integer >= 1, got {value!r}")


def _check(o: ScreenOptions, stage2, ensemble_spec) -> None:
    """Refuse unusable settings before anything is read or written."""
    from betenet.inference.predict import check_options
    from betenet.phonons.cluster import CLUSTERS

    check_options(o.batch_size, o.mu_star)
    _positive_int(o.chunk_size, "--chunk-size")
    _positive_int(o.jobs, "--jobs")
    _positive_int(o.threads, "--threads", allow_none=True)
    _positive_int(o.cluster_chunk, "--cluster-chunk", allow_none=True)
    if o.cluster is not None and o.cluster not in CLUSTERS:
        raise InputError(f"--cluster {o.cluster}", f"unknown; use one of {', '.join(CLUSTERS)}")
    if o.cluster is not None:
        from betenet.phonons.cluster import cluster_resources

        if ensemble_spec is None:
            raise InputError("--cluster", "the array tasks load the ensemble themselves: give ensemble_spec")
        cluster_resources(o.cluster_options, o.device)  # unknown settings refused now, not after stage 1
    if o.stage1_threshold is not None and not math.isfinite(o.stage1_threshold):
        raise InputError("--stage1-threshold", f"must be a finite Tc in K, got {o.stage1_threshold!r}")
    if stage2 is None:
        for value, flag in ((o.stage2_fraction, "--stage2-fraction"), (o.stage1_threshold, "--stage1-threshold")):
            if value is not None:
                raise InputError(flag, "sets the cut to stage 2: give --ensemble-stage2 too")
    else:
        stage2_fraction(o.stage2_fraction, o.stage1_threshold)


def _members_files(ensemble) -> list[Path]:
    calibration = getattr(ensemble, "calibration", None)
    return [m.checkpoint for m in ensemble.members] + ([Path(calibration.path)] if calibration is not None else [])


def _fingerprints(pool, labels_path, ensemble, stage2, settings, o: ScreenOptions) -> tuple[str, str | None]:
    """``(stage 1's, stage 2's or None)``: inputs, ensembles (checkpoints and calibration) and every option that
    changes a number or the cut; not where or how fast (device, jobs, cluster)."""
    from betenet.inference.stream import fingerprint

    read = list(pool.files) + ([Path(labels_path)] if labels_path else [])
    first = {"stage": 1, "mu_star": o.mu_star, "batch_size": o.batch_size, "chunk_size": o.chunk_size,
             "labels": str(Path(labels_path).resolve()) if labels_path else None, "ensemble": ensemble.label,
             "members": ensemble.names}
    f1 = fingerprint(pool, read + _members_files(ensemble), first)
    if stage2 is None:
        return f1, None
    kind, phonons = settings
    second = {"stage": 2, "stage1": f1, "ensemble": stage2.label, "members": stage2.names, "kind": kind,
              "fraction": stage2_fraction(o.stage2_fraction, o.stage1_threshold), "threshold": o.stage1_threshold,
              "phonons": None if phonons is None else {**phonons.key(), "max_atoms": phonons.max_atoms}}
    return f1, fingerprint(pool, read + _members_files(stage2), second)


def _fresh_state(out: Path, f1: str, f2: str | None) -> dict:
    """The folder's state after removing what this run must not keep (module docstring)."""
    import json

    for name in FINAL_FILES:
        (out / name).unlink(missing_ok=True)
    try:
        state = json.loads((out / STATE_FILE).read_text())
    except (OSError, ValueError):
        state = {}
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or \
            (state.get("stage1") or {}).get("fingerprint") != f1:
        shutil.rmtree(out / STAGE1_DIR, ignore_errors=True)
        state = {"version": STATE_VERSION, "stage1": {"fingerprint": f1}}
    if f2 is None or (state.get("stage2") or {}).get("fingerprint") != f2:
        shutil.rmtree(out / STAGE2_DIR, ignore_errors=True)
        state["stage2"] = {"fingerprint": f2}
    write_json(out / STATE_FILE, state, indent=1)
    return state


def _stage1(ensemble, pool, inputs, out: Path, labels_path, o: ScreenOptions, state: dict, ensemble_spec) -> dict:
    """Stage 1's predictions of every input into ``out/stage1/predictions.csv``; its summary counts."""
    from betenet.inference.predict import predict_files, spectra_path

    csv_path = out / STAGE1_DIR / PREDICTIONS_CSV
    record = state["stage1"]
    if record.get("complete") and csv_path.is_file() and spectra_path(csv_path).is_file():
        summary = dict(record["summary"], carried_over=record["summary"]["inputs"])
        print(f"screen stage 1: {summary['inputs']} inputs carried over (complete in an earlier run into this --out)",
              file=o.progress_stream or sys.stderr)
        return summary
    kwargs = dict(labels=labels_path, mu_star=o.mu_star, batch_size=o.batch_size, device=o.device,
                  chunk_size=o.chunk_size, progress_every=o.progress_every)
    if o.cluster is not None and pool.total:
        from betenet.inference.screen_cluster import predict_on_cluster
        from betenet.phonons.cluster import cluster_resources

        summary = predict_on_cluster(o.cluster, pool, inputs, csv_path, ensemble_spec, kwargs, jobs=o.jobs,
                                     cluster_chunk=o.cluster_chunk, progress_stream=o.progress_stream,
                                     resources=cluster_resources(o.cluster_options, o.device))
    else:
        done = predict_files(ensemble, pool, csv_path, progress=o.progress, progress_stream=o.progress_stream,
                             label="screen stage 1", **kwargs)
        summary = {k: done.summary[k] for k in ("inputs", "predicted", "failed", "with_warnings", "carried_over")}
    record.update(complete=True, summary={k: v for k, v in summary.items() if k != "carried_over"})
    write_json(out / STATE_FILE, state, indent=1)
    return summary


def _top(ranking) -> dict:
    """The summary's ``top``, ``top_tc_allen_dynes_K`` and its ``_std`` (None without a spread)."""
    first = top_rows(ranking, 1)[0]
    return {"top": first["id"], f"top_{TC_ALLEN_DYNES}": first[TC_ALLEN_DYNES],
            f"top_{TC_ALLEN_DYNES}_std": first[f"{TC_ALLEN_DYNES}_std"]}


def screen_inputs(ensemble, inputs, out, options: ScreenOptions | None = None, stage2=None,
                  ensemble_spec: tuple | None = None) -> dict:
    """Rank the unlabelled ``inputs`` with ``ensemble``; with ``stage2`` (an ensemble) run the funnel (module
    docstring) into the folder ``out``. ``ensemble_spec``: ``(paths, checkpoint)`` that
    :func:`~betenet.inference.ensemble.load_ensemble` turns into ``ensemble`` (needed with ``options.cluster``:
    each array task loads it). Returns a flat summary, whose ``exit_status`` is 1 when no input could be
    predicted in stage 1 (the files are written: every input in ``dropped.csv`` with its reason); raises
    ``InputError`` (nothing written) for unusable settings or outputs."""
    from betenet.inference.predict import check_outputs, read_table
    from betenet.inference.stream import open_inputs
    from betenet.locks import folder_lock

    o = options or ScreenOptions()
    _check(o, stage2, ensemble_spec)
    out = Path(out)
    if out.is_file():
        raise InputError(out, "--out is a file; screen writes a folder")
    if any(Path(t).is_dir() and Path(t).resolve() == out.resolve() for t in map(str, inputs)):
        raise InputError(out, "--out must not be an input folder; choose a new folder")
    pool = open_inputs(inputs)
    labels_path = o.labels or pool.labels
    check_outputs([(out / name, "--out") for name in FINAL_FILES[:4]],
                  list(pool.files) + ([Path(labels_path)] if labels_path else []))
    settings = phonon_settings(stage2, o.potential, o.device, o.max_atoms) if stage2 is not None else None
    f1, f2 = _fingerprints(pool, labels_path, ensemble, stage2, settings, o)
    with folder_lock(out, LOCK_NAME, "another `betenet screen` run into this --out"):
        state = _fresh_state(out, f1, f2)
        counts = _stage1(ensemble, pool, inputs, out, labels_path, o, state, ensemble_spec)
        table = read_table(out / STAGE1_DIR / PREDICTIONS_CSV, columns=READ_COLUMNS)
        ranking = ranked(table)
        write_ranking_csv(out / STAGE1_CSV, ranking)
        of_stage1 = {i: (r, tc) for r, i, tc in zip(ranking["rank"], ranking["id"], ranking[TC_ALLEN_DYNES])}
        result = {"mode": "ranking", "out": str(out), "candidates": str(out / STAGE1_CSV), **counts,
                  "ranked": len(ranking), **(_top(ranking) if len(ranking) else {})}
        report = {"stage1": {"ensemble": ensemble.label, "members": ensemble.names, "skipped_members": ensemble.skipped,
                             **{k: result[k] for k in ("inputs", "predicted", "failed", "with_warnings", "ranked")},
                             "predictions": str(out / STAGE1_DIR / PREDICTIONS_CSV), "top": top_rows(ranking)}}
        reasons = {}
        if stage2 is not None:
            done = run_stage2(stage2, pool, ranking, out, o, labels_path,
                              complete=bool(state["stage2"].get("complete")) and (out / STAGE2_DIR).is_dir())
            state["stage2"]["complete"] = True
            write_json(out / STATE_FILE, state, indent=1)
            write_ranking_csv(out / STAGE2_CSV, done.ranking, of_stage1)
            reasons = done.reasons
            result.update(candidates_stage2=str(out / STAGE2_CSV), **done.summary)
            report["stage2"] = {**done.report, "top": top_rows(done.ranking)}
        dropped = write_dropped(out / DROPPED_CSV, table, reasons, of_stage1)
        result.update(dropped=sum(dropped.values()), dropped_file=str(out / DROPPED_CSV))
        report["dropped"] = dropped
        write_json(out / REPORT_JSON, report, indent=1, nan_as_null=True)
    result["exit_status"] = 0 if len(ranking) else 1  # none predicted: the reasons are in dropped.csv
    return result
