"""The metrics a superconductor screen is judged by: the high-Tc end, not the average.

Most materials of a Tc dataset sit below a few kelvin, so MAE, RMSE and R² over all entries are
dominated by them; a model can score well there and still compress the materials a screen exists to
find. :func:`top_end_metrics` scores those:

* ``high``: MAE, RMSE, mean signed error (``bias``, negative = predicted too low) and the median ratio
  predicted/reference on the entries whose *reference* Tc is at least ``high_K`` (5 K);
* ``spearman``: rank correlation of predicted against reference Tc over all entries;
* ``classes[T]`` for each threshold T (5 K and 10 K): a material is a positive when its reference
  Tc ≥ T, called positive when its predicted Tc ≥ T. Precision and recall of that call
  (scikit-learn; NaN when nothing is called positive), the average precision of the predicted Tc as a
  score (``average_precision_score``), and the best precision reachable at a recall of at least 0.5
  (``precision_at_recall_half``, from ``precision_recall_curve``).

:func:`fit_of_high` is the fit of an ensemble to its own training entries above a threshold: the median
relative error |pred − ref| / ref and the median ratio pred / ref.

Non-finite pairs are dropped from every metric; counts say how many were used.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HIGH_TC_K", "CLASS_THRESHOLDS_K", "FIT_THRESHOLD_K", "top_end_metrics", "fit_of_high",
           "top_end_markdown"]

#: Reference Tc at and above which an entry counts as "high" for the top-end MAE/RMSE.
HIGH_TC_K = 5.0
#: Thresholds of the superconductor/not classification.
CLASS_THRESHOLDS_K = (5.0, 10.0)
#: Reference Tc at and above which an ensemble's fit of its own training entries is measured.
FIT_THRESHOLD_K = 10.0
#: Recall at which ``precision_at_recall_half`` is read.
RECALL_FLOOR = 0.5


def _finite_pairs(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"true and pred lengths differ ({t.size} vs {p.size})")
    keep = np.isfinite(t) & np.isfinite(p)
    return t[keep], p[keep]


def _classes(t: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    from sklearn.metrics import average_precision_score, precision_recall_curve, precision_score, recall_score

    positive = t >= threshold
    called = p >= threshold
    out = {"threshold_K": threshold, "positives": int(positive.sum()), "called_positive": int(called.sum()),
           "precision": float("nan"), "recall": float("nan"), "average_precision": float("nan"),
           "precision_at_recall_half": float("nan"), "prevalence": float(positive.mean()) if t.size else float("nan")}
    if not t.size:
        return out
    if called.any():
        out["precision"] = float(precision_score(positive, called, zero_division=np.nan))
    if positive.any():
        out["recall"] = float(recall_score(positive, called))
        out["average_precision"] = float(average_precision_score(positive, p))
        precision, recall, _ = precision_recall_curve(positive, p)
        out["precision_at_recall_half"] = float(precision[recall >= RECALL_FLOOR].max())
    return out


def top_end_metrics(y_true, y_pred, high_K: float = HIGH_TC_K,
                    thresholds: tuple[float, ...] = CLASS_THRESHOLDS_K) -> dict:
    """Top-end metrics of predicted Tc ``y_pred`` against reference Tc ``y_true`` (K); see the module doc."""
    from scipy.stats import spearmanr

    t, p = _finite_pairs(y_true, y_pred)
    high = t >= high_K
    th, ph = t[high], p[high]
    out = {"n": int(t.size),
           "high": {"threshold_K": high_K, "n": int(high.sum()),
                    "mae": float(np.mean(np.abs(ph - th))) if th.size else float("nan"),
                    "rmse": float(np.sqrt(np.mean((ph - th) ** 2))) if th.size else float("nan"),
                    "bias": float(np.mean(ph - th)) if th.size else float("nan"),
                    "median_ratio": float(np.median(ph / th)) if th.size else float("nan")},
           "spearman": float("nan"),
           "classes": {f"{thr:g}": _classes(t, p, thr) for thr in thresholds}}
    if t.size >= 3 and np.ptp(t) > 0 and np.ptp(p) > 0:
        out["spearman"] = float(spearmanr(t, p).statistic)
    return out


def fit_of_high(y_true, y_pred, threshold_K: float = FIT_THRESHOLD_K) -> dict:
    """How well a model reproduces the entries with reference Tc ≥ ``threshold_K`` (e.g. its own training
    entries): ``n``, the median relative error |pred − ref| / ref and the median ratio pred / ref."""
    t, p = _finite_pairs(y_true, y_pred)
    keep = t >= threshold_K
    t, p = t[keep], p[keep]
    if not t.size:
        return {"threshold_K": threshold_K, "n": 0, "median_relative_error": float("nan"),
                "median_ratio": float("nan")}
    return {"threshold_K": threshold_K, "n": int(t.size),
            "median_relative_error": float(np.median(np.abs(p - t) / t)),
            "median_ratio": float(np.median(p / t))}


def _cell(value, digits: int = 2) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def top_end_markdown(rows: dict[str, dict]) -> str:
    """A markdown table of :func:`top_end_metrics` records, one row per model (``name → record``)."""
    thresholds = sorted({k for r in rows.values() for k in r["classes"]}, key=float)
    head = ["model", "n ≥ 5 K", "MAE ≥ 5 K (K)", "RMSE ≥ 5 K (K)", "median pred/ref ≥ 5 K", "Spearman"]
    for k in thresholds:
        head += [f"P@{k} K", f"R@{k} K", f"AP@{k} K", f"P at R ≥ 0.5, {k} K"]
    lines = ["| " + " | ".join(head) + " |", "|:--|" + "--:|" * (len(head) - 1)]
    for name, r in rows.items():
        h = r["high"]
        cells = [name, str(h["n"]), _cell(h["mae"]), _cell(h["rmse"]), _cell(h["median_ratio"]), _cell(r["spearman"])]
        for k in thresholds:
            c = r["classes"].get(k) or {}
            cells += [_cell(c.get("precision")), _cell(c.get("recall")), _cell(c.get("average_precision")),
                      _cell(c.get("precision_at_recall_half"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
