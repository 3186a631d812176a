"""Evaluate a model on a labelled split: the paper's Table I and figures, and the checks a scientist reads.

:func:`evaluation_report` takes one model's :class:`~betenet.evaluation.predictions.SplitPredictions` and writes
Table I (R², MAE, RMSE of λ, ω_log, ω_2, T_c, beside the median predictor and any compared model) as JSON and
markdown, the parity plots, the six best and six worst spectra by Δ̄ (mean normalised error over λ, ω_log, ω_2),
the per-element Δ̄, the metrics against ensemble size, the physics summary (are the predicted spectra those of
real metals?), the uncertainty summary (does the spread mean something?), the top-end metrics of T_c a screen is
judged by (:mod:`betenet.evaluation.top_end`: error on the high-T_c entries, precision/recall/average precision at
5 K and 10 K, Spearman; ``top_end.md``) and a per-material CSV.
Screening (precision–recall, the two-stage flow, rankings) is :mod:`betenet.evaluation.screening_report`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from betenet import files as _files
from betenet.evaluation import figures
from betenet.evaluation.metrics import (best_worst, metric_vs_ensemble_size, normalised_error, per_element_error,
                                        property_table, table_markdown)
from betenet.evaluation.predictions import SplitPredictions
from betenet.evaluation.top_end import top_end_markdown, top_end_metrics
from betenet.files import csv_cell
from betenet.physics.properties import (CONVENTIONAL_RANGES, PROPERTIES, TYPICAL_RANGES, implausibility, in_ranges,
                                        phonon_moments)

__all__ = ["default_sizes", "evaluation_report", "physics_summary", "top_end_summary", "uncertainty_summary",
           "write_json"]


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
def default_sizes(n_members: int) -> list[int]:
    """Ensemble sizes to score: every size up to 10 members, then a roughly logarithmic ladder."""
    if n_members <= 10:
        return list(range(1, n_members + 1))
    ladder = [1, 2, 3, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000]
    return sorted({s for s in ladder if s < n_members} | {n_members})


def write_json(path: Path, obj, indent: int | None = 2) -> Path:
    """Write a report ``obj`` (numpy values allowed) as strict JSON, NaN and inf as null."""
    return _files.write_json(path, obj, indent=indent, nan_as_null=True)


def _write_predictions_csv(p: SplitPredictions, delta: np.ndarray, path: Path) -> Path:
    """One row per material: ``<property>_true`` (of the reference a2F), ``<property>_reported``
    (the dataset's value, when the data reports any), ``<property>_pred`` and ``_std``, Δ̄; numbers as
    :func:`betenet.files.csv_cell` writes them."""
    reported = p.reported if p.has_reported else None
    cols = ["id", "formula"]
    for k in PROPERTIES:
        cols += [f"{k}_true"] + ([f"{k}_reported"] if reported else []) + [f"{k}_pred"] + \
            ([f"{k}_std"] if p.std else [])
    cols.append("delta")
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for i, (ident, formula) in enumerate(zip(p.ids, p.formulas)):
            row = [ident, formula]
            for k in PROPERTIES:
                row += [csv_cell(p.true[k][i])] + ([csv_cell(reported[k][i])] if reported else []) + \
                    [csv_cell(p.pred[k][i])] + ([csv_cell(p.std[k][i])] if p.std else [])
            row.append(csv_cell(delta[i]))
            w.writerow(row)
    return path


def _reported_table(p: SplitPredictions) -> dict[str, dict] | None:
    """Metrics of the predictions against the reported values, for the properties the data reports."""
    if not p.has_reported:
        return None
    given = {k: v for k, v in p.reported.items() if np.isfinite(v).any()}
    return property_table(given, p.pred)


def _ranked(rows) -> list[dict]:
    return [dict(index=r.index, id=r.id, delta=r.delta) for r in rows]


def _median_table(p: SplitPredictions, which: str, truth: Mapping[str, np.ndarray]) -> dict[str, dict] | None:
    """Metrics of the median predictor (the training pool's median of each property) against ``truth``."""
    medians = p.pool_median.get(which) or {}
    names = [k for k in truth if np.isfinite(np.asarray(truth[k], float)).any() and np.isfinite(medians.get(k, np.nan))]
    if not names:
        return None
    return property_table({k: truth[k] for k in names}, {k: np.full(len(p), medians[k]) for k in names})


def physics_summary(p: SplitPredictions) -> dict:
    """Are the predicted spectra those of real metals? Percentiles of the predicted λ, ω_log, ω_2, T_c;
    the share inside :data:`~betenet.physics.properties.TYPICAL_RANGES` (any real metal) and inside
    :data:`~betenet.physics.properties.CONVENTIONAL_RANGES` (ω_log up to 800 K), the share flagged by
    :func:`~betenet.physics.properties.implausibility`; with the phonon DOS of the inputs (CPD/FPD),
    the median ω_log of the phonon DOS itself (a2F moments of g) beside the predicted one."""
    pct = (5, 25, 50, 75, 95)
    out = {"percentiles": list(pct)}
    for k in PROPERTIES:
        v = np.asarray(p.pred[k], dtype=float)
        v = v[np.isfinite(v)]
        out[k] = np.percentile(v, pct).tolist() if v.size else None
    lam, wlog = np.asarray(p.pred["lambda"], float), np.asarray(p.pred["omega_log_K"], float)
    for name, ranges in (("typical", TYPICAL_RANGES), ("conventional", CONVENTIONAL_RANGES)):
        out[f"{name}_ranges"] = {k: list(v) for k, v in ranges.items()}
        out[f"fraction_in_{name}_ranges"] = float(in_ranges(p.pred, ranges).mean()) if len(p) else float("nan")
    flagged = [i for i in range(len(p)) if implausibility(lam[i], wlog[i])]
    out["fraction_flagged_implausible"] = len(flagged) / len(p) if len(p) else float("nan")
    out["flagged_ids"] = [p.ids[i] for i in flagged[:20]]
    if p.phonon_dos is not None:
        g = phonon_moments(p.omega_meV, p.phonon_dos)["omega_log_K"]
        out["phonon_dos_omega_log_K_median"] = float(np.median(g))
        out["predicted_omega_log_K_median"] = float(np.median(wlog))
        out["omega_log_ratio_of_medians"] = float(np.median(wlog) / np.median(g))
    return out


def uncertainty_summary(p: SplitPredictions) -> dict | None:
    """Does the ensemble's spread mean something? Per property with a truth: the Spearman rank
    correlation between |error| and the predicted std, and the share of materials whose truth lies
    within mean ± 2 std; with a calibrated spread (``notes["calibration"]``,
    :mod:`betenet.inference.calibration`) that share also with the members' own std
    (``fraction_within_2std_uncalibrated``) and the scale applied."""
    from scipy.stats import spearmanr

    if p.std is None:
        return None
    name, truth = p.truth()
    scales = (p.notes.get("calibration") or {}).get("scales") or {}
    out = {"truth": name, "calibrated": bool(scales)}
    for k in PROPERTIES:
        t, m, s = (np.asarray(d[k], float) for d in (truth, p.pred, p.std))
        ok = np.isfinite(t) & np.isfinite(m) & np.isfinite(s)
        if ok.sum() < 3:
            continue
        err = np.abs(m[ok] - t[ok])
        rho = spearmanr(err, s[ok]).statistic if np.ptp(s[ok]) > 0 and np.ptp(err) > 0 else float("nan")
        out[k] = {"n": int(ok.sum()), "spearman_abs_error_vs_std": float(rho),
                  "fraction_within_2std": float(np.mean(err <= 2 * s[ok]))}
        if k in scales:
            out[k]["fraction_within_2std_uncalibrated"] = float(np.mean(err <= 2 * s[ok] / scales[k]))
            out[k]["calibration_scale"] = scales[k]
    return out


def top_end_summary(p: SplitPredictions, compare: Iterable[SplitPredictions] = ()) -> dict | None:
    """:func:`~betenet.evaluation.top_end.top_end_metrics` of the predicted T_c against the split's truth (the
    reference a2F's T_c, else the reported one), for ``p``, the median predictor and each ``compare`` model on
    the same materials; None when the split has no T_c truth."""
    name, truth = p.truth()
    tc = np.asarray(truth.get("tc_K", []), float)
    if not np.isfinite(tc).any():
        return None
    models = {p.model: top_end_metrics(tc, p.pred["tc_K"])}
    median = (p.pool_median.get(name) or {}).get("tc_K")
    if median is not None and np.isfinite(median):
        models["median predictor"] = top_end_metrics(tc, np.full(len(p), median))
    for other in compare:
        models[other.model] = top_end_metrics(tc, other.subset(p.ids).pred["tc_K"])
    return {"truth": name, "models": models}


def _chosen(p: SplitPredictions, ids: Iterable[str] | None, k: int) -> list[int]:
    """Positions of ``ids`` in ``p`` (unknown ids skipped), or the ``k`` highest-T_c materials."""
    if ids:
        pos = {i: n for n, i in enumerate(p.ids)}
        return [pos[i] for i in ids if i in pos]
    tc = np.asarray(p.truth()[1]["tc_K"], float)
    order = np.argsort(-np.where(np.isfinite(tc), tc, -np.inf), kind="stable")
    return [int(i) for i in order[:k] if np.isfinite(tc[i])]


def evaluation_report(p: SplitPredictions, out, k: int = 6, sizes: Iterable[int] | None = None,
                      n_draws: int = 10, seed: int = 0, spectra_ids: Iterable[str] | None = None,
                      compare: Iterable[SplitPredictions] = ()) -> dict:
    """Write Table I, parity plots, best/worst spectra, per-element error, metrics against
    ensemble size, the physics and uncertainty summaries, the spectra of chosen materials
    (``spectra_ids``, default the highest-T_c ones) and ``predictions.csv`` for ``p`` into ``out``;
    returns the summary (also written as ``evaluation.json``). Table I carries, beside ``p``, the
    median predictor of each truth set and the ``compare`` models (e.g. a baseline) on the same
    materials."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = property_table(p.true, p.pred)
    reported = _reported_table(p)
    files = {}
    head = {"model": p.model, "split": p.split, "n": len(p), "mu_star": p.mu_star,
            "truth": "properties of the binned reference a2F (same grid, quadrature and mu* as the prediction)",
            "metrics": table}
    baselines = {"median predictor": {"reference": _median_table(p, "reference", p.true)}}
    if reported is not None:
        head["reported_metrics"] = reported
        head["reported_truth"] = "scalar values the dataset reports (its own spectrum processing and mu*)"
        baselines["median predictor"]["reported"] = _median_table(p, "reported", p.reported)
    for other in compare:
        other = other.subset(p.ids)
        baselines[other.model] = {"reference": property_table(p.true, other.pred)}
        if reported is not None:
            given = {k: v for k, v in p.reported.items() if np.isfinite(v).any()}
            baselines[other.model]["reported"] = property_table(given, other.pred)
    head["baselines"] = baselines
    files["table_json"] = write_json(out / "table1.json", head)
    blocks = {}
    if p.has_reference or reported is None:
        blocks[p.model] = table
        blocks.update({name: b["reference"] for name, b in baselines.items() if b.get("reference") and p.has_reference})
    if reported is not None:
        blocks[f"{p.model} vs reported"] = reported
        blocks.update({f"{name} vs reported": b["reported"] for name, b in baselines.items() if b.get("reported")})
    (out / "table1.md").write_text(table_markdown(blocks))
    files["table_markdown"] = out / "table1.md"
    if p.has_reference or reported is None:
        files["parity"] = figures.parity_grid(p.true, p.pred, out / "parity.png",
                                              title=f"{p.model}: {p.split} split", std_props=p.std)
    if reported is not None:
        files["parity_reported"] = figures.parity_grid(
            {k: p.reported[k] for k in reported}, {k: p.pred[k] for k in reported}, out / "parity_reported.png",
            title=f"{p.model}: {p.split} split vs reported values", std_props=p.std)
    delta = normalised_error(p.true, p.pred)
    files["predictions"] = _write_predictions_csv(p, delta, out / "predictions.csv")
    summary = {**head, "notes": p.notes, "physics": physics_summary(p), "uncertainty": uncertainty_summary(p)}
    summary["top_end"] = top_end_summary(p, compare)
    if summary["top_end"]:
        (out / "top_end.md").write_text(top_end_markdown(summary["top_end"]["models"]))
        files["top_end"] = out / "top_end.md"
    files["physics"] = figures.distribution_plot(
        {k: p.pred[k] for k in ("lambda", "omega_log_K")}, TYPICAL_RANGES, out / "physics.png",
        title=f"{p.model}: predicted lambda and omega_log ({p.split} split)")
    chosen = _chosen(p, spectra_ids, k)
    if chosen and p.a2f_mean is not None:
        truth_tc = p.truth()[1]["tc_K"]
        titles = [f"{p.formulas[i]} ({p.ids[i]}) Tc {truth_tc[i]:.3g} K, pred {p.pred['tc_K'][i]:.3g} K"
                  for i in chosen]
        overlays = None
        if p.phonon_dos is not None:  # the phonon DOS scaled to the predicted spectrum's height
            scale = np.nanmax(p.a2f_mean[chosen], axis=1, keepdims=True) / \
                np.maximum(np.nanmax(p.phonon_dos[chosen], axis=1, keepdims=True), 1e-30)
            overlays = {"phonon DOS (scaled)": p.phonon_dos[chosen] * scale}
        truth_a2f = p.true_a2f[chosen] if p.true_a2f is not None else np.full_like(p.a2f_mean[chosen], np.nan)
        files["spectra"] = figures.spectra_panel(
            p.omega_meV, truth_a2f, {p.model: p.a2f_mean[chosen]},
            None if p.a2f_std is None else {p.model: p.a2f_std[chosen]}, titles, out / "spectra.png",
            suptitle=f"{p.model}: predicted a2F", overlays=overlays)
        summary["spectra_ids"] = [p.ids[i] for i in chosen]

    per_el = per_element_error(p.ids, p.elements, delta)
    summary["per_element"] = {el: {"mean_delta": m, "n": c} for el, (m, c) in per_el.items()}
    if per_el:
        files["per_element"] = figures.per_element_plot(per_el, out / "per_element.png",
                                                        title=f"{p.model}: mean normalised error per element")

    if p.a2f_mean is not None and p.true_a2f is not None:
        has = np.flatnonzero(np.all(np.isfinite(p.true_a2f), axis=1))
        ranked = best_worst([p.ids[i] for i in has], delta[has], k=k)
        summary["best"], summary["worst"] = _ranked(ranked["best"]), _ranked(ranked["worst"])
        for which, rows in ranked.items():
            if not rows:
                continue
            idx = has[[r.index for r in rows]]
            titles = [f"{p.formulas[i]} ({p.ids[i]})  Δ̄ = {r.delta:.2f}" for i, r in zip(idx, rows)]
            files[f"{which}_spectra"] = figures.spectra_panel(
                p.omega_meV, p.true_a2f[idx], {p.model: p.a2f_mean[idx]},
                None if p.a2f_std is None else {p.model: p.a2f_std[idx]}, titles,
                out / f"{which}_spectra.png", suptitle=f"{p.model}: {which} {len(rows)} by Δ̄")

    if p.member_a2f is not None:
        m = p.member_a2f.shape[0]
        sizes = default_sizes(m) if sizes is None else sorted({int(s) for s in sizes if 1 <= int(s) <= m})
        truth_name, truth = p.truth()
        result = metric_vs_ensemble_size(p.member_a2f, truth, omega_meV=p.omega_meV, sizes=sizes, n_draws=n_draws,
                                         seed=seed, mu_star=p.mu_star)
        result["truth"] = truth_name
        summary["ensemble_size"] = result
        files["ensemble_size_json"] = write_json(out / "ensemble_size.json", result)
        files["ensemble_size"] = figures.ensemble_size_plot(result, out / "ensemble_size.png",
                                                            title=f"{p.model}: metrics against ensemble size")
    summary["files"] = {k: str(v) for k, v in files.items()}
    write_json(out / "evaluation.json", summary)
    return summary
