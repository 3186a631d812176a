"""Precision–recall screening for high-T_c materials (paper Fig. 5): PR curves over the decision
threshold, average precision, the two operating points of the two-stage (CSO → CPD) flow,
confusion counts against a random classifier, and the ranking of unlabeled candidates.

Conventions
-----------
* A material is a *positive* when its reference T_c (``tc_true``, K) is ≥ ``threshold_K``
  (the paper: T_c^DFT ≥ 5 K).
* A *decision threshold* ``t`` (K) flags a material when its predicted T_c is ≥ ``t``.  The curve
  visits every distinct predicted value as ``t`` (ascending), so tied predictions are flagged
  together and each point is an operating point a user can actually choose.
* precision = TP / (TP + FP), recall = TP / (number of positives).  At a threshold equal to a
  predicted value at least one material is flagged, so precision is always defined.  Recall needs
  at least one positive: a set without positives raises ``ValueError``.
* Average precision is scikit-learn's step-wise sum AP = Σ_n (R_n − R_{n−1}) P_n over the points
  in order of *decreasing* threshold, with R_0 = 0 (no interpolation).
* Pairs with a non-finite truth or prediction are dropped before anything is computed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from betenet.physics.properties import TC_ALLEN_DYNES

__all__ = [
    "DEFAULT_THRESHOLD_K",
    "PRCurve",
    "precision_recall",
    "curve_average_precision",
    "random_ap",
    "threshold_for_precision",
    "operating_point",
    "confusion",
    "two_stage",
    "rank_candidates",
]

#: The paper's high-T_c criterion on the reference T_c (K).
DEFAULT_THRESHOLD_K = 5.0
#: Tolerance when comparing a precision to a target (precisions are ratios of small integers).
_PRECISION_TOL = 1e-12


@dataclass(frozen=True)
class PRCurve:
    """Precision and recall at each decision threshold (ascending, one per distinct prediction).

    ``recall`` is relative to ``n_positive``, the positives of the whole evaluated set (for a
    two-stage flow, including those stage 1 discarded); ``n`` is the size of that set.
    """

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    n_positive: int
    n: int

    def __len__(self) -> int:
        return int(self.thresholds.size)


def _clean(tc_true, tc_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(tc_true, dtype=np.float64)
    p = np.asarray(tc_pred, dtype=np.float64)
    if t.ndim != 1 or p.ndim != 1 or t.shape != p.shape:
        raise ValueError(f"tc_true and tc_pred must be 1-D of equal length, got {t.shape} and {p.shape}")
    keep = np.isfinite(t) & np.isfinite(p)
    return t[keep], p[keep]


def _curve(positive: np.ndarray, score: np.ndarray, n_positive: int, n: int) -> PRCurve:
    """PR curve of flagging ``score >= t`` for every distinct score ``t`` (scikit-learn's
    ``precision_recall_curve``); recall over ``n_positive`` (≥ the positives among ``score``: a two-stage
    flow counts those stage 1 discarded too)."""
    from sklearn.metrics import precision_recall_curve

    if n_positive == 0:
        raise ValueError("no positives (no reference T_c at or above the threshold): recall is undefined")
    found = int(np.sum(positive))
    if found == 0:  # every positive was discarded before: precision 0 at every threshold
        thresholds = np.unique(score)
        zeros = np.zeros(thresholds.size)
        return PRCurve(thresholds=thresholds, precision=zeros, recall=zeros.copy(), n_positive=int(n_positive),
                       n=int(n))
    precision, recall, thresholds = precision_recall_curve(positive.astype(bool), score)
    # scikit-learn appends the (precision 1, recall 0) end point with no threshold
    return PRCurve(thresholds=thresholds, precision=precision[:-1], recall=recall[:-1] * found / n_positive,
                   n_positive=int(n_positive), n=int(n))


def precision_recall(tc_true, tc_pred, threshold_K: float = DEFAULT_THRESHOLD_K) -> PRCurve:
    """PR curve of screening with ``tc_pred`` for materials with ``tc_true >= threshold_K``."""
    t, p = _clean(tc_true, tc_pred)
    positive = t >= threshold_K
    return _curve(positive, p, int(positive.sum()), t.size)


def curve_average_precision(curve: PRCurve) -> float:
    """AP = Σ_n (R_n − R_{n−1}) P_n over the curve's points by decreasing threshold, R_0 = 0.

    For a two-stage curve whose recall stops below 1, this is the area reached by the flow.
    """
    if len(curve) == 0:
        return 0.0
    recall = curve.recall[::-1]
    precision = curve.precision[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * precision))


def random_ap(tc_true, threshold_K: float = DEFAULT_THRESHOLD_K) -> float:
    """AP expected of a random ranking: the prevalence (positives / materials with finite T_c)."""
    t = np.asarray(tc_true, dtype=np.float64)
    t = t[np.isfinite(t)]
    if t.size == 0:
        raise ValueError("tc_true has no finite value")
    return float(np.mean(t >= threshold_K))


def threshold_for_precision(curve: PRCurve, target: float = 1.0) -> float | None:
    """Lowest decision threshold whose precision reaches ``target`` (the cheap first stage:
    the largest recall among the points at that precision); None if no point reaches it."""
    ok = np.flatnonzero(curve.precision >= target - _PRECISION_TOL)
    return None if ok.size == 0 else float(curve.thresholds[ok[0]])


def operating_point(curve: PRCurve, precision: float | None = None, recall: float | None = None) -> dict | None:
    """The chosen point of the curve: ``dict(threshold, precision, recall, index)``.

    Give exactly one of ``precision`` (the point of largest recall among those with at least that
    precision; ties: higher precision, then higher threshold) or ``recall`` (the point of largest
    precision among those with at least that recall; ties: higher recall, then higher threshold).
    None when no point qualifies.
    """
    if (precision is None) == (recall is None):
        raise ValueError("give exactly one of precision= or recall=")
    if precision is not None:
        ok = curve.precision >= precision - _PRECISION_TOL
        keys = (curve.thresholds, curve.precision, curve.recall)  # lexsort: last key is primary
    else:
        ok = curve.recall >= recall - _PRECISION_TOL
        keys = (curve.thresholds, curve.recall, curve.precision)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return None
    best = idx[np.lexsort(tuple(k[idx] for k in keys))[-1]]
    return dict(
        threshold=float(curve.thresholds[best]),
        precision=float(curve.precision[best]),
        recall=float(curve.recall[best]),
        index=int(best),
    )


def confusion(
    tc_true, tc_pred, threshold_K: float = DEFAULT_THRESHOLD_K, decision_K: float = DEFAULT_THRESHOLD_K
) -> dict:
    """Confusion counts of flagging ``tc_pred >= decision_K`` against ``tc_true >= threshold_K``.

    ``dict(tp, fp, fn, tn, random=dict(tp, fp, fn, tn))``: ``random`` holds the expected counts of
    a random classifier that flags as many materials (k) as the model: with P positives among N,
    E[tp] = k P / N, E[fp] = k (N − P) / N, E[fn] = P − E[tp], E[tn] = N − P − E[fp].
    """
    t, p = _clean(tc_true, tc_pred)
    if t.size == 0:
        raise ValueError("no material with finite tc_true and tc_pred")
    from sklearn.metrics import confusion_matrix

    actual = t >= threshold_K
    flagged = p >= decision_K
    n, n_pos, k = t.size, int(actual.sum()), int(flagged.sum())
    tn, fp, fn, tp = (int(c) for c in confusion_matrix(actual, flagged, labels=[False, True]).ravel())
    r_tp = k * n_pos / n
    r_fp = k * (n - n_pos) / n
    return dict(tp=tp, fp=fp, fn=fn, tn=tn, random=dict(tp=r_tp, fp=r_fp, fn=n_pos - r_tp, tn=(n - n_pos) - r_fp))


def two_stage(
    tc_true,
    tc_stage1,
    tc_stage2,
    stage1_decision_K: float,
    threshold_K: float = DEFAULT_THRESHOLD_K,
    stage2_decision_K: float | None = None,
) -> dict:
    """Screening flow: stage 1 (e.g. CSO, free) sends the materials with ``tc_stage1 >=
    stage1_decision_K`` to stage 2 (e.g. CPD, needs a coarse phonon calculation), which ranks
    them by ``tc_stage2``. Materials stage 1 rejects are never flagged.

    ``tc_stage2`` is needed only for the survivors (NaN elsewhere is fine: it was never computed).
    Materials with a non-finite ``tc_true`` or ``tc_stage1`` are dropped.

    Returns ``dict(curve, ap, random_ap, n, n_positive, n_stage2, fraction_to_stage2,
    stage1=dict(precision, recall), operating=...)``: ``curve`` is the combined flow's PR curve
    over stage-2 thresholds, with recall relative to *all* positives (so it tops out at stage 1's
    recall), ``ap`` its :func:`curve_average_precision`; ``stage1`` is the precision/recall of
    stage 1 alone (precision NaN when it passes nothing); ``operating`` is the combined point at
    ``stage2_decision_K`` (``dict(decision_K, precision, recall, flagged)``; precision NaN when
    nothing is flagged) when that is given, else None.
    """
    t = np.asarray(tc_true, dtype=np.float64)
    s1 = np.asarray(tc_stage1, dtype=np.float64)
    s2 = np.asarray(tc_stage2, dtype=np.float64)
    if not (t.ndim == s1.ndim == s2.ndim == 1 and t.shape == s1.shape == s2.shape):
        raise ValueError(
            f"tc_true, tc_stage1, tc_stage2 must be 1-D of equal length: {t.shape}, {s1.shape}, {s2.shape}"
        )
    keep = np.isfinite(t) & np.isfinite(s1)
    t, s1, s2 = t[keep], s1[keep], s2[keep]
    positive = t >= threshold_K
    n, n_pos = t.size, int(positive.sum())
    if n_pos == 0:
        raise ValueError("no positives (no reference T_c at or above the threshold): recall is undefined")
    survive = s1 >= stage1_decision_K
    missing = survive & ~np.isfinite(s2)
    if missing.any():
        raise ValueError(f"tc_stage2 is not finite for {int(missing.sum())} materials that pass stage 1")
    n_s2 = int(survive.sum())
    if n_s2:
        curve = _curve(positive[survive], s2[survive], n_pos, n)
    else:
        empty = np.zeros(0)
        curve = PRCurve(empty, empty, empty, n_pos, n)
    tp1 = int(np.sum(positive & survive))
    operating = None
    if stage2_decision_K is not None:
        flagged = survive & (np.where(survive, s2, -np.inf) >= stage2_decision_K)
        tp = int(np.sum(positive & flagged))
        n_flag = int(flagged.sum())
        operating = dict(
            decision_K=float(stage2_decision_K),
            precision=tp / n_flag if n_flag else float("nan"),
            recall=tp / n_pos,
            flagged=n_flag,
        )
    return dict(
        curve=curve,
        ap=curve_average_precision(curve),
        random_ap=n_pos / n,
        n=n,
        n_positive=n_pos,
        n_stage2=n_s2,
        fraction_to_stage2=n_s2 / n if n else float("nan"),
        stage1=dict(precision=tp1 / n_s2 if n_s2 else float("nan"), recall=tp1 / n_pos),
        operating=operating,
    )


def rank_candidates(ids: Iterable, tc_mean, tc_std=None) -> list[dict]:
    """Unlabeled structures ranked by predicted (Allen–Dynes) T_c, highest first: a list of
    ``dict(rank, id, tc_allen_dynes_K, tc_allen_dynes_K_std)`` (the names of ``betenet predict``'s
    columns, :data:`~betenet.physics.properties.TC_ALLEN_DYNES`; rank from 1; the std None when
    ``tc_std`` is not given). Ties keep input order; non-finite means go last."""
    ids = list(ids)
    mean = np.asarray(tc_mean, dtype=np.float64)
    std = None if tc_std is None else np.asarray(tc_std, dtype=np.float64)
    if mean.ndim != 1 or mean.size != len(ids) or (std is not None and std.shape != mean.shape):
        raise ValueError(
            f"ids ({len(ids)}), tc_mean {mean.shape} and tc_std {None if std is None else std.shape} must align"
        )
    key = np.where(np.isfinite(mean), -mean, np.inf)
    order = np.argsort(key, kind="stable")
    return [
        {"rank": r + 1, "id": ids[i], TC_ALLEN_DYNES: float(mean[i]),
         f"{TC_ALLEN_DYNES}_std": None if std is None else float(std[i])}
        for r, i in enumerate(order)
    ]
