"""Evaluate and screen a model on a labelled split, writing the paper's table and figures.

A model's predictions on a split are gathered into :class:`SplitPredictions` — from an ensemble
(:func:`ensemble_split_predictions`: mean a2F, properties of the mean, member spread) or from the
linear baseline fitted on the rest of the data (:func:`baseline_split_predictions`) — and then:

* :func:`evaluation_report` writes Table I (R², MAE, RMSE of λ, ω_log, ω_2, T_c) as JSON and
  markdown, the parity plots, the six best and six worst spectra by Δ̄ (mean normalised error over
  λ, ω_log, ω_2), the per-element Δ̄, the metrics against ensemble size and a per-material CSV;
* :func:`screening_report` writes the precision–recall analysis of T_c^ML against
  T_c^ref ≥ ``threshold_K``: average precision and the random classifier's, the cheap first-stage
  threshold (the lowest one reaching ``stage1_precision``, 1.0 by default), a chosen operating
  point, confusion matrices and PR figures; with a second model, the two-stage flow (stage 1's
  cheap threshold passes materials to stage 2, which flags them at its chosen point);
* :func:`write_ranking` ranks unlabelled candidates by predicted T_c with its uncertainty.

Two column sets, never mixed (:class:`SplitPredictions`):

* ``true`` — the reference: λ, ω_log, ω_2 and T_c of the binned reference a2F, computed exactly as
  from the predicted a2F (same grid, same quadrature, same μ*), as the paper compares them. A model
  that returns the reference spectrum scores zero error. ``mu_star`` applies to both T_c's.
* ``reported`` — the scalars the dataset ships (from its raw spectrum, or the only labels a
  Tc-only dataset has), at whatever μ* the dataset used. Reported separately (``reported_metrics``,
  ``*_reported`` columns) wherever any is given.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from betenet import files
from betenet.files import csv_cell
from betenet.data.structures import MAX_Z
from betenet.errors import InputError
from betenet.evaluation import figures
from betenet.evaluation.metrics import (best_worst, metric_vs_ensemble_size, normalised_error, per_element_error,
                                        property_table, table_markdown)
from betenet.evaluation.screening import (DEFAULT_THRESHOLD_K, PRCurve, confusion, curve_average_precision,
                                          operating_point, precision_recall, random_ap, rank_candidates,
                                          threshold_for_precision, two_stage)
from betenet.physics.properties import (MOMENTS, PROPERTIES, TC_ALLEN_DYNES, TYPICAL_RANGES, implausibility,
                                        properties)
from betenet.physics.units import BIN_CENTRES_MEV, MU_STAR_DEFAULT

__all__ = [
    "SplitPredictions",
    "ensemble_split_predictions",
    "baseline_split_predictions",
    "default_sizes",
    "evaluation_report",
    "screening_curve",
    "screening_report",
    "write_ranking",
    "DEFAULT_OPERATING_PRECISION",
]

#: Default operating point of a screening model: the largest recall with at least this precision.
DEFAULT_OPERATING_PRECISION = 0.8


@dataclass
class SplitPredictions:
    """One model's predictions for the materials of one split, aligned by position."""

    model: str
    split: str
    ids: list[str]
    formulas: list[str]
    true: dict[str, np.ndarray]  # PROPERTIES → [N] of the binned reference a2F at mu_star, NaN = no a2F
    pred: dict[str, np.ndarray]  # PROPERTIES → [N]
    std: dict[str, np.ndarray] | None = None  # ensemble spread, [N] each
    true_a2f: np.ndarray | None = None  # [N, B], NaN rows where no target spectrum
    a2f_mean: np.ndarray | None = None  # [N, B]
    a2f_std: np.ndarray | None = None
    member_a2f: np.ndarray | None = None  # [M, N, B]
    elements: dict[str, list[str]] = field(default_factory=dict)
    mu_star: float = MU_STAR_DEFAULT
    notes: dict = field(default_factory=dict)
    reported: dict[str, np.ndarray] | None = None  # PROPERTIES → [N] as the dataset gives them, NaN = not given
    omega_meV: np.ndarray = field(default_factory=lambda: np.asarray(BIN_CENTRES_MEV, dtype=float))
    pool_median: dict[str, dict[str, float]] = field(default_factory=dict)  # truth set → property → median
    phonon_dos: np.ndarray | None = None  # [N, B] total binned phonon DOS per atom (CPD/FPD inputs), if known

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_reference(self) -> bool:
        """Whether any material has a reference a2F (and so reference properties)."""
        return any(np.isfinite(v).any() for v in self.true.values())

    @property
    def has_reported(self) -> bool:
        return self.reported is not None and any(np.isfinite(v).any() for v in self.reported.values())

    def truth(self, which: str = "auto") -> tuple[str, dict[str, np.ndarray]]:
        """``(name, values)`` of one column set: ``reference``, ``reported``, or ``auto`` (the
        reference when any material has one, else the reported values)."""
        if which == "auto":
            which = "reference" if self.has_reference or not self.has_reported else "reported"
        if which == "reference":
            return which, self.true
        if which == "reported":
            if self.reported is None:
                raise InputError(self.model, "the data reports no scalar values")
            return which, self.reported
        raise ValueError(f"truth must be auto, reference or reported, got {which!r}")

    def subset(self, ids: Iterable[str]) -> SplitPredictions:
        """The same predictions restricted to (and ordered as) ``ids``."""
        pos = {i: k for k, i in enumerate(self.ids)}
        idx = np.asarray([pos[i] for i in ids], dtype=int)
        take = lambda d: None if d is None else {k: v[idx] for k, v in d.items()}  # noqa: E731
        arr = lambda a: None if a is None else a[idx]  # noqa: E731
        return replace(self, ids=[self.ids[k] for k in idx], formulas=[self.formulas[k] for k in idx],
                       true=take(self.true), pred=take(self.pred), std=take(self.std), reported=take(self.reported),
                       phonon_dos=arr(self.phonon_dos),
                       true_a2f=arr(self.true_a2f), a2f_mean=arr(self.a2f_mean), a2f_std=arr(self.a2f_std),
                       member_a2f=None if self.member_a2f is None else self.member_a2f[:, idx],
                       elements={i: self.elements[i] for i in ids if i in self.elements})


def _split_graphs(datamodule, split: str) -> list:
    key = "predict" if split == "all" else split
    if key not in datamodule.split_ids:
        raise InputError(split, f"unknown split; use one of {sorted(datamodule.split_ids)} or all")
    graphs = datamodule.graphs_for(key)
    if not graphs:
        raise InputError(split, f"the {split} split of the data is empty")
    return graphs


def reference_properties(true_a2f, omega_meV, mu_star: float) -> dict[str, np.ndarray]:
    """:data:`PROPERTIES` [N] of reference spectra ``true_a2f`` [N, B] (NaN rows: no reference)."""
    a = np.asarray(true_a2f, dtype=np.float64)
    has = np.all(np.isfinite(a), axis=1)
    out = {k: np.full(a.shape[0], np.nan) for k in PROPERTIES}
    if has.any():
        props = properties(omega_meV, a[has], mu_star)
        for k in PROPERTIES:
            out[k][has] = np.atleast_1d(props[k])
    return out


def _truth(graphs, omega_meV, mu_star: float):
    """(reference properties, reported values, reference a2F [N, B], elements) of split graphs."""
    from betenet.data.datamodule import graph_elements

    true_a2f = np.stack([g.y[0].double().numpy() for g in graphs])
    given = np.stack([g.reported[0].double().numpy() for g in graphs])
    reported = {name: given[:, j] for j, name in enumerate(PROPERTIES)}
    elements = {str(g.id): sorted(graph_elements(g)) for g in graphs}
    return reference_properties(true_a2f, omega_meV, mu_star), reported, true_a2f, elements


def reference_or_reported(graphs, omega_meV, mu_star: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per entry and property of ``graphs``, the property of the binned reference a2F where the entry
    has one, else the value the dataset reports (T_c-only data); and the reference a2F [N, B]."""
    true, reported, true_a2f, _ = _truth(graphs, omega_meV, mu_star)
    return {k: np.where(np.isfinite(true[k]), true[k], reported[k]) for k in PROPERTIES}, true_a2f


def pool_medians(datamodule, omega_meV, mu_star: float) -> dict[str, dict[str, float]]:
    """The median predictor of each truth set: per property, the median over the entries the members
    were fitted on (bootstrap train ∪ out-of-bag), NaN where none has a value."""
    ids = list(dict.fromkeys(datamodule.split_ids["train"] + datamodule.split_ids["val"]))
    graphs = [datamodule.built.graphs[i] for i in ids]
    if not graphs:
        return {}
    true, reported, _, _ = _truth(graphs, omega_meV, mu_star)
    med = lambda v: float(np.median(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")  # noqa: E731
    return {"reference": {k: med(v) for k, v in true.items()}, "reported": {k: med(v) for k, v in reported.items()}}


def phonon_dos_of(graphs, n_bins: int) -> np.ndarray | None:
    """[N, B] mean site PhDOS per atom of graphs whose node attributes end with it (CPD/FPD), else None."""
    if not graphs or graphs[0].attr.shape[1] < MAX_Z + n_bins:
        return None
    return np.stack([g.attr[:, -n_bins:].double().mean(dim=0).numpy() for g in graphs])


#: Appended to model labels on the generated demo set, so its results are never taken for real data.
DEMO_TAG = "synthetic demo"


def _on_demo(datamodule) -> bool:
    return getattr(datamodule, "source", None) == "demo"


def ensemble_split_predictions(ensemble, datamodule, split: str = "test", mu_star: float | None = None,
                               name: str | None = None, progress: bool = False, device="cpu",
                               batch_size: int = 64) -> SplitPredictions:
    """The ensemble's predictions for the ``split`` of ``datamodule`` (``all`` = every entry); the
    reference T_c at the same ``mu_star`` (default: the members' own)."""
    graphs = _split_graphs(datamodule, split)
    mu = ensemble.mu_star if mu_star is None else float(mu_star)
    omega = ensemble.grid.centres
    true, reported, true_a2f, elements = _truth(graphs, omega, mu)
    pred = ensemble.predict(graphs, mu_star=mu, batch_size=batch_size, device=device, progress=progress)
    medians = pool_medians(datamodule, omega, mu)
    if name is None:
        demo = f", {DEMO_TAG}" if _on_demo(datamodule) else ""
        name = f"{ensemble.variant.upper()} ×{len(ensemble)}{demo}"
    return SplitPredictions(
        model=name, split=split, ids=pred.ids,
        formulas=pred.formulas, true=true, pred=dict(pred.properties), std=dict(pred.properties_std),
        true_a2f=true_a2f, a2f_mean=pred.a2f_mean, a2f_std=pred.a2f_std, member_a2f=pred.member_a2f,
        elements=elements, mu_star=pred.mu_star, reported=reported, omega_meV=omega, pool_median=medians,
        phonon_dos=phonon_dos_of(graphs, len(omega)),
        notes={"members": ensemble.names, "skipped_members": [list(s) for s in ensemble.skipped],
               "ensemble": ensemble.label, "variant": ensemble.variant, "calibration": pred.calibration})


def baseline_split_predictions(datamodule, split: str = "test", mu_star: float = MU_STAR_DEFAULT,
                               name: str | None = None) -> SplitPredictions:
    """The linear baseline (eDOS(E_F) and coarse-PhDOS moments → λ, ω_log, ω_2; T_c by Allen–Dynes)
    fitted on every non-``split`` entry of the member's pool (bootstrap train ∪ out-of-bag) and
    applied to ``split``. Entries without eDOS or coarse PhDOS are left out of the fit and get NaN
    predictions; with none usable for the fit it raises ``InputError``."""
    from betenet.data.datamodule import read_source, source_root
    from betenet.models.baseline import LinearBaseline, entry_features

    graphs = _split_graphs(datamodule, split)
    omega = datamodule.grid.centres
    true, reported, true_a2f, elements = _truth(graphs, omega, mu_star)
    test_ids = [str(g.id) for g in graphs]
    pool = list(dict.fromkeys(datamodule.split_ids["train"] + datamodule.split_ids["val"]))
    held_out = set(test_ids)
    train_ids = [i for i in pool if i not in held_out]
    label = datamodule.root or datamodule.source
    root = source_root(datamodule.source, datamodule.root, datamodule.demo_size, datamodule.demo_seed,
                       datamodule.cache_dir)
    entries = {e.id: e for e in read_source(datamodule.source, root).entries}

    def features(ids):
        rows, missing = [], {}
        for i in ids:
            try:
                rows.append(entry_features(entries[i]))
            except InputError as err:
                missing[i] = err.reason
                rows.append(np.full(3, np.nan))
        return np.asarray(rows).reshape(len(ids), 3), missing

    x_train, miss_train = features(train_ids)
    if len(miss_train) == len(train_ids):
        example = next(iter(miss_train.items()), ("-", "no training entries"))
        raise InputError(label, "the linear baseline needs the site-projected eDOS and the coarse phonon DOS "
                                "of its training entries (release columns Site_proj_eDOS*, "
                                f"Ph_2x2x2_interpolated_*); none of the {len(train_ids)} has them "
                                f"(e.g. {example[0]}: {example[1]})")
    graph_of = datamodule.built.graphs
    train_ref = reference_properties(np.stack([graph_of[i].y[0].double().numpy() for i in train_ids]), omega,
                                     mu_star)
    targets = {k: train_ref[k] for k in MOMENTS}
    try:
        model = LinearBaseline(mu_star=mu_star).fit(x_train, targets)
    except ValueError as exc:
        raise InputError(label, f"linear baseline cannot be fitted: {exc}") from None
    x_test, miss_test = features(test_ids)
    pred = model.predict(x_test)
    return SplitPredictions(
        model=name or (f"Base, {DEMO_TAG}" if _on_demo(datamodule) else "Base"),
        split=split, ids=test_ids, formulas=[str(g.formula) for g in graphs], true=true,
        pred={k: np.asarray(pred[k], dtype=np.float64) for k in PROPERTIES}, true_a2f=true_a2f,
        elements=elements, mu_star=mu_star, reported=reported, omega_meV=omega,
        pool_median=pool_medians(datamodule, omega, mu_star),
        notes={"baseline_coefficients": model.coefficients(), "n_fit": len(train_ids) - len(miss_train),
               "fit_entries_without_features": len(miss_train),
               "split_entries_without_features": sorted(miss_test)})


def gbm_split_predictions(datamodule, split: str = "test", mu_star: float = MU_STAR_DEFAULT, target: str = "lambda",
                          phonons: dict | None = None, name: str | None = None) -> SplitPredictions:
    """The gradient-boosting baseline (:mod:`betenet.models.gbm_baseline`) fitted on the reported T_c of
    the member's pool (bootstrap train ∪ out-of-bag, ``split`` excluded) and applied to ``split``.

    Its phonon features come from each structure's coarse phonon DOS: the dataset's own where it has
    one, else the ML potential's (``phonons`` settings; cached, so entries already computed for
    training cost nothing). When the members read pretrained site features (``datamodule.features``),
    the baseline gets their mean and std over the atoms too, so that it compares models, not inputs."""
    from betenet.data.datamodule import read_source, source_root
    from betenet.models.gbm_baseline import GBMBaseline, feature_names, features
    from betenet.phonons import PhononSettings, fill_site_dos

    graphs = _split_graphs(datamodule, split)
    omega = datamodule.grid.centres
    true, reported, true_a2f, elements = _truth(graphs, omega, mu_star)
    test_ids = [str(g.id) for g in graphs]
    held_out = set(test_ids)
    train_ids = [i for i in dict.fromkeys(datamodule.split_ids["train"] + datamodule.split_ids["val"])
                 if i not in held_out]
    root = source_root(datamodule.source, datamodule.root, datamodule.demo_size, datamodule.demo_seed,
                       datamodule.cache_dir)
    wanted = set(train_ids) | held_out
    entries = [e for e in read_source(datamodule.source, root).entries if e.id in wanted]
    settings = PhononSettings.from_mapping(phonons if phonons is not None else datamodule.phonons)
    cache = (phonons or datamodule.phonons or {}).get("cache_dir") or datamodule.cache_dir / "phonons"
    report = fill_site_dos(entries, "coarse", settings, cache, progress=True)
    by_id = {e.id: e for e in entries}
    site, width = {}, 0
    if datamodule.features.enabled:
        from betenet.pretrained import features_for_entries

        site = features_for_entries(entries, datamodule.features, datamodule.feature_cache_dir).features
        width = datamodule.features.dim

    def rows(ids):
        out = []
        for i in ids:
            e = by_id.get(i)
            if e is None or e.phdos_coarse_site is None or (width and i not in site):
                out.append(np.full(len(feature_names(width)), np.nan))
                continue
            out.append(features(e.structure, e.phdos_coarse_freq_meV, e.phdos_coarse_site.sum(axis=0),
                                e.extra.get("min_phonon_freq_meV"), site.get(i)))
        return np.asarray(out)

    tc_train = np.array([float(datamodule.built.graphs[i].reported[0, PROPERTIES.index("tc_K")]) for i in train_ids])
    model = GBMBaseline(target=target, mu_star=mu_star).fit(rows(train_ids), tc_train)
    pred = model.predict(rows(test_ids))
    label = name or ("GBM λ" if target == "lambda" else "GBM Tc") + (
        f" + {datamodule.features.model} features" if width else "")
    return SplitPredictions(
        model=label, split=split, ids=test_ids, formulas=[str(g.formula) for g in graphs], true=true,
        pred={k: np.asarray(pred[k], dtype=np.float64) for k in PROPERTIES}, true_a2f=true_a2f,
        elements=elements, mu_star=mu_star, reported=reported, omega_meV=omega,
        pool_median=pool_medians(datamodule, omega, mu_star),
        notes={"n_fit": model.n_fit, "target": target, "phonons": report.summary(),
               "phonon_failures": report.failed})


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
    return files.write_json(path, obj, indent=indent, nan_as_null=True)


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
    the share inside :data:`~betenet.physics.properties.TYPICAL_RANGES` and the share flagged by
    :func:`~betenet.physics.properties.implausibility`; with the phonon DOS of the inputs (CPD/FPD),
    the median ω_log of the phonon DOS itself (a2F moments of g) beside the predicted one."""
    pct = (5, 25, 50, 75, 95)
    out = {"percentiles": list(pct)}
    for k in PROPERTIES:
        v = np.asarray(p.pred[k], dtype=float)
        v = v[np.isfinite(v)]
        out[k] = np.percentile(v, pct).tolist() if v.size else None
    lam, wlog = np.asarray(p.pred["lambda"], float), np.asarray(p.pred["omega_log_K"], float)
    inside = np.ones(len(p), dtype=bool)
    for k, (lo, hi) in TYPICAL_RANGES.items():
        v = np.asarray(p.pred[k], float)
        inside &= (v >= lo) & (v <= hi)
    out["typical_ranges"] = {k: list(v) for k, v in TYPICAL_RANGES.items()}
    out["fraction_in_typical_ranges"] = float(inside.mean()) if len(p) else float("nan")
    flagged = [i for i in range(len(p)) if implausibility(lam[i], wlog[i])]
    out["fraction_flagged_implausible"] = len(flagged) / len(p) if len(p) else float("nan")
    out["flagged_ids"] = [p.ids[i] for i in flagged[:20]]
    if p.phonon_dos is not None:
        g = properties(p.omega_meV, p.phonon_dos)["omega_log_K"]
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


# --------------------------------------------------------------------------------------------
# Screening
# --------------------------------------------------------------------------------------------
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
                                                confusions=confs)}
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
