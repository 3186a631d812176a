"""The paper's baseline (Fig. 2, Table I "Base"): multivariate linear regression of λ, ω_log and
ω_2 on the electronic DOS at the Fermi level and the moments of the coarse phonon DOS, with T_c
from the predicted values through Allen–Dynes.

Design. One shared design matrix for all three targets, ``[eDOS(E_F), PhDOS ω_log, PhDOS ω_2, 1]``
(:data:`FEATURE_NAMES` plus an intercept the model appends): Fig. 2 pairs λ with eDOS(E_F) and
each a2F moment with the same PhDOS moment, and the paper fits "a multivariate linear regression
... that predicts λ, ω_log and ω_2 from the eDOS and coarse PhDOS". Each target is fitted by
ordinary least squares (``numpy.linalg.lstsq``) on the rows where it is finite.

Features.
* eDOS(E_F): total electronic DOS (sum over the site projections) averaged over E_F ± 50 meV
  (Fig. 2 caption), in whatever unit the DOS is given in (the fit absorbs the scale).
* PhDOS ω_log, ω_2 [K]: the a2F moments of :func:`betenet.physics.properties.properties` applied to
  the total phonon DOS g(ω) in place of α²F(ω), i.e. with the weight 2 g(ω)/ω:
  ω_log = exp[∫ ln ω g/ω dω / ∫ g/ω dω], ω_2² = ∫ ω g dω / ∫ g/ω dω
  (Allen & Dynes 1975 used the PhDOS ω_log the same way). Both are ratios, so the normalisation
  of g does not matter; only ω > 0 counts (imaginary modes, stored as negative frequencies, are
  ignored). They are computed on the grid the PhDOS is given on (pass a binned PhDOS to use bins).

Prediction. λ, ω_log, ω_2 are the raw linear predictions (a linear model can go negative);
T_c = Allen–Dynes(max(λ, 0), ω_log, ω_2; μ*), which is 0 when λ ≤ 0 or a predicted frequency
is ≤ 0 (see :func:`betenet.physics.properties.allen_dynes_tc`); NaN features give NaN outputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
from scipy.integrate import trapezoid

from betenet.errors import InputError
from betenet.physics.properties import MOMENTS, allen_dynes_tc, properties
from betenet.physics.units import MU_STAR_DEFAULT

__all__ = [
    "FEATURE_NAMES",
    "TARGETS",
    "EDOS_WINDOW_MEV",
    "phdos_moments",
    "edos_at_fermi",
    "baseline_features",
    "entry_features",
    "LinearBaseline",
]

#: Columns of the feature matrix (the intercept is appended by the model).
FEATURE_NAMES = ("edos_ef", "phdos_wlog_K", "phdos_w2_K")
#: Regressed properties (T_c follows from them).
TARGETS = MOMENTS
#: Half-width of the window around E_F over which the eDOS is averaged (Fig. 2 caption).
EDOS_WINDOW_MEV = 50.0


def phdos_moments(freq_meV, total_phdos) -> dict:
    """``dict(omega_log_K, omega_2_K)`` of a phonon DOS g(ω) [..., B] on ``freq_meV`` [B] (ascending),
    computed as the a2F moments with g in place of α²F (scale-free; ω > 0 only)."""
    m = properties(freq_meV, total_phdos)
    return {k: m[k] for k in ("omega_log_K", "omega_2_K")}


def edos_at_fermi(energy_meV, edos, window_meV: float = EDOS_WINDOW_MEV, fermi_meV: float = 0.0) -> float:
    """Mean of the total eDOS over [E_F − window, E_F + window] (trapezoid rule, linear
    interpolation at the window edges). ``edos`` is [E] or site-projected [n_sites, E] (summed);
    ``energy_meV`` [E] ascending, measured from the same origin as ``fermi_meV``."""
    e = np.asarray(energy_meV, dtype=np.float64)
    g = np.asarray(edos, dtype=np.float64)
    if g.ndim == 2:
        g = g.sum(axis=0)
    if e.ndim != 1 or g.shape != e.shape:
        raise ValueError(f"energy_meV [E] and edos [E] or [n_sites, E] must align: {e.shape} vs {np.shape(edos)}")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(g))):
        raise ValueError("energy_meV or edos contains NaN or inf")
    if e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError("energy_meV must be strictly increasing with at least 2 points")
    lo, hi = fermi_meV - window_meV, fermi_meV + window_meV
    if window_meV <= 0 or e[0] > lo or e[-1] < hi:
        raise ValueError(f"the eDOS grid [{e[0]:g}, {e[-1]:g}] meV does not cover E_F ± {window_meV:g} meV")
    inside = (e > lo) & (e < hi)
    x = np.concatenate([[lo], e[inside], [hi]])
    y = np.interp(x, e, g)
    return float(trapezoid(y, x) / (hi - lo))


def baseline_features(
    edos_energy_meV, edos, phdos_freq_meV, phdos, window_meV: float = EDOS_WINDOW_MEV
) -> np.ndarray:
    """One material's feature row [3] = (eDOS(E_F), PhDOS ω_log [K], PhDOS ω_2 [K]); ``edos`` and
    ``phdos`` may be totals [B] or site-projected [n_sites, B] (summed over sites)."""
    g = np.asarray(phdos, dtype=np.float64)
    if g.ndim == 2:
        g = g.sum(axis=0)
    ph = phdos_moments(phdos_freq_meV, g)
    return np.array([edos_at_fermi(edos_energy_meV, edos, window_meV), ph["omega_log_K"], ph["omega_2_K"]])


def entry_features(entry, window_meV: float = EDOS_WINDOW_MEV) -> np.ndarray:
    """:func:`baseline_features` of a dataset :class:`~betenet.data.sources.base.Entry`: the
    site-projected eDOS in ``entry.extra`` (``edos_freq_meV``, ``edos``; energies from E_F) and
    the coarse site-projected PhDOS (``phdos_coarse_freq_meV``, ``phdos_coarse_site``)."""
    edos_e, edos = entry.extra.get("edos_freq_meV"), entry.extra.get("edos")
    if edos_e is None or edos is None:
        raise InputError(entry.id, "no site-projected eDOS (release columns Site_proj_eDOS*)")
    if entry.phdos_coarse_freq_meV is None or entry.phdos_coarse_site is None:
        raise InputError(entry.id, "no coarse phonon DOS (release columns Ph_2x2x2_interpolated_*)")
    try:
        return baseline_features(edos_e, edos, entry.phdos_coarse_freq_meV, entry.phdos_coarse_site, window_meV)
    except ValueError as exc:
        raise InputError(entry.id, f"baseline features: {exc}") from None


class LinearBaseline:
    """Least-squares linear model ``target = features @ w + b`` for each of :data:`TARGETS`."""

    def __init__(self, feature_names=FEATURE_NAMES, mu_star: float = MU_STAR_DEFAULT):
        self.feature_names = tuple(feature_names)
        self.mu_star = float(mu_star)
        #: target → coefficients [F + 1] (one per feature, then the intercept); None before fit.
        self.coef: dict[str, np.ndarray] | None = None

    def _features(self, features) -> np.ndarray:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            n_f = len(self.feature_names)
            raise ValueError(f"features must be [N, {n_f}] ({self.feature_names}), got {x.shape}")
        return x

    def fit(self, features, targets: Mapping) -> LinearBaseline:
        """Fit each target on the rows where it and every feature are finite.

        Raises ``ValueError`` when a target is missing, its length differs from the features', or
        its usable rows do not determine the coefficients (fewer rows than F + 1 or collinear
        features).
        """
        x = self._features(features)
        design = np.hstack([x, np.ones((x.shape[0], 1))])
        rows_ok = np.all(np.isfinite(x), axis=1)
        coef = {}
        for name in TARGETS:
            if name not in targets:
                raise ValueError(f"target {name!r} missing (have {sorted(targets)})")
            y = np.asarray(targets[name], dtype=np.float64)
            if y.shape != (x.shape[0],):
                raise ValueError(f"target {name!r} has shape {y.shape}, features {x.shape[0]} rows")
            ok = rows_ok & np.isfinite(y)
            w, _, rank, _ = np.linalg.lstsq(design[ok], y[ok], rcond=None)
            if rank < design.shape[1]:
                raise ValueError(
                    f"target {name!r}: {int(ok.sum())} usable rows give rank {rank} < {design.shape[1]} "
                    "(too few rows or collinear features)"
                )
            coef[name] = w
        self.coef = coef
        return self

    def predict(self, features) -> dict:
        """``dict(lambda, omega_log_K, omega_2_K, tc_K)`` of arrays [N] for ``features`` [N, F]."""
        if self.coef is None:
            raise RuntimeError("LinearBaseline.predict called before fit")
        x = self._features(features)
        design = np.hstack([x, np.ones((x.shape[0], 1))])
        out = {name: design @ self.coef[name] for name in TARGETS}
        tc = np.full(x.shape[0], np.nan)
        ok = np.isfinite(out["lambda"]) & np.isfinite(out["omega_log_K"]) & np.isfinite(out["omega_2_K"])
        if ok.any():
            tc[ok] = allen_dynes_tc(
                np.clip(out["lambda"][ok], 0.0, None), out["omega_log_K"][ok], out["omega_2_K"][ok], self.mu_star
            )
        out["tc_K"] = tc
        return out

    def coefficients(self) -> dict:
        """target → {feature: weight, ..., "intercept": b} (for reports)."""
        if self.coef is None:
            raise RuntimeError("LinearBaseline not fitted")
        names = (*self.feature_names, "intercept")
        return {t: {n: float(v) for n, v in zip(names, w)} for t, w in self.coef.items()}

    def to_json(self) -> str:
        """The fitted model as JSON (feature names, μ*, coefficients)."""
        if self.coef is None:
            raise RuntimeError("LinearBaseline not fitted")
        return json.dumps(
            {
                "model": "LinearBaseline",
                "feature_names": list(self.feature_names),
                "mu_star": self.mu_star,
                "coefficients": {t: [float(v) for v in w] for t, w in self.coef.items()},
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> LinearBaseline:
        """Rebuild a model written by :meth:`to_json`."""
        try:
            d = json.loads(text)
            if d.get("model") != "LinearBaseline":
                raise ValueError(f"not a LinearBaseline (model = {d.get('model')!r})")
            model = cls(d["feature_names"], d["mu_star"])
            n = len(model.feature_names) + 1
            coef = {}
            for t in TARGETS:
                w = np.asarray(d["coefficients"][t], dtype=np.float64)
                if w.shape != (n,) or not np.all(np.isfinite(w)):
                    raise ValueError(f"coefficients of {t!r} must be {n} finite numbers")
                coef[t] = w
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed LinearBaseline JSON: {exc!r}") from None
        model.coef = coef
        return model
