"""One model's predictions on a labelled split, gathered for evaluation and screening.

:class:`SplitPredictions` holds, aligned by position, a model's predicted λ, ω_log, ω_2 and T_c (and, for an
ensemble, its spectra and spread) beside the truth. Three builders fill it: from a trained ensemble
(:func:`ensemble_split_predictions`: mean a2F, properties of the mean, member spread), from the linear baseline
(:func:`baseline_split_predictions`) and from the gradient-boosting baseline (:func:`gbm_split_predictions`), each
fitted on the members' own pool (bootstrap train ∪ out-of-bag, ``BetenetDataModule.fitting_ids``).

Two column sets, never mixed:

* ``true`` — the reference: λ, ω_log, ω_2 and T_c of the binned reference a2F, computed exactly as
  from the predicted a2F (same grid, same quadrature, same μ*), as the paper compares them. A model
  that returns the reference spectrum scores zero error. ``mu_star`` applies to both T_c's.
* ``reported`` — the scalars the dataset ships (from its raw spectrum, or the only labels a
  Tc-only dataset has), at whatever μ* the dataset used. Reported separately (``reported_metrics``,
  ``*_reported`` columns) wherever any is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from betenet.data.structures import MAX_Z
from betenet.errors import InputError
from betenet.physics.properties import MOMENTS, PROPERTIES, properties
from betenet.physics.units import BIN_CENTRES_MEV, MU_STAR_DEFAULT

__all__ = ["SplitPredictions", "ensemble_split_predictions", "baseline_split_predictions", "gbm_split_predictions",
           "reference_properties", "reference_or_reported", "pool_medians", "phonon_dos_of", "DEMO_TAG"]


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
    graphs = [datamodule.built.graphs[i] for i in datamodule.fitting_ids]
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


def _baseline_split(datamodule, split: str, mu_star: float):
    """What a baseline fitted beside the members needs: the split's graphs, the grid, their truth (:func:`_truth`),
    their ids, and the ids to fit on (the members' pool, the split's entries left out)."""
    graphs = _split_graphs(datamodule, split)
    omega = datamodule.grid.centres
    test_ids = [str(g.id) for g in graphs]
    held_out = set(test_ids)
    train_ids = [i for i in datamodule.fitting_ids if i not in held_out]
    return graphs, omega, _truth(graphs, omega, mu_star), test_ids, train_ids


def baseline_split_predictions(datamodule, split: str = "test", mu_star: float = MU_STAR_DEFAULT,
                               name: str | None = None) -> SplitPredictions:
    """The linear baseline (eDOS(E_F) and coarse-PhDOS moments → λ, ω_log, ω_2; T_c by Allen–Dynes)
    fitted on every non-``split`` entry of the member's pool (bootstrap train ∪ out-of-bag) and
    applied to ``split``. Entries without eDOS or coarse PhDOS are left out of the fit and get NaN
    predictions; with none usable for the fit it raises ``InputError``."""
    from betenet.models.baseline import LinearBaseline, entry_features

    graphs, omega, (true, reported, true_a2f, elements), test_ids, train_ids = _baseline_split(datamodule, split,
                                                                                               mu_star)
    label = datamodule.root or datamodule.source
    entries = {e.id: e for e in datamodule.source_entries(set(test_ids) | set(train_ids))}

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
    from betenet.models.gbm_baseline import GBMBaseline, entry_features, feature_names
    from betenet.phonons import PhononSettings, fill_site_dos

    graphs, omega, (true, reported, true_a2f, elements), test_ids, train_ids = _baseline_split(datamodule, split,
                                                                                               mu_star)
    entries = datamodule.source_entries(set(train_ids) | set(test_ids))
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
            row = None if e is None or (width and i not in site) else entry_features(e, site.get(i))
            out.append(np.full(len(feature_names(width)), np.nan) if row is None else row)
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
