"""Calibrated ensemble spread: one scale per property (λ, ω_log, ω_2, T_c, and the a2F band) that
multiplies the members' std so that mean ± 2 std covers 95 % of the truths, fitted on out-of-bag
predictions and stored beside the members (``calibration.json`` in the ensemble folder, written by
``betenet calibrate``; :func:`~betenet.inference.ensemble.load_ensemble` reads it and
:meth:`~betenet.inference.ensemble.Ensemble.predict` applies it). The Eliashberg T_c takes T_c's scale.

Data. Every entry of the members' training pool (the union of their ``bootstrap.json`` ``train_ids``
and ``val_ids``; never a test id) is predicted by the members that did not train on it (out of bag:
in the pool, not in the member's ``train_ids``). Those k members are an honest small ensemble for
that entry; its mean and spread are computed as the full ensemble's
(:func:`~betenet.inference.ensemble.combine_members`). Skipped: entries out of bag for fewer than 2
members, without a truth, or whose out-of-bag members agree (to rounding: nothing to scale).
Members without a ``bootstrap.json`` take no part. Truth (as ``betenet evaluate``): the property of
the entry's binned reference a2F, else the value the dataset reports (T_c-only data); the a2F band
is fitted on every bin of the entries with a reference a2F.

Model, and the correction for k < M. A member's value scatters about the infinite ensemble's mean
with a std σ (per entry and property), independently and normally; the truth lies off that mean by
an error of variance c·σ² that all members share (c, per property: the spread the members miss).
The error of a k-member mean has variance σ²(c + 1/k), and with the k members' sample std s
(ddof 1), exactly, whatever σ::

    z = (y − mean_k) / s  ~  √(c + 1/k) · t_{k−1}      (Student t with k − 1 degrees of freedom)

so sub-ensembles of every size k measure the same c, and the M-member ensemble (std with ddof 0)
covers a fraction p = 0.95 within mean ± 2·scale·std for
``scale(M) = √((c + 1/M)·M/(M − 1)) · t_{(1+p)/2, M−1} / 2`` (:func:`ensemble_scale`). Fitted on
k ≈ 0.37 M out-of-bag members and applied unchanged to M members, the scale would be several
times too large: a 2-member std is a poor estimate of σ (ddof 0 halves its variance), and the
interval must allow for it.

Fit: coverage, not variance. An entry is covered, |z| ≤ √(c + 1/k)·t_{(1+p)/2, k−1}, from
``c_i = (z / t_{(1+p)/2, k−1})² − 1/k`` on; c is the p-quantile of the c_i, the smallest c that
covers a fraction p of the out-of-bag entries (so their coverage after calibration is p by
construction; ``betenet evaluate`` on the test split is the honest check). A negative quantile
(members scattering more widely than their mean errs, which the model cannot describe: with more
members it would ask for a negative variance) is taken as c = 0, the conservative end. The
variance rule ``√mean(z²)`` is not used: with k = 2 or 3 (a 6-member ensemble has k ≈ 2.2 on average) z is t with
1 or 2 degrees of freedom, of infinite variance, so the mean of z² is ruled by the few entries whose
members agreed by chance; a quantile depends on ranks only. What carries over from the out-of-bag
entries to the full ensemble is the model (normal, exchangeable members; a missed spread
proportional to the members' own): re-run ``betenet calibrate`` after adding or retraining members.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import t as student_t

from betenet import validation
from betenet.errors import InputError
from betenet.files import write_json
from betenet.physics.properties import PROPERTIES

log = logging.getLogger(__name__)

__all__ = ["Calibration", "CALIBRATION_FILE", "COVERAGE", "A2F", "MIN_ENTRIES", "MIN_MEMBERS", "calibrate_ensemble",
           "checkpoint_name", "ensemble_scale", "fit_model_error", "out_of_bag", "out_of_bag_statistics",
           "read_calibration", "require_members", "write_calibration"]

#: The file in the ensemble folder (the folder holding the member run folders).
CALIBRATION_FILE = "calibration.json"
#: Target coverage of mean ± :data:`WIDTH` std.
COVERAGE = 0.95
#: Intervals are mean ± WIDTH std.
WIDTH = 2.0
#: Key of the a2F band's scale beside :data:`PROPERTIES`.
A2F = "a2f"
#: Fewest usable out-of-bag entries for a scale (a 95 % quantile of fewer says little).
MIN_ENTRIES = 10
#: Resamplings of the entries for the interval of a fitted scale.
RESAMPLES = 200
#: Fewest members a calibration needs.
MIN_MEMBERS = 2
#: Members whose std is at most this fraction of their mean agree (to rounding): nothing to scale.
_AGREE = 1e-9
#: Below this absolute std (the property's unit) members agree as well: e.g. all of them at Tc = 0 below the
#: Allen–Dynes threshold, where a spread of 1e-30 K would otherwise ask for a scale of 1e30.
RESOLUTION = {"lambda": 1e-4, "omega_log_K": 1e-2, "omega_2_K": 1e-2, "tc_K": 1e-3, A2F: 1e-6}
#: A fitted scale above this says the spread does not describe the errors: the fit is kept, with a warning.
IMPLAUSIBLE_SCALE = 100.0
#: Version of ``calibration.json``.
FORMAT = 1
METHOD = "out-of-bag coverage fit of mean ± 2·scale·std (betenet.inference.calibration)"


def _t_quantile(dof, coverage: float) -> np.ndarray:
    return student_t.ppf((1.0 + coverage) / 2.0, dof)


def ensemble_scale(model_error, n_members, coverage: float = COVERAGE):
    """The factor on the std (ddof 0) of an ``n_members`` ensemble that makes mean ± 2·factor·std
    cover ``coverage`` for the missed-spread ratio ``model_error`` (c, module docstring); NaN for
    fewer than 2 members."""
    n = np.asarray(n_members, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.maximum(model_error + 1.0 / n, 0.0) * n / (n - 1.0)
        out = np.where(n >= 2, np.sqrt(var) * _t_quantile(np.maximum(n - 1.0, 1.0), coverage) / WIDTH, np.nan)
    return float(out) if out.ndim == 0 else out


def fit_model_error(truth, mean, std, k, coverage: float = COVERAGE, resolution: float = 0.0) -> dict:
    """Fit c (module docstring) on out-of-bag predictions: ``truth``, the k-member ``mean`` and
    ``std`` (ddof 0) and ``k`` (broadcast to one shape). Returns ``dict(model_error,
    model_error_interval, n, within_2std_before, within_2std_after)``: the interval is the 5–95 %
    range of c over :data:`RESAMPLES` resamplings of the entries (of the bins, for the a2F band:
    optimistic, as a spectrum's bins err together); the coverages are those of mean ± 2 std of the
    used entries as they are and with each entry's std scaled for its k. Entries whose std is not above
    ``resolution`` (:data:`RESOLUTION`) count as agreeing members and are left out. ``model_error`` None
    (and the coverages NaN) with fewer than :data:`MIN_ENTRIES` usable entries."""
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (truth, mean, std, k)))
    y, m, s, k = (np.ravel(a) for a in arrays)
    ok = np.isfinite(y) & np.isfinite(m) & np.isfinite(s) & (s > _AGREE * np.abs(m)) & (s > resolution) & (s > 0)
    ok &= k >= 2
    n = int(ok.sum())
    if n < MIN_ENTRIES:
        return {"model_error": None, "model_error_interval": None, "n": n, "within_2std_before": math.nan,
                "within_2std_after": math.nan}
    r, s, k = y[ok] - m[ok], s[ok], k[ok]
    sample_sd = s * np.sqrt(k / (k - 1.0))
    c_i = (r / (sample_sd * _t_quantile(k - 1.0, coverage))) ** 2 - 1.0 / k
    c = max(float(np.quantile(c_i, coverage, method="inverted_cdf")), 0.0)
    rng = np.random.default_rng(0)
    resampled = [max(float(np.quantile(rng.choice(c_i, n), coverage, method="inverted_cdf")), 0.0)
                 for _ in range(RESAMPLES)]
    # |r| <= 2 * ensemble_scale(c, k) * s  is  c_i <= c
    return {"model_error": c, "model_error_interval": np.quantile(resampled, [0.05, 0.95]).tolist(), "n": n,
            "within_2std_before": float(np.mean(np.abs(r) <= WIDTH * s)),
            "within_2std_after": float(np.mean(c_i <= c))}


# --------------------------------------------------------------------------------------------
# Out-of-bag predictions
# --------------------------------------------------------------------------------------------
def _bootstrap(member) -> dict | None:
    from betenet.training.run_dir import RunDir

    run = None if member.checkpoint is None else RunDir.of_checkpoint(member.checkpoint)
    return None if run is None else run.read_bootstrap()


def out_of_bag(members, known_ids=None) -> tuple[list[str], np.ndarray, list[str]]:
    """``(pool ids, out-of-bag mask [M, N], names of members without a bootstrap record)`` from the
    members' ``bootstrap.json``: the pool is their train ∪ validation ids less every test id (and
    less ids not in ``known_ids``, when given), in first-seen order; ``mask[j, i]``: member j did
    not train on entry i."""
    records = [_bootstrap(m) for m in members]
    pool: dict[str, None] = {}
    test: set[str] = set()
    for rec in filter(None, records):
        pool.update(dict.fromkeys(str(i) for i in list(rec.get("train_ids", [])) + list(rec.get("val_ids", []))))
        test.update(str(i) for i in rec.get("test_ids") or [])
    known = None if known_ids is None else {str(i) for i in known_ids}
    ids = [i for i in pool if i not in test and (known is None or i in known)]
    mask = np.zeros((len(members), len(ids)), dtype=bool)
    for j, rec in enumerate(records):
        if rec is not None:
            trained = {str(i) for i in rec.get("train_ids", [])}
            mask[j] = [i not in trained for i in ids]
    return ids, mask, [m.name for m, rec in zip(members, records) if rec is None]


def out_of_bag_statistics(member_a2f, mask, omega_meV, mu_star: float) -> dict:
    """The ensemble statistics (:func:`~betenet.inference.ensemble.combine_members`) of each entry's
    out-of-bag members: ``member_a2f`` [M, N, B], ``mask`` [M, N]. Returns ``dict(k [N], a2f_mean,
    a2f_std [N, B], properties, properties_std)``, NaN where k < 2."""
    from betenet.inference.combine import combine_members

    preds, mask = np.asarray(member_a2f, dtype=np.float64), np.asarray(mask, dtype=bool)
    n, b = preds.shape[1:]
    out = {"k": mask.sum(axis=0), "a2f_mean": np.full((n, b), np.nan), "a2f_std": np.full((n, b), np.nan),
           "properties": {p: np.full(n, np.nan) for p in PROPERTIES},
           "properties_std": {p: np.full(n, np.nan) for p in PROPERTIES}}
    groups: dict[tuple, list[int]] = {}
    for i in np.flatnonzero(out["k"] >= 2):
        groups.setdefault(tuple(mask[:, i]), []).append(int(i))
    for pattern, idx in groups.items():  # entries sharing their out-of-bag members
        stats = combine_members(preds[np.asarray(pattern)][:, idx], mu_star, omega_meV=omega_meV)
        out["a2f_mean"][idx], out["a2f_std"][idx] = stats["a2f_mean"], stats["a2f_std"]
        for p in PROPERTIES:
            out["properties"][p][idx] = stats["properties"][p]
            out["properties_std"][p][idx] = stats["properties_std"][p]
    return out


# --------------------------------------------------------------------------------------------
# The stored calibration
# --------------------------------------------------------------------------------------------
@dataclass
class Calibration:
    """Fitted missed-spread ratios per key (:data:`PROPERTIES` and :data:`A2F`): ``fits[key]`` as
    :func:`fit_model_error` returns it; ``members`` and ``checkpoint`` say which ensemble it was
    fitted for; ``info`` the rest of ``calibration.json``; ``path`` where it was read from."""

    fits: dict[str, dict]
    members: list[str]
    checkpoint: str
    coverage: float = COVERAGE
    info: dict = field(default_factory=dict)
    path: Path | None = None

    def scales(self, n_members: int) -> dict[str, float]:
        """The std factor of every fitted key for an ensemble of ``n_members`` (none below 2)."""
        if n_members < MIN_MEMBERS:
            return {}
        return {k: ensemble_scale(f["model_error"], n_members, self.coverage)
                for k, f in self.fits.items() if f.get("model_error") is not None}

    def scale_intervals(self, n_members: int) -> dict[str, list[float]]:
        """The 5–95 % resampling interval of each fitted scale (:meth:`scales`)."""
        if n_members < MIN_MEMBERS:
            return {}
        return {k: [ensemble_scale(c, n_members, self.coverage) for c in f["model_error_interval"]]
                for k, f in self.fits.items() if f.get("model_error_interval") is not None}

    def mismatch(self, ensemble) -> str | None:
        """Why this calibration does not fit ``ensemble`` (None when it does: the same checkpoints,
        every member among the fitted ones)."""
        checkpoint = checkpoint_name(ensemble)
        if checkpoint != self.checkpoint:
            return f"fitted for the {self.checkpoint} checkpoints, not {checkpoint}"
        new = [n for n in ensemble.names if n not in set(self.members)]
        if new:
            return f"members {', '.join(new[:5])} were not part of it; run betenet calibrate again"
        return None

    def apply(self, stats: dict, n_members: int) -> tuple[dict, dict]:
        """``stats`` of :func:`~betenet.inference.ensemble.combine_members` with every std scaled
        (Eliashberg T_c by T_c's scale; unfitted keys unchanged), and the note predictions carry."""
        from betenet.inference.combine import ELIASHBERG_KEY

        scales = self.scales(n_members)
        of = lambda key: scales.get("tc_K" if key == ELIASHBERG_KEY else key)  # noqa: E731
        out = dict(stats)
        out["properties_std"] = {k: v if of(k) is None else v * of(k) for k, v in stats["properties_std"].items()}
        if of(A2F) is not None:
            out["a2f_std"] = stats["a2f_std"] * of(A2F)
        applied = {k: of(k) for k in [*out["properties_std"], A2F] if of(k) is not None}
        note = {"calibrated": bool(applied), "scales": applied, "method": METHOD, "coverage": self.coverage,
                "file": None if self.path is None else str(self.path)}
        return out, note

    def to_json(self) -> dict:
        full, interval = self.scales(len(self.members)), self.scale_intervals(len(self.members))
        fits = {k: {**f, "scale": full.get(k), "scale_interval": interval.get(k)} for k, f in self.fits.items()}
        return {"format": FORMAT, "method": METHOD, "coverage": self.coverage, "width_std": WIDTH,
                "checkpoint": self.checkpoint, "members": list(self.members), "scales": full, "fits": fits,
                **self.info}

    @classmethod
    def from_json(cls, obj: dict, path=None) -> Calibration:
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise InputError(path or "calibration", f"not a betenet calibration (format {FORMAT})")
        fits = {k: {x: v for x, v in f.items() if x not in ("scale", "scale_interval")} for k, f in obj["fits"].items()}
        info = {k: v for k, v in obj.items()
                if k not in ("format", "method", "coverage", "width_std", "checkpoint", "members", "scales", "fits")}
        return cls(fits=fits, members=list(obj["members"]), checkpoint=str(obj["checkpoint"]),
                   coverage=float(obj["coverage"]), info=info, path=None if path is None else Path(path))


def write_calibration(folder, calibration: Calibration) -> Path:
    """Write ``calibration.json`` into ``folder`` (atomically; NaN as null)."""
    path = Path(folder) / CALIBRATION_FILE
    write_json(path, calibration.to_json(), indent=2, nan_as_null=True)
    calibration.path = path
    return path


def read_calibration(folder) -> Calibration | None:
    """The calibration of the ensemble folder ``folder``; None when it has none. An unreadable file
    raises ``InputError`` naming it (remove it, or run ``betenet calibrate`` again)."""
    path = Path(folder) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        return Calibration.from_json(json.loads(path.read_text()), path)
    except InputError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"unreadable calibration ({exc}); remove it or run betenet calibrate again") from None


# --------------------------------------------------------------------------------------------
# Fitting an ensemble
# --------------------------------------------------------------------------------------------
def require_members(ensemble) -> None:
    """Raise ``InputError`` unless ``ensemble`` has at least :data:`MIN_MEMBERS` members."""
    if len(ensemble) < MIN_MEMBERS:
        raise InputError(ensemble.label, f"calibration needs an ensemble of at least {MIN_MEMBERS} members "
                                         f"(this one has {len(ensemble)})")


def calibrate_ensemble(ensemble, datamodule, mu_star: float | None = None, coverage: float = COVERAGE,
                       batch_size: int = 64, device="cpu", progress: bool | str = "auto") -> Calibration:
    """Fit the calibration of ``ensemble`` on the out-of-bag predictions of its training pool in
    ``datamodule`` (module docstring); ``mu_star`` of T_c (default: the members' own). Raises
    ``InputError`` with fewer than 2 members (with a bootstrap record) or no key fitted."""
    from betenet.evaluation.predictions import reference_or_reported
    from betenet.training.run_dir import RunDir

    mu = validation.mu_star(ensemble.mu_star if mu_star is None else mu_star)
    require_members(ensemble)
    graphs_by_id = datamodule.built.graphs
    ids, mask, without = out_of_bag(ensemble.members, graphs_by_id)
    if len(ensemble) - len(without) < MIN_MEMBERS:
        raise InputError(ensemble.label, f"calibration needs {MIN_MEMBERS} members with a bootstrap record "
                                         f"({RunDir.BOOTSTRAP}); {', '.join(without[:5])} have none")
    omega = ensemble.grid.centres
    graphs = [graphs_by_id[i] for i in ids]
    member_a2f = ensemble.predict_members(graphs, batch_size, device, progress)
    truth, truth_a2f = reference_or_reported(graphs, omega, mu)
    stats = out_of_bag_statistics(member_a2f, mask, omega, mu)
    k = stats["k"]
    fits = {p: fit_model_error(truth[p], stats["properties"][p], stats["properties_std"][p], k, coverage,
                               RESOLUTION[p]) for p in PROPERTIES}
    fits[A2F] = fit_model_error(truth_a2f, stats["a2f_mean"], stats["a2f_std"], k[:, None], coverage, RESOLUTION[A2F])
    for key, fit in fits.items():
        scale = None if fit["model_error"] is None else ensemble_scale(fit["model_error"], len(ensemble), coverage)
        if scale is not None and scale > IMPLAUSIBLE_SCALE:
            log.warning("%s: the %s spread needs a scale of %.3g to cover %.0f %% out of bag: the members' spread "
                        "does not describe their errors (calibrated bands will be very wide)", ensemble.label, key,
                        scale, 100 * coverage)
    if all(f["model_error"] is None for f in fits.values()):
        raise InputError(ensemble.label, f"too few entries to calibrate: {int((k >= 2).sum())} of the {len(ids)} "
                                         f"pool entries are out of bag for 2 or more members (need {MIN_ENTRIES} "
                                         "with a truth and a spread); train more members")
    usable = k[k >= 2]
    info = {"mu_star": mu, "data": str(datamodule.root or datamodule.source), "pool_entries": len(ids),
            "entries_out_of_bag_for_2_or_more": int(usable.size),
            "mean_out_of_bag_members": float(usable.mean()) if usable.size else math.nan,
            "members_without_bootstrap": without,
            "truth": "property of the binned reference a2F, else the value the dataset reports"}
    return Calibration(fits=fits, members=ensemble.names, checkpoint=checkpoint_name(ensemble),
                       coverage=coverage, info=info)


def checkpoint_name(ensemble) -> str:
    """The checkpoint name the members were loaded from (``final``, ``classical``, ...)."""
    names = {Path(m.checkpoint).stem for m in ensemble.members if m.checkpoint is not None}
    return names.pop() if len(names) == 1 else ",".join(sorted(names))
