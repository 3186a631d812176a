"""Predictions as a table and as files: what ``betenet predict`` writes and what
``Ensemble.predict_structures`` returns.

One row per input, columns ``id``, ``formula``, then ``lambda``, ``omega_log_K``, ``omega_2_K``,
``tc_allen_dynes_K`` (and ``tc_eliashberg_K`` when asked), each followed by its ``_std`` (the
spread over members; scaled when the ensemble has a calibration, :mod:`betenet.inference.calibration`,
and then the JSON's ``calibration`` and the table's ``attrs["calibration"]`` say by what), then
``status`` (``ok`` or why the input could not be predicted) and ``warnings`` (empty when clean;
see :mod:`betenet.inference.inputs`). Numbers are written at 6 significant digits
(:func:`betenet.files.csv_cell`). The mean a2F and its std go to a JSON beside the CSV (same name,
``.json``); ``--out -`` writes the CSV to stdout and no JSON. :func:`preview` is the short table
``betenet predict`` prints. :func:`predict_files` streams: the pool is read, predicted and appended a
chunk at a time and an interrupted run goes on where it stopped (:mod:`betenet.inference.stream`).

Output paths are checked before anything is computed: a folder, a CSV named ``.json`` (its spectra
would overwrite it), a file a training run folder owns (``<run>/member.csv`` would write its
``member.json``) or a path that is one of the inputs (structure files, labels file, member
checkpoints) is refused with a message naming it.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from betenet import validation
from betenet.errors import InputError
from betenet.files import STDOUT, atomic_path, csv_cell, write_json
from betenet.physics.properties import TC_ALLEN_DYNES, implausibility
from betenet.training.run_dir import RunDir

__all__ = ["PREDICT_COLUMNS", "prediction_frame", "predict_rows", "row_spectra", "PredictedSpectra", "preview",
           "check_options", "check_outputs", "spectra_path", "write_predictions", "predict_files", "PredictionFiles",
           "write_csv", "read_table"]

#: Predicted quantities: (column, ensemble property key).
PREDICT_COLUMNS = (("lambda", "lambda"), ("omega_log_K", "omega_log_K"), ("omega_2_K", "omega_2_K"),
                   (TC_ALLEN_DYNES, "tc_K"))
#: Separator of several warnings in one cell.
WARNING_SEPARATOR = "; "
#: Rows :func:`preview` shows before "... N more", and the characters of a status it shows.
PREVIEW_ROWS = 20
PREVIEW_STATUS_CHARS = 60


def _columns(eliashberg: bool) -> list[tuple[str, str]]:
    from betenet.inference.combine import ELIASHBERG_KEY

    return list(PREDICT_COLUMNS) + ([(ELIASHBERG_KEY, ELIASHBERG_KEY)] if eliashberg else [])


def row_warnings(row, lam: float, omega_log_K: float) -> str:
    """The ``warnings`` cell of a predicted row: its input warnings, then a flag when the predicted
    spectrum is implausible (``physics.properties.implausibility``); empty when clean."""
    notes = list(row.warnings)
    flag = implausibility(lam, omega_log_K)
    if flag:
        notes.append(flag)
    return WARNING_SEPARATOR.join(notes)


def _positions(rows) -> list[int | None]:
    """Each row's position in the ensemble prediction (which holds the rows with a graph, in
    order); None for a row that was not predicted."""
    predicted = itertools.count()
    return [next(predicted) if r.graph is not None else None for r in rows]


def prediction_frame(rows, pred, eliashberg: bool = False):
    """The prediction table (module docstring) of ``rows`` (``InputRow``), ``pred`` holding the
    ensemble prediction of the rows with a graph, in order (None when there are none)."""
    import pandas as pd

    columns = _columns(eliashberg)
    records = []
    for r, k in zip(rows, _positions(rows)):
        rec = {"id": r.id, "formula": r.formula}
        for col, key in columns:
            rec[col] = float(pred.properties[key][k]) if k is not None else math.nan
            rec[f"{col}_std"] = float(pred.properties_std[key][k]) if k is not None else math.nan
        rec["status"] = r.status
        rec["warnings"] = row_warnings(r, rec["lambda"], rec["omega_log_K"]) if k is not None else ""
        records.append(rec)
    names = ["id", "formula"] + [c for col, _ in columns for c in (col, f"{col}_std")] + ["status", "warnings"]
    return pd.DataFrame.from_records(records, columns=names)


def predict_rows(ensemble, rows, mu_star=None, eliashberg: bool = False, batch_size: int = 64, device="cpu",
                 progress: bool | str = "auto"):
    """``(table, prediction)`` for ``rows``: the ensemble run on the rows with a graph."""
    ok = [r for r in rows if r.graph is not None]
    pred = None
    if ok:
        pred = ensemble.predict([r.graph for r in ok], mu_star=mu_star, eliashberg=eliashberg,
                                batch_size=batch_size, device=device, progress=progress,
                                ids=[r.id for r in ok], formulas=[r.formula for r in ok])
    table = prediction_frame(rows, pred, eliashberg)
    table.attrs["calibration"] = None if pred is None else pred.calibration
    return table, pred


@dataclass
class PredictedSpectra:
    """The ensemble's a2F beside a prediction table: ``omega_meV`` [B] bin centres (meV), and
    ``a2f_mean`` / ``a2f_std`` [N, B] (the std as in the table's ``_std`` columns), row ``i`` for
    the table's row ``i`` (id ``ids[i]``), NaN where that row could not be predicted."""

    ids: list[str]
    omega_meV: np.ndarray
    a2f_mean: np.ndarray
    a2f_std: np.ndarray


def row_spectra(rows, pred, omega_meV) -> PredictedSpectra:
    """:class:`PredictedSpectra` of ``rows`` from ``pred`` (as :func:`prediction_frame`) on the
    ensemble's grid ``omega_meV``."""
    omega = np.asarray(omega_meV, dtype=np.float64)
    mean, std = (np.full((len(rows), omega.size), np.nan) for _ in range(2))
    for i, k in enumerate(_positions(rows)):
        if k is not None:
            mean[i], std[i] = pred.a2f_mean[k], pred.a2f_std[k]
    return PredictedSpectra([r.id for r in rows], omega, mean, std)


def _shown(x: float, fmt: str) -> str:
    return format(x, fmt) if math.isfinite(x) else "—"


def _preview_cells(r: dict) -> list[str]:
    tc = _shown(r[TC_ALLEN_DYNES], ".2f")
    if tc != "—":
        tc += f" ± {_shown(r[f'{TC_ALLEN_DYNES}_std'], '.2f')}"
    status = str(r["status"])
    status = status if len(status) <= PREVIEW_STATUS_CHARS else status[:PREVIEW_STATUS_CHARS - 1] + "…"
    return [str(r["id"]), str(r["formula"]), _shown(r["lambda"], ".2f"), _shown(r["omega_log_K"], ".0f"), tc, status]


def preview(table, max_rows: int = PREVIEW_ROWS, total: int | None = None) -> str:
    """A short text table of a prediction table: id, formula, λ, ω_log (K), Tc (K) ± std, status
    (— where not predicted); at most ``max_rows`` rows, then ``... N more`` (``total``: the rows of the
    whole prediction when ``table`` holds only its first ones)."""
    head = ["id", "formula", "λ", "ω_log (K)", "Tc (K)", "status"]
    lines = [head] + [_preview_cells(r) for r in table.head(max_rows).to_dict("records")]
    widths = [max(len(c) for c in col) for col in zip(*lines)]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    total = len(table) if total is None else max(int(total), len(table))
    if total > max_rows:
        text.append(f"... {total - max_rows} more")
    return "\n".join(text)


def check_options(batch_size, mu_star) -> None:
    """Refuse, before any structure is read, a ``batch_size`` below 1 or a ``mu_star`` (None: the
    members' own) outside its range (:mod:`betenet.validation`)."""
    validation.batch_size(batch_size)
    if mu_star is not None:
        validation.mu_star(mu_star)


def spectra_path(out) -> Path:
    """Where the spectra of the CSV ``out`` go: the same name with ``.json``."""
    return Path(out).with_suffix(".json")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


class _SameFile:
    """Which of ``files`` is the same file as a given path (:func:`_same_file`), each file resolved (and, once a
    path that exists is asked about, stat'ed) once: a pool of N inputs costs N look-ups, not N per output."""

    def __init__(self, files: list[Path]):
        self.files = files
        self.paths: dict | None = None
        self.inodes: dict | None = None

    def __call__(self, path: Path) -> Path | None:
        if self.paths is None:
            self.paths = {}
            for p in self.files:
                with contextlib.suppress(OSError):
                    self.paths.setdefault(p.resolve(), p)
        with contextlib.suppress(OSError):
            if (hit := self.paths.get(path.resolve())) is not None:
                return hit
        if not path.exists():
            return None
        if self.inodes is None:
            self.inodes = {}
            for p in self.files:
                with contextlib.suppress(OSError):
                    st = p.stat()
                    self.inodes.setdefault((st.st_dev, st.st_ino), p)
        st = path.stat()
        return self.inodes.get((st.st_dev, st.st_ino))


def check_outputs(outputs, inputs) -> None:
    """Raise ``InputError`` naming the output when one of ``outputs`` (``(path, what it is)``
    pairs, e.g. ``(out, "--out")``) is a folder, a file of a training run folder (``member.json``,
    a checkpoint, ...: :meth:`RunDir.owner_of`), or the same file as one of ``inputs`` or as
    another output."""
    outputs = [(Path(p), what) for p, what in outputs]
    same_input = _SameFile([Path(p) for p in inputs])
    for k, (out, what) in enumerate(outputs):
        if out.is_dir() or str(out).endswith(os.sep):
            raise InputError(out, f"{what} is a folder; give a file name (e.g. {out / 'predictions.csv'})")
        run = RunDir.owner_of(out)
        if run is not None:
            raise InputError(out, f"{what} would overwrite a file of the run folder {run.path}; write it "
                                  "elsewhere or under another name")
        clash = same_input(out)
        if clash is not None:
            raise InputError(out, f"{what} would overwrite the input {clash}; choose another output name")
        other = next((w for p, w in outputs[:k] if _same_file(out, p)), None)
        if other is not None:
            raise InputError(out, f"{what} and {other} would be one file; give the CSV a .csv name")


def write_csv(table, target) -> None:
    """The prediction table as CSV into ``target`` (a path or an open text stream): numbers at
    :func:`betenet.files.csv_cell`'s precision, NaN as an empty cell."""
    table.to_csv(target, index=False, na_rep="", float_format=csv_cell)


def write_predictions(out, table, spectra: dict) -> tuple[Path, Path]:
    """Write the table to ``out`` (:func:`write_csv`) and ``spectra`` beside it as strict JSON
    (NaN as null), each through a temporary file."""
    out = Path(out)
    with atomic_path(out) as tmp:
        write_csv(table, tmp)
    return out, write_json(spectra_path(out), spectra, nan_as_null=True)


@dataclass
class PredictionFiles:
    """What :func:`predict_files` did: the first rows of the table (at most :data:`PREVIEW_ROWS`; read back
    from the CSV when an interrupted run had done them), the files written and a flat summary."""

    table: object
    csv: Path | None  # None: the CSV went to stdout (``--out -``)
    spectra: Path | None  # None: not written (``--out -``)
    summary: dict


def _spectra_header(ensemble, pred, calibration) -> dict:
    """The run-level fields of the spectra JSON (before ``entries``)."""
    return {
        "omega_meV": [] if pred is None else pred.omega_meV,
        "mu_star": ensemble.mu_star if pred is None else pred.mu_star,
        "ensemble": ensemble.label, "members": ensemble.names, "skipped_members": ensemble.skipped,
        "std": "standard deviation over members (ddof 0)" + (", times the calibration's scale" if calibration else ""),
        "calibration": calibration}


def _entries(pred) -> list[dict]:
    if pred is None:
        return []
    return [{"id": i, "formula": f, "a2f_mean": pred.a2f_mean[k], "a2f_std": pred.a2f_std[k]}
            for k, (i, f) in enumerate(zip(pred.ids, pred.formulas))]


def _csv_text(table, header: bool) -> str:
    import io

    buf = io.StringIO()
    table.to_csv(buf, index=False, header=header, na_rep="", float_format=csv_cell)
    return buf.getvalue()


def read_table(path, nrows: int | None = None, columns=None):
    """A written prediction CSV (its first ``nrows`` rows; only ``columns`` when given) as a table: ``id``,
    ``formula``, ``status`` and ``warnings`` as text, the numbers at the CSV's precision (NaN where empty)."""
    import pandas as pd

    text = {"id": str, "formula": str, "status": str, "warnings": str}
    return pd.read_csv(path, nrows=nrows, dtype=text, keep_default_na=False, usecols=columns,
                       na_values={c: [""] for c in pd.read_csv(path, nrows=0).columns if c not in text})


def predict_files(ensemble, inputs, out, labels=None, mu_star=None, eliashberg: bool = False, batch_size: int = 64,
                  device="cpu", progress: bool | str = "auto", chunk_size: int | None = None,
                  progress_every: int | None = None, progress_stream=None, label: str = "predict") -> PredictionFiles:
    """``betenet predict``: INPUTS (files, folders, globs, multi-structure extxyz files, ASE databases, list
    files: :func:`betenet.inference.stream.open_inputs`; or an opened
    :class:`~betenet.inference.stream.InputPool`) → CSV ``out`` + spectra JSON, ``chunk_size``
    inputs at a time (default :data:`betenet.inference.stream.DEFAULT_CHUNK_SIZE`); ``out``
    :data:`betenet.files.STDOUT` (``-``) prints the CSV to stdout, chunk by chunk, and writes no JSON
    (``summary["warnings"]`` says so).

    Resumable (:class:`betenet.inference.stream.PartialRun`): each chunk's rows, spectra and ids are
    appended to ``<out>.partial/``; the same command after an interruption carries those over
    (``summary["carried_over"]``) and computes the rest; the final files are written at the end, the
    same as one uninterrupted run's. Progress: a bar on a terminal, else a line every ``progress_every``
    inputs (default: per chunk), for pools of :data:`~betenet.inference.ensemble.PROGRESS_MIN_STRUCTURES`
    inputs or more (``progress`` True / False: always / never), and the count carried over. Outputs are
    checked first (:func:`check_outputs`). Every input gets its row; ``summary`` counts them and holds
    ``exit_status``: 0 when at least one input was predicted, 1 when none was (the files are still
    written, each row with its reason). ``label`` names the run in its progress lines (``betenet screen``'s
    stages use this function too: :mod:`betenet.inference.screen`)."""
    from betenet.data.sources.directory import read_labels_table
    from betenet.inference.combine import show_progress
    from betenet.inference.inputs import build_rows
    from betenet.inference.stream import (DEFAULT_CHUNK_SIZE, InputPool, PartialRun, chunked, fingerprint,
                                         open_inputs)
    from betenet.progress import ProgressLine

    check_options(batch_size, mu_star)
    chunk_size = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
        raise InputError("--chunk-size", f"must be an integer >= 1, got {chunk_size!r}")
    pool = inputs if isinstance(inputs, InputPool) else open_inputs(inputs)
    labels_path = labels or pool.labels
    member_files = [m.checkpoint for m in ensemble.members]
    to_stdout = str(out) == STDOUT  # the CSV to stdout, no spectra file
    outputs = [(out, "--out"), (spectra_path(out), "the a2F spectra file (--out with .json)")]
    read = list(pool.files) + ([Path(labels_path)] if labels_path else [])
    check_outputs([] if to_stdout else outputs, read + member_files)
    table_labels = read_labels_table(labels_path) if labels_path and ensemble.site_dos != "none" else None
    options = {"mu_star": mu_star, "eliashberg": eliashberg, "batch_size": batch_size, "chunk_size": chunk_size,
               "labels": str(Path(labels_path).resolve()) if labels_path else None, "ensemble": ensemble.label,
               "members": ensemble.names, "calibration": getattr(ensemble, "calibration", None) is not None}
    run = None if to_stdout else PartialRun(out, fingerprint(pool, read + member_files, options))
    counts = {"inputs": 0, "predicted": 0, "with_warnings": 0}
    head, header, calibration = [], None, None
    bar = None
    with run if run is not None else contextlib.nullcontext():
        carried = run.carried if run is not None else 0
        if carried:
            counts.update({k: int(run.counts.get(k, 0)) for k in counts})
            header = run.header
        if show_progress(progress, pool.total) or carried:
            bar = ProgressLine(pool.total, label, unit="input", every=progress_every or chunk_size,
                               stream=progress_stream, initial=carried)
            if carried:
                bar.note(f"{label}: {carried} inputs carried over from the interrupted run in {run.folder}")
        try:
            first = not (run is not None and run.has_rows)  # the CSV's header line still to write
            todo = (item for item in pool if run is None or item[0] not in run.done_ids)
            for chunk in chunked(todo, int(chunk_size)):
                rows = build_rows(chunk, ensemble, table_labels, progress=False, labels_path=labels_path,
                                  device=device)
                table, pred = predict_rows(ensemble, rows, mu_star, eliashberg, batch_size, device, progress=False)
                if header is None and pred is not None:
                    header = _spectra_header(ensemble, pred, table.attrs["calibration"])
                counts["inputs"] += len(rows)
                counts["predicted"] += sum(r.graph is not None for r in rows)
                counts["with_warnings"] += int((table["warnings"] != "").sum())
                text = _csv_text(table, header=first)
                first = False
                if sum(map(len, head)) < PREVIEW_ROWS:
                    head.append(table.head(PREVIEW_ROWS - sum(map(len, head))))
                if run is None:
                    sys.stdout.write(text)
                    sys.stdout.flush()
                else:
                    run.append(text, _entries(pred), [r.id for r in rows], counts, header)
                if bar is not None:
                    bar.update(len(rows), {"predicted": counts["predicted"],
                                           "failed": counts["inputs"] - counts["predicted"]})
            if first:  # an empty pool (e.g. a database without rows): the header line alone
                text = _csv_text(prediction_frame([], None, eliashberg), header=True)
                if run is None:
                    sys.stdout.write(text)
                else:
                    run.append(text, [], [], counts, header)
        finally:
            if bar is not None:
                bar.close()
        calibration = (header or {}).get("calibration")
        csv_path = json_path = None
        if run is not None:
            json_path = spectra_path(out)
            run.finish(json_path, header or _spectra_header(ensemble, None, calibration))
            csv_path = Path(out)
    import pandas as pd

    table = read_table(csv_path, PREVIEW_ROWS) if carried else \
        pd.concat(head, ignore_index=True) if head else prediction_frame([], None, eliashberg)
    predicted = counts["predicted"]
    summary = {"out": STDOUT if to_stdout else str(csv_path), "spectra": str(json_path or "not written"),
               "members": len(ensemble), "skipped_members": len(ensemble.skipped), "inputs": counts["inputs"],
               "predicted": predicted, "failed": counts["inputs"] - predicted, "with_warnings": counts["with_warnings"],
               "calibrated_spread": bool(calibration and calibration["calibrated"]), "carried_over": carried,
               "exit_status": 0 if predicted else 1}
    if to_stdout:
        summary["warnings"] = ["--out -: the CSV went to stdout; the a2F spectra JSON is not written "
                               "(give --out FILE.csv to get FILE.json beside it)"]
    return PredictionFiles(table, csv_path, json_path, summary)
