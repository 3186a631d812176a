"""The tables ``betenet screen`` writes for unlabelled inputs (:mod:`betenet.inference.screen`): each stage's
ranking, made from that stage's prediction CSV (``betenet predict``'s table), and ``dropped.csv``, one row
for every input that did not reach the end of the funnel, saying where it left and why.

A ranking holds the inputs the stage predicted (``status`` ok), highest predicted Allen–Dynes T_c first
(ties in input order, non-finite last: :func:`betenet.evaluation.screening.rank_candidates`), with the
columns ``rank, id, formula, tc_allen_dynes_K, tc_allen_dynes_K_std, lambda, lambda_std, warnings``
(``betenet predict``'s names, numbers at 6 significant digits; ``warnings`` as in predict: unseen
elements, implausible spectrum, PhDOS origin, ...). Stage 2's adds ``stage1_rank`` and
``stage1_tc_allen_dynes_K``. ``dropped.csv``: ``id, formula, dropped_at, reason, stage1_rank,
stage1_tc_allen_dynes_K``, in input order, ``dropped_at`` one of :data:`DROPPED_AT`.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from betenet.files import atomic_path, csv_cell
from betenet.physics.properties import TC_ALLEN_DYNES

__all__ = ["STAGE1_CSV", "STAGE2_CSV", "DROPPED_CSV", "REPORT_JSON", "DROPPED_AT", "RANK_COLUMNS", "ranked",
           "write_ranking_csv", "write_dropped", "top_rows"]

#: The files ``screen`` writes into ``--out`` (module docstring; the report: :mod:`betenet.inference.screen`).
STAGE1_CSV, STAGE2_CSV, DROPPED_CSV, REPORT_JSON = ("candidates_stage1.csv", "candidates_stage2.csv", "dropped.csv",
                                                    "candidates.json")
#: Where an input left the funnel: it could not be predicted in stage 1; it ranked below the cut to stage 2;
#: its phonons failed or were skipped (too many atoms); it could not be predicted in stage 2.
DROPPED_AT = ("stage 1", "cut", "phonons", "stage 2")
TC_STD = f"{TC_ALLEN_DYNES}_std"
#: A ranking's columns; stage 2's adds :data:`STAGE1_COLUMNS`.
RANK_COLUMNS = ("rank", "id", "formula", TC_ALLEN_DYNES, TC_STD, "lambda", "lambda_std", "warnings")
STAGE1_COLUMNS = ("stage1_rank", f"stage1_{TC_ALLEN_DYNES}")
DROPPED_COLUMNS = ("id", "formula", "dropped_at", "reason") + STAGE1_COLUMNS
#: Columns of a prediction table a ranking reads.
READ_COLUMNS = ["id", "formula", TC_ALLEN_DYNES, TC_STD, "lambda", "lambda_std", "status", "warnings"]


def ranked(table):
    """The predicted rows (``status`` ok) of a prediction table in rank order, with a ``rank`` column (from 1)."""
    from betenet.evaluation.screening import rank_candidates

    ok = table[table["status"] == "ok"].reset_index(drop=True)
    order = [r["id"] for r in rank_candidates(range(len(ok)), ok[TC_ALLEN_DYNES].to_numpy(float),
                                              ok[TC_STD].to_numpy(float))]  # positions as ids
    out = ok.iloc[order].reset_index(drop=True)
    out.insert(0, "rank", range(1, len(out) + 1))
    return out


def _cell(value) -> str:
    """A number at :func:`~betenet.files.csv_cell`'s precision (empty for NaN), an integer or text as given."""
    if isinstance(value, float):
        return csv_cell(value)
    return "" if value is None else str(value)


def _write(path: Path, columns, rows) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for row in rows:
            w.writerow([_cell(row.get(c)) for c in columns])
    return Path(path)


def write_ranking_csv(path, ranking, stage1=None) -> Path:
    """Write a ranking (:func:`ranked`) to ``path`` (atomically); ``stage1``: id → (rank, T_c) of stage 1,
    for stage 2's extra columns."""
    columns = list(RANK_COLUMNS) + (list(STAGE1_COLUMNS) if stage1 is not None else [])
    rows = ranking.to_dict("records")
    if stage1 is not None:
        for row in rows:
            row[STAGE1_COLUMNS[0]], row[STAGE1_COLUMNS[1]] = stage1.get(row["id"], (None, None))
    return _write(Path(path), columns, rows)


def write_dropped(path, table, reasons: dict, stage1: dict) -> dict:
    """``dropped.csv`` (module docstring) from the stage-1 prediction table (every input, in order; one that
    failed there dropped at ``stage 1`` with its status), ``reasons`` (id → (dropped_at, reason) for the
    inputs dropped later) and ``stage1`` (id → (rank, T_c)). Returns the count per ``dropped_at``."""
    counts = dict.fromkeys(DROPPED_AT, 0)
    rows = []
    for ident, formula, status in zip(table["id"], table["formula"], table["status"]):
        if status != "ok":
            where, why = "stage 1", status
        elif ident in reasons:
            where, why = reasons[ident]
        else:
            continue
        counts[where] += 1
        rank, tc = stage1.get(ident, (None, None))
        rows.append({"id": ident, "formula": formula, "dropped_at": where, "reason": why, STAGE1_COLUMNS[0]: rank,
                     STAGE1_COLUMNS[1]: tc})
    _write(Path(path), DROPPED_COLUMNS, rows)
    return counts


def top_rows(ranking, n: int = 20) -> list[dict]:
    """The first ``n`` rows of a ranking as plain records (NaN as None), for the JSON report."""
    rows = ranking.head(n).to_dict("records")
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows]
