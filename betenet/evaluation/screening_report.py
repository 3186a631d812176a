"""Screening reports: how well a model's T_c finds the superconductors, and a ranking of new candidates.

:func:`screening_report` writes the precision–recall analysis of T_c^ML against T_c^ref ≥ ``threshold_K``
(``screening.json``, ``pr_curves.png``, ``confusion_*.png``): average precision and the random classifier's, the
cheap first-stage threshold (the lowest one reaching ``stage1_precision``, 1.0 by default), a chosen operating
point and its confusion counts; with a second model, the two-stage flow (stage 1's cheap threshold passes
materials to stage 2, which flags them at its chosen point). :func:`write_ranking` ranks unlabelled candidates by
predicted T_c with its uncertainty. The curve arithmetic is :mod:`betenet.evaluation.screening`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from betenet.errors import InputError
from betenet.evaluation import figures
from betenet.evaluation.predictions import SplitPredictions
from betenet.evaluation.reports import write_json
from betenet.evaluation.screening import (DEFAULT_THRESHOLD_K, PRCurve, confusion, curve_average_precision,
                                          operating_point, precision_recall, random_ap, rank_candidates,
                                          threshold_for_precision, two_stage)
from betenet.files import csv_cell
from betenet.physics.properties import TC_ALLEN_DYNES

__all__ = ["DEFAULT_OPERATING_PRECISION", "screening_curve", "screening_report", "write_ranking"]

#: Default operating point of a screening model: the largest recall with at least this precision.
DEFAULT_OPERATING_PRECISION = 0.8


def _curve_json(curve: PRCurve) -> dict:
    return {"thresholds_K": curve.thresholds.tolist(), "precision": curve.precision.tolist(),
            "recall": curve.recall.tolist()}


def _at(curve: PRCurve, true, pred, threshold_K: float, index: int, target: dict) -> dict:
    decision = float(curve.thresholds[index])
    return {"decision_K": decision, "precision": float(curve.precision[index]),
            "recall": float(curve.recall[index]), "target": target,
            "confusion": confusion(true, pred, threshold_K, decision)}


def _cheap_point(curve: PRCurve, true, pred, threshold_K: float, target: float) -> dict | None:
    decision = threshold_for_precision(curve, target)
    if decision is None:
        return None
    index = int(np.searchsorted(curve.thresholds, decision))
    return _at(curve, true, pred, threshold_K, index, {"precision": target})


def _chosen_point(curve: PRCurve, true, pred, threshold_K: float, precision=None, recall=None) -> dict | None:
    op = operating_point(curve, precision=precision, recall=recall)
    if op is None:
        return None
    target = {"precision": precision} if precision is not None else {"recall": recall}
    return _at(curve, true, pred, threshold_K, op["index"], target)


def screening_curve(p: SplitPredictions, threshold_K: float = DEFAULT_THRESHOLD_K, precision: float | None = None,
                    recall: float | None = None, stage1_precision: float = 1.0,
                    truth: str = "auto") -> tuple[dict, PRCurve]:
    """PR analysis of one model: ``(summary, curve)``. The summary holds ``average_precision``,
    ``random_ap`` (prevalence of the scored materials), ``cheap_stage`` (the lowest decision
    threshold reaching ``stage1_precision``) and ``operating`` (at ``precision``, or ``recall``;
    default precision :data:`DEFAULT_OPERATING_PRECISION`), each with its confusion counts.
    Positives are materials whose ``truth`` T_c (:meth:`SplitPredictions.truth`) is ≥ ``threshold_K``."""
    if precision is None and recall is None:
        precision = DEFAULT_OPERATING_PRECISION
    truth_name, truth_values = p.truth(truth)
    true, pred = np.asarray(truth_values["tc_K"], float), np.asarray(p.pred["tc_K"], float)
    used = np.isfinite(true) & np.isfinite(pred)
    if not used.any():
        raise InputError(p.model, f"no material of the {p.split} split has both a reference and a predicted T_c")
    try:
        curve = precision_recall(true, pred, threshold_K)
    except ValueError:
        raise InputError(p.model, f"no material of the {p.split} split has a reference T_c ≥ {threshold_K:g} K; "
                                  "lower --threshold") from None
    cheap = _cheap_point(curve, true, pred, threshold_K, stage1_precision)
    summary = {
        "model": p.model, "split": p.split, "truth": truth_name, "mu_star": p.mu_star,
        "threshold_K": threshold_K, "n": int(used.sum()),
        "n_positive": curve.n_positive, "average_precision": curve_average_precision(curve),
        "random_ap": random_ap(true[used], threshold_K), "cheap_stage": cheap,
        "operating": _chosen_point(curve, true, pred, threshold_K, precision, recall),
        "curve": _curve_json(curve),
    }
    summary["ap_over_random"] = summary["average_precision"] / summary["random_ap"]
    return summary, curve


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower() or "model"


def _marker(op: dict | None) -> dict | None:
    return None if op is None else {"threshold": op["decision_K"], "precision": op["precision"],
                                    "recall": op["recall"]}


def screening_report(stage1: SplitPredictions, out, threshold_K: float = DEFAULT_THRESHOLD_K,
                     precision: float | None = None, recall: float | None = None, stage1_precision: float = 1.0,
                     stage2: SplitPredictions | None = None, extra: Mapping[str, SplitPredictions] | None = None,
                     truth: str = "auto") -> dict:
    """Write ``screening.json``, ``pr_curves.png`` and ``confusion_*.png`` into ``out``.

    Alone, ``stage1`` is one screening model marked at its operating point. With ``stage2`` (e.g.
    CSO then CPD, scored on the materials both predicted), stage 1 is marked at its cheap
    threshold, stage 2 at its operating point, and the two-stage flow (stage 1's cheap threshold
    decides which materials stage 2 sees; stage 2 flags them at its operating point) is a third
    panel. ``extra`` models (e.g. the baseline) get their own panels at their operating points.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models = {"stage1": stage1}
    if stage2 is not None:
        common = [i for i in stage1.ids if i in set(stage2.ids)]
        if not common:
            raise InputError(stage2.model, "stage 2 predicted none of the materials stage 1 did")
        models = {"stage1": stage1.subset(common), "stage2": stage2.subset(common)}
    for name, p in (extra or {}).items():
        models[name] = p
    result = {"threshold_K": threshold_K, "stage1_precision": stage1_precision, "models": {}}
    curves, aps, markers, confs = {}, {}, {}, {}
    for role, p in models.items():
        summary, curve = screening_curve(p, threshold_K, precision, recall, stage1_precision, truth)
        result["models"][role] = summary
        curves[p.model], aps[p.model] = curve, summary["average_precision"]
        point = summary["cheap_stage"] if (role == "stage1" and stage2 is not None) else summary["operating"]
        markers[p.model] = _marker(point)
        if point is not None:
            confs[p.model] = point["confusion"]
    if stage2 is not None:
        s1, s2 = models["stage1"], models["stage2"]
        cheap, op2 = result["models"]["stage1"]["cheap_stage"], result["models"]["stage2"]["operating"]
        if cheap is None:
            result["two_stage"] = {"error": f"stage 1 reaches precision {stage1_precision:g} at no threshold"}
        else:
            true = s1.truth(result["models"]["stage1"]["truth"])[1]["tc_K"]
            flow = two_stage(true, s1.pred["tc_K"], s2.pred["tc_K"], cheap["decision_K"], threshold_K,
                             None if op2 is None else op2["decision_K"])
            curve = flow.pop("curve")
            flow["curve"] = _curve_json(curve)
            flow["stage1_decision_K"] = cheap["decision_K"]
            short = lambda p: str(p.notes.get("variant", p.model)).upper()  # noqa: E731
            label = f"two-stage {short(s1)} → {short(s2)}"
            curves[label], aps[label] = curve, flow["ap"]
            if flow["operating"] is not None:
                # Stage 1's rejects get −1 K, below any decision threshold (predicted T_c ≥ 0).
                survive = np.asarray(s1.pred["tc_K"]) >= cheap["decision_K"]
                score = np.where(survive, s2.pred["tc_K"], -1.0)
                flow["operating"]["confusion"] = confusion(true, score, threshold_K, flow["operating"]["decision_K"])
                markers[label] = {"threshold": flow["operating"]["decision_K"],
                                  "precision": flow["operating"]["precision"], "recall": flow["operating"]["recall"]}
                confs[label] = flow["operating"]["confusion"]
            result["two_stage"] = flow
    first = result["models"]["stage1"]
    files = {"pr_curves": figures.pr_curve_plot(curves, aps, first["random_ap"], out / "pr_curves.png",
                                                operating_points={k: v for k, v in markers.items() if v},
                                                confusions=confs, threshold_K=threshold_K)}
    for model, conf in confs.items():
        files[f"confusion_{_slug(model)}"] = figures.confusion_plot(
            conf, out / f"confusion_{_slug(model)}.png", title=model)
    result["files"] = {k: str(v) for k, v in files.items()}
    write_json(out / "screening.json", result)
    return result


def write_ranking(path, ids, formulas, tc_mean, tc_std,
                  extra_columns: Mapping[str, Iterable] | None = None) -> list[dict]:
    """Rank candidates by predicted T_c (highest first, ties in input order) into a CSV with
    columns ``rank, id, formula, tc_allen_dynes_K, tc_allen_dynes_K_std`` (``betenet predict``'s
    names; + ``extra_columns``; numbers as :func:`betenet.files.csv_cell`); returns the ranking
    (:func:`~betenet.evaluation.screening.rank_candidates`, with ``formula``)."""
    ranking = rank_candidates(ids, tc_mean, tc_std)
    pos = {str(i): k for k, i in enumerate(ids)}
    formulas = list(formulas)
    extra = {k: list(v) for k, v in (extra_columns or {}).items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["rank", "id", "formula", TC_ALLEN_DYNES, f"{TC_ALLEN_DYNES}_std", *extra])
        for r in ranking:
            k = pos[str(r["id"])]
            r["formula"] = formulas[k]
            w.writerow([r["rank"], r["id"], formulas[k], csv_cell(r[TC_ALLEN_DYNES]),
                        csv_cell(r[f"{TC_ALLEN_DYNES}_std"]), *[csv_cell(v[k]) for v in extra.values()]])
    return ranking
