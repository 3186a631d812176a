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
``betenet predict`` prints.

Output paths are checked before anything is computed: a folder, a CSV named ``.json`` (its spectra
would overwrite it), a file a training run folder owns (``<run>/member.csv`` would write its
``member.json``) or a path that is one of the inputs (structure files, labels file, member
checkpoints) is refused with a message naming it.
"""

from __future__ import annotations

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
           "write_csv"]

#: Predicted quantities: (column, ensemble property key).
PREDICT_COLUMNS = (("lambda", "lambda"), ("omega_log_K", "omega_log_K"), ("omega_2_K", "omega_2_K"),
                   (TC_ALLEN_DYNES, "tc_K"))
#: Separator of several warnings in one cell.
WARNING_SEPARATOR = "; "
#: Rows :func:`preview` shows before "... N more", and the characters of a status it shows.
PREVIEW_ROWS = 20
PREVIEW_STATUS_CHARS = 60


def _columns(eliashberg: bool) -> list[tuple[str, str]]:
    from betenet.inference.ensemble import ELIASHBERG_KEY

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


def preview(table, max_rows: int = PREVIEW_ROWS) -> str:
    """A short text table of a prediction table: id, formula, λ, ω_log (K), Tc (K) ± std, status
    (— where not predicted); at most ``max_rows`` rows, then ``... N more``."""
    head = ["id", "formula", "λ", "ω_log (K)", "Tc (K)", "status"]
    lines = [head] + [_preview_cells(r) for r in table.head(max_rows).to_dict("records")]
    widths = [max(len(c) for c in col) for col in zip(*lines)]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    if len(table) > max_rows:
        text.append(f"... {len(table) - max_rows} more")
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


def check_outputs(outputs, inputs) -> None:
    """Raise ``InputError`` naming the output when one of ``outputs`` (``(path, what it is)``
    pairs, e.g. ``(out, "--out")``) is a folder, a file of a training run folder (``member.json``,
    a checkpoint, ...: :meth:`RunDir.owner_of`), or the same file as one of ``inputs`` or as
    another output."""
    outputs = [(Path(p), what) for p, what in outputs]
    inputs = [Path(p) for p in inputs]
    for k, (out, what) in enumerate(outputs):
        if out.is_dir() or str(out).endswith(os.sep):
            raise InputError(out, f"{what} is a folder; give a file name (e.g. {out / 'predictions.csv'})")
        run = RunDir.owner_of(out)
        if run is not None:
            raise InputError(out, f"{what} would overwrite a file of the run folder {run.path}; write it "
                                  "elsewhere or under another name")
        clash = next((p for p in inputs if _same_file(out, p)), None)
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
    """What :func:`predict_files` did: the table, the files written and a flat summary."""

    table: object
    csv: Path | None  # None: the CSV went to stdout (``--out -``)
    spectra: Path | None  # None: not written (``--out -``)
    summary: dict


def predict_files(ensemble, inputs, out, labels=None, mu_star=None, eliashberg: bool = False, batch_size: int = 64,
                  device="cpu", progress: bool | str = "auto") -> PredictionFiles:
    """``betenet predict``: INPUTS (files, folders, globs) → CSV ``out`` + spectra JSON; ``out``
    :data:`betenet.files.STDOUT` (``-``) prints the CSV to stdout and writes no JSON (``summary["warnings"]`` says so).

    Outputs are checked first (:func:`check_outputs`). Every input gets its row; ``summary`` counts
    them and holds ``exit_status``: 0 when at least one input was predicted, 1 when none was (the
    files are still written, each row with its reason)."""
    from betenet.data.sources.directory import read_labels_table
    from betenet.data.structures import gather_inputs, input_files
    from betenet.inference.inputs import build_rows

    check_options(batch_size, mu_star)
    items, auto_labels = gather_inputs(inputs)
    labels_path = labels or auto_labels
    member_files = [m.checkpoint for m in ensemble.members]
    to_stdout = str(out) == STDOUT  # the CSV to stdout, no spectra file
    outputs = [(out, "--out"), (spectra_path(out), "the a2F spectra file (--out with .json)")]
    check_outputs([] if to_stdout else outputs, input_files(items, labels_path) + member_files)
    table_labels = read_labels_table(labels_path) if labels_path and ensemble.site_dos != "none" else None
    rows = build_rows(items, ensemble, table_labels, progress=progress, labels_path=labels_path, device=device)
    table, pred = predict_rows(ensemble, rows, mu_star, eliashberg, batch_size, device, progress)
    calibration = table.attrs["calibration"]
    spectra = {
        "omega_meV": [] if pred is None else pred.omega_meV,
        "mu_star": ensemble.mu_star if pred is None else pred.mu_star,
        "ensemble": ensemble.label, "members": ensemble.names, "skipped_members": ensemble.skipped,
        "std": "standard deviation over members (ddof 0)" + (", times the calibration's scale" if calibration else ""),
        "calibration": calibration,
        "entries": [] if pred is None else [
            {"id": i, "formula": f, "a2f_mean": pred.a2f_mean[k], "a2f_std": pred.a2f_std[k]}
            for k, (i, f) in enumerate(zip(pred.ids, pred.formulas))]}
    if to_stdout:
        write_csv(table, sys.stdout)
        csv_path = json_path = None
    else:
        csv_path, json_path = write_predictions(out, table, spectra)
    predicted = sum(r.graph is not None for r in rows)
    summary = {"out": STDOUT if to_stdout else str(csv_path), "spectra": str(json_path or "not written"),
               "members": len(ensemble), "skipped_members": len(ensemble.skipped), "inputs": len(rows),
               "predicted": predicted,
               "failed": len(rows) - predicted, "with_warnings": int((table["warnings"] != "").sum()),
               "calibrated_spread": bool(calibration and calibration["calibrated"]),
               "exit_status": 0 if predicted else 1}
    if to_stdout:
        summary["warnings"] = ["--out -: the CSV went to stdout; the a2F spectra JSON is not written "
                               "(give --out FILE.csv to get FILE.json beside it)"]
    return PredictionFiles(table, csv_path, json_path, summary)
