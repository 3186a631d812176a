"""Regression metrics of the derived properties (paper Table I), the paper's normalised error
Δ̄ with its per-element average and best/worst selection (Fig. 4 j–l), and the metrics of an
ensemble's mean prediction as a function of the number of members averaged.

Conventions
-----------
* Property names are :data:`betenet.physics.properties.PROPERTIES`: ``lambda``, ``omega_log_K``,
  ``omega_2_K``, ``tc_K``; frequencies in K, λ dimensionless.
* Non-finite values (NaN, ±inf) in either the truth or the prediction drop that pair from a
  metric; ``n`` reports how many pairs were used.
* R² = 1 − SS_res/SS_tot with SS_tot about the mean of the *used* truths.  When every used truth
  is the same value (SS_tot = 0) R² is 1.0 for a perfect prediction and 0.0 otherwise, as
  scikit-learn's ``r2_score(force_finite=True)`` defines it.  With no usable pair every metric
  is NaN and ``n`` is 0.
* Δ̄ (paper Fig. 4 l inset) of one material = mean over λ, ω_log, ω_2 of |pred − true| / |true|.
  A property whose true value is 0 (no coupling: λ = 0 makes ω_log = ω_2 = 0 by the moments
  convention) or non-finite has no relative error and is left out of that material's mean; a
  material with none of the three left is NaN and is skipped by the per-element average and the
  best/worst ranking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from math import comb
from typing import NamedTuple

import numpy as np

from betenet.physics.properties import MOMENTS, PROPERTIES, properties
from betenet.physics.units import BIN_CENTRES_MEV, MU_STAR_DEFAULT

__all__ = [
    "PROPERTY_LABELS",
    "regression_metrics",
    "property_table",
    "table_markdown",
    "normalised_error",
    "per_element_error",
    "Ranked",
    "best_worst",
    "metric_vs_ensemble_size",
]

#: Column / axis labels.
PROPERTY_LABELS = {"lambda": "λ", "omega_log_K": "ω_log (K)", "omega_2_K": "ω_2 (K)", "tc_K": "T_c (K)"}
#: Decimals of MAE and RMSE per property in :func:`table_markdown` (R² always 2), as Table I.
TABLE_DIGITS = {"lambda": 2, "omega_log_K": 0, "omega_2_K": 0, "tc_K": 2}


def _vector(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def _pair(y_true, y_pred, name: str = "") -> tuple[np.ndarray, np.ndarray]:
    t = _vector(y_true, f"{name} true".strip())
    p = _vector(y_pred, f"{name} pred".strip())
    if t.shape != p.shape:
        raise ValueError(f"{name or 'y'}: true and pred lengths differ ({t.size} vs {p.size})")
    return t, p


# --------------------------------------------------------------------------------------------
# Regression metrics and Table I
# --------------------------------------------------------------------------------------------
def regression_metrics(y_true, y_pred) -> dict:
    """``dict(r2, mae, rmse, n)`` of 1-D ``y_pred`` against ``y_true`` over the finite pairs."""
    t, p = _pair(y_true, y_pred)
    keep = np.isfinite(t) & np.isfinite(p)
    t, p = t[keep], p[keep]
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    n = int(t.size)
    if n == 0:
        return dict(r2=float("nan"), mae=float("nan"), rmse=float("nan"), n=0)
    if np.ptp(t) == 0.0:  # constant truth (also one pair): exact, not r2_score's rounding residue of the mean
        r2 = float(np.array_equal(t, p))
    else:
        r2 = float(r2_score(t, p))
    return dict(r2=r2, mae=float(mean_absolute_error(t, p)), rmse=float(root_mean_squared_error(t, p)), n=n)


def property_table(true: Mapping[str, Iterable], pred: Mapping[str, Iterable]) -> dict[str, dict]:
    """:func:`regression_metrics` of every property of :data:`PROPERTIES` present in both dicts."""
    names = [k for k in PROPERTIES if k in true and k in pred]
    if not names:
        raise ValueError(
            f"no property in common: true has {sorted(true)}, pred has {sorted(pred)}; expected {PROPERTIES}"
        )
    out = {}
    for k in names:
        t, p = _pair(true[k], pred[k], k)
        out[k] = regression_metrics(t, p)
    return out


def _fmt(value, digits: int) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def table_markdown(tables: Mapping[str, Mapping[str, dict]], digits: Mapping[str, int] | None = None) -> str:
    """Markdown table like the paper's Table I: one block of rows R², MAE, RMSE per model
    (``tables``: model name → :func:`property_table`), one column per property found in any
    model. A property a model lacks (or a NaN metric) prints as "–". ``digits`` overrides the
    decimals of MAE/RMSE per property (default :data:`TABLE_DIGITS`); R² always has 2."""
    if not tables:
        raise ValueError("tables is empty")
    dig = {**TABLE_DIGITS, **(digits or {})}
    cols = [k for k in PROPERTIES if any(k in tab for tab in tables.values())]
    lines = [
        "| Model | Metric | " + " | ".join(PROPERTY_LABELS[k] for k in cols) + " |",
        "|:--|:--|" + "--:|" * len(cols),
    ]
    for model, tab in tables.items():
        for i, (metric, label) in enumerate((("r2", "R²"), ("mae", "MAE"), ("rmse", "RMSE"))):
            cells = []
            for k in cols:
                m = tab.get(k)
                d = 2 if metric == "r2" else dig[k]
                cells.append(_fmt(None if m is None else m[metric], d))
            lines.append(f"| {model if i == 0 else ''} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Normalised error Δ̄, per element, best / worst
# --------------------------------------------------------------------------------------------
def normalised_error(
    true_props: Mapping[str, Iterable],
    pred_props: Mapping[str, Iterable],
    names: Iterable[str] = MOMENTS,
) -> np.ndarray:
    """Δ̄ [N]: mean over ``names`` (default λ, ω_log, ω_2) of |pred − true| / |true| per material;
    terms with true = 0 or a non-finite value are left out, NaN when none is left."""
    total = None
    for k in names:
        if k not in true_props or k not in pred_props:
            raise ValueError(
                f"property {k!r} missing (true has {sorted(true_props)}, pred has {sorted(pred_props)})"
            )
        t, p = _pair(true_props[k], pred_props[k], k)
        if total is None:
            total, count = np.zeros_like(t), np.zeros_like(t)
        elif t.shape != total.shape:
            raise ValueError(f"property {k!r} has {t.size} values, the others {total.size}")
        ok = np.isfinite(t) & np.isfinite(p) & (t != 0.0)
        rel = np.abs(p - t) / np.where(ok, np.abs(t), 1.0)
        total += np.where(ok, rel, 0.0)
        count += ok
    if total is None:
        raise ValueError("names is empty")
    out = np.full_like(total, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


def per_element_error(
    ids: Iterable, elements_of: Mapping | Callable, delta: Iterable
) -> dict[str, tuple[float, int]]:
    """element → (mean Δ̄, number of materials) over the materials containing it.

    ``elements_of`` maps a material id to its element symbols (a mapping, or a callable taking
    the id); each element of a material counts once. Materials with NaN Δ̄ are skipped. The dict
    is ordered by atomic number (symbols unknown to pymatgen last, alphabetically).
    """
    ids = list(ids)
    d = _vector(delta, "delta")
    if len(ids) != d.size:
        raise ValueError(f"ids ({len(ids)}) and delta ({d.size}) lengths differ")
    lookup = elements_of if callable(elements_of) else elements_of.__getitem__
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for i, value in zip(ids, d):
        if not np.isfinite(value):
            continue
        for el in set(map(str, lookup(i))):
            sums[el] = sums.get(el, 0.0) + float(value)
            counts[el] = counts.get(el, 0) + 1
    return {el: (sums[el] / counts[el], counts[el]) for el in sorted(sums, key=_element_order)}


def _element_order(symbol: str):
    from pymatgen.core import Element  # lazy: pymatgen is slow to import

    try:
        return (0, Element(symbol).Z, symbol)
    except ValueError:
        return (1, 0, symbol)


class Ranked(NamedTuple):
    """One material of a ranking: its position in the input arrays, its id and its Δ̄."""

    index: int
    id: object
    delta: float


def best_worst(ids: Iterable, delta: Iterable, k: int = 6) -> dict[str, list[Ranked]]:
    """``dict(best=[k lowest Δ̄, ascending], worst=[k highest Δ̄, descending])``; NaN Δ̄ skipped,
    ties kept in input order. Fewer than ``k`` finite values give shorter lists."""
    ids = list(ids)
    d = _vector(delta, "delta")
    if len(ids) != d.size:
        raise ValueError(f"ids ({len(ids)}) and delta ({d.size}) lengths differ")
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    finite = np.flatnonzero(np.isfinite(d))
    up = finite[np.argsort(d[finite], kind="stable")]
    down = finite[np.argsort(-d[finite], kind="stable")]
    make = lambda idx: [Ranked(int(i), ids[i], float(d[i])) for i in idx[:k]]  # noqa: E731
    return dict(best=make(up), worst=make(down))


# --------------------------------------------------------------------------------------------
# Metrics against ensemble size
# --------------------------------------------------------------------------------------------
def metric_vs_ensemble_size(
    member_preds,
    true_props: Mapping[str, Iterable],
    omega_meV=BIN_CENTRES_MEV,
    sizes: Iterable[int] | None = None,
    n_draws: int = 10,
    seed: int = 0,
    mu_star: float = MU_STAR_DEFAULT,
) -> dict:
    """R², MAE and RMSE of the properties of the ensemble-mean a2F when only ``s`` members are
    averaged, for each ``s`` in ``sizes`` (default 1..M).

    ``member_preds`` [M, N, B]: every member's a2F for N materials on ``omega_meV`` [B].
    ``true_props``: property → [N] (any of :data:`PROPERTIES`; those present are evaluated).
    Each draw takes ``s`` distinct members uniformly at random (``numpy.random.default_rng(seed)``),
    averages their spectra, computes λ, ω_log, ω_2 and Allen–Dynes T_c (``mu_star``) and scores
    them. ``s = M`` has a single subset and is evaluated once.

    Returns ``{"sizes": [...], "n_draws": [...], "properties": {name: {"r2_mean": [...],
    "r2_std": [...], "mae_mean", "mae_std", "rmse_mean", "rmse_std"}}}`` (lists aligned with
    ``sizes``; std over draws with ddof = 0).
    """
    preds = np.asarray(member_preds, dtype=np.float64)
    omega = np.asarray(omega_meV, dtype=np.float64)
    if preds.ndim != 3 or preds.shape[2] != omega.size:
        raise ValueError(f"member_preds must be [M, N, {omega.size}], got shape {preds.shape}")
    m_members, n_mat = preds.shape[:2]
    names = [k for k in PROPERTIES if k in true_props]
    if not names:
        raise ValueError(f"true_props has none of {PROPERTIES}")
    truth = {k: _vector(true_props[k], k) for k in names}
    for k, t in truth.items():
        if t.size != n_mat:
            raise ValueError(f"true_props[{k!r}] has {t.size} values, member_preds {n_mat} materials")
    sizes = list(range(1, m_members + 1)) if sizes is None else sorted({int(s) for s in sizes})
    if not sizes or sizes[0] < 1 or sizes[-1] > m_members:
        raise ValueError(f"sizes must lie in 1..{m_members}, got {sizes}")
    if n_draws < 1:
        raise ValueError(f"n_draws must be positive, got {n_draws}")

    rng = np.random.default_rng(seed)
    stats = ("r2", "mae", "rmse")
    out = {k: {f"{s}_{a}": [] for s in stats for a in ("mean", "std")} for k in names}
    draws_used = []
    for s in sizes:
        n_here = 1 if comb(m_members, s) == 1 else n_draws
        draws_used.append(n_here)
        scores = {k: {st: [] for st in stats} for k in names}
        for _ in range(n_here):
            members = rng.choice(m_members, size=s, replace=False)
            props = properties(omega, preds[members].mean(axis=0), mu_star)
            for k in names:
                met = regression_metrics(truth[k], np.atleast_1d(props[k]))
                for st in stats:
                    scores[k][st].append(met[st])
        for k in names:
            for st in stats:
                vals = np.asarray(scores[k][st])
                out[k][f"{st}_mean"].append(float(vals.mean()))
                out[k][f"{st}_std"].append(float(vals.std()))
    return {"sizes": sizes, "n_draws": draws_used, "properties": out}
