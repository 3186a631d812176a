"""A cheap physics-aware baseline for Tc-only data: gradient boosting of λ on composition and phonon-DOS
features, with T_c through Allen–Dynes from the phonon DOS's own ω_log and ω_2.

Why λ and not T_c: a material's T_c is Allen–Dynes(λ, ω_log, ω_2) and the phonons give ω_log and ω_2
(Allen & Dynes used the phonon DOS's ω_log themselves), so the learning problem is the coupling λ. Each
training entry's target is the λ its reported T_c implies at its phonon moments
(:func:`betenet.physics.properties.allen_dynes_lambda`; T_c = 0 gives the threshold λ, the largest λ
with T_c = 0), and a prediction's T_c is Allen–Dynes of the predicted λ at the entry's phonon moments.
``target="tc"`` regresses T_c directly on the same features instead (the comparison run), and
``target="log_tc"`` regresses ln(1 + T_c / 1 K) (relative errors above 1 K), T_c back through exp.

Features (:func:`features`), one row per material:

* composition, weighted by the atomic fractions: mean, standard deviation, minimum and maximum of the
  atomic mass, Z, Pauling electronegativity, atomic radius, group, row and Mendeleev number; the
  number of elements; atoms per cell; volume per atom (Å³);
* the total phonon DOS g(ω) (meV; the sum of the site-projected DOS, any grid): ω_log and ω_2 (K)
  as a2F moments of g, the mean frequency, the 99 % quantile of the states (a maximum frequency), the
  share of states below 10 meV, λ_g = 2∫g/ω dω / ∫g dω × 1 meV (how soft the lattice is: the λ a
  constant α² = 1 meV would give), and the lowest phonon frequency (imaginary modes negative);
* optionally the pretrained site features of a universal potential (:mod:`betenet.pretrained`, [n_atoms, F]):
  their mean and standard deviation over the atoms (2F columns, ``pretrained_mean_k``, ``pretrained_std_k``),
  so that a model using those features is compared with a baseline that has them too.

The regressor is scikit-learn's ``HistGradientBoostingRegressor`` with the settings in
:data:`GBM_SETTINGS` (fixed, not tuned on any split).
"""

from __future__ import annotations

import numpy as np

from betenet.errors import InputError
from betenet.physics.properties import allen_dynes_lambda, allen_dynes_tc, phonon_moments
from betenet.physics.units import MU_STAR_DEFAULT

__all__ = ["ELEMENT_PROPERTIES", "FEATURE_NAMES", "GBM_SETTINGS", "phonon_features", "composition_features",
           "features", "entry_features", "feature_names", "pretrained_features", "GBMBaseline", "TARGETS"]

#: Elemental properties averaged over the composition (pymatgen ``Element`` attributes).
ELEMENT_PROPERTIES = ("atomic_mass", "Z", "X", "atomic_radius", "group", "row", "mendeleev_no")
_STATS = ("mean", "std", "min", "max")
#: Phonon-DOS features.
PHONON_FEATURES = ("ph_omega_log_K", "ph_omega_2_K", "ph_mean_meV", "ph_max_meV", "ph_soft_share", "ph_lambda_g",
                   "ph_min_freq_meV")
#: Every column of :func:`features`, in order.
FEATURE_NAMES = tuple(f"{p}_{s}" for p in ELEMENT_PROPERTIES for s in _STATS) + (
    "n_elements", "atoms_per_cell", "volume_per_atom") + PHONON_FEATURES
#: Gradient-boosting settings (scikit-learn defaults where not listed).
GBM_SETTINGS = dict(max_iter=400, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=8, l2_regularization=1.0,
                    random_state=0)
SOFT_MEV = 10.0
#: What the regressor fits: λ (T_c through Allen–Dynes), T_c, or ln(1 + T_c / 1 K).
TARGETS = ("lambda", "tc", "log_tc")


def _element_value(element, name: str) -> float:
    value = getattr(element, name)
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def composition_features(structure) -> np.ndarray:
    """Composition and cell features of a pymatgen ``Structure`` (see the module docstring)."""
    comp = structure.composition
    elements = list(comp.element_composition)
    weights = np.array([comp.get_atomic_fraction(e) for e in elements])
    row = []
    for name in ELEMENT_PROPERTIES:
        v = np.array([_element_value(e, name) for e in elements])
        mean = float(np.sum(weights * v))
        row += [mean, float(np.sqrt(np.sum(weights * (v - mean) ** 2))), float(v.min()), float(v.max())]
    return np.array(row + [len(elements), len(structure), structure.volume / len(structure)])


def phonon_features(freq_meV, total_dos, min_freq_meV: float | None = None) -> np.ndarray:
    """Phonon-DOS features of a total DOS ``total_dos`` on ``freq_meV`` (module docstring)."""
    f = np.asarray(freq_meV, dtype=float)
    g = np.clip(np.asarray(total_dos, dtype=float), 0.0, None)
    pos = f > 0
    if pos.sum() < 2 or g[pos].sum() <= 0:
        raise InputError("phonon DOS", "no states at positive frequency")
    f, g = f[pos], g[pos]
    moments = phonon_moments(f, g)
    dw = np.gradient(f)
    states = g * dw
    cum = np.cumsum(states) / states.sum()
    top = float(np.interp(0.99, cum, f))
    mean = float((states * f).sum() / states.sum())
    soft = float(states[f < SOFT_MEV].sum() / states.sum())
    lambda_g = float(2.0 * (states / f).sum() / states.sum())
    lowest = float(f[0]) if min_freq_meV is None else float(min_freq_meV)
    return np.array([moments["omega_log_K"], moments["omega_2_K"], mean, top, soft, lambda_g, lowest])


def pretrained_features(site_features) -> np.ndarray:
    """[2F]: mean and standard deviation over the atoms of pretrained site features [n_atoms, F]."""
    f = np.asarray(site_features, dtype=float)
    return np.concatenate([f.mean(axis=0), f.std(axis=0)])


def feature_names(n_pretrained: int = 0) -> tuple[str, ...]:
    """Column names of :func:`features` with ``n_pretrained`` pretrained features per atom."""
    return FEATURE_NAMES + tuple(f"pretrained_{s}_{k}" for s in ("mean", "std") for k in range(n_pretrained))


def features(structure, freq_meV, total_dos, min_freq_meV: float | None = None, site_features=None) -> np.ndarray:
    """One material's feature row (:func:`feature_names`; :data:`FEATURE_NAMES` without ``site_features``)."""
    parts = [composition_features(structure), phonon_features(freq_meV, total_dos, min_freq_meV)]
    if site_features is not None:
        parts.append(pretrained_features(site_features))
    return np.concatenate(parts)


def entry_features(entry, site_features=None) -> np.ndarray | None:
    """:func:`features` of a data entry from its structure and coarse site PhDOS (summed over the sites), with
    ``site_features`` when given; None when the entry has no coarse PhDOS."""
    if entry.phdos_coarse_site is None:
        return None
    return features(entry.structure, entry.phdos_coarse_freq_meV, entry.phdos_coarse_site.sum(axis=0),
                    entry.extra.get("min_phonon_freq_meV"), site_features)


class GBMBaseline:
    """Gradient boosting of λ (or T_c) on :func:`features` rows; T_c through Allen–Dynes at the phonon
    moments. ``fit(x, tc)`` then ``predict(x)`` → ``dict(lambda, omega_log_K, omega_2_K, tc_K)``."""

    def __init__(self, target: str = "lambda", mu_star: float = MU_STAR_DEFAULT, settings: dict | None = None):
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.target, self.mu_star = target, float(mu_star)
        self.settings = {**GBM_SETTINGS, **(settings or {})}
        self.model = None
        self.n_fit = 0

    def _moments(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        j = FEATURE_NAMES.index("ph_omega_log_K")
        return x[:, j], x[:, j + 1]

    def fit(self, x, tc_K) -> GBMBaseline:
        from sklearn.ensemble import HistGradientBoostingRegressor

        x, tc = np.asarray(x, dtype=float), np.asarray(tc_K, dtype=float)
        if self.target == "lambda":
            wlog, w2 = self._moments(x)
            y = allen_dynes_lambda(tc, wlog, w2, self.mu_star)
        elif self.target == "log_tc":
            y = np.log1p(np.clip(tc, 0.0, None))
        else:
            y = tc
        use = np.isfinite(y)  # missing features (NaN) are handled by the regressor itself
        if use.sum() < 10:
            raise InputError("GBM baseline", f"only {int(use.sum())} usable training entries")
        self.model = HistGradientBoostingRegressor(**self.settings).fit(x[use], y[use])
        self.n_fit = int(use.sum())
        return self

    def predict(self, x) -> dict[str, np.ndarray]:
        if self.model is None:
            raise RuntimeError("fit the baseline first")
        x = np.asarray(x, dtype=float)
        wlog, w2 = self._moments(x)
        raw = self.model.predict(x)
        if self.target in ("tc", "log_tc"):
            tc = np.expm1(np.clip(raw, 0.0, None)) if self.target == "log_tc" else np.clip(raw, 0.0, None)
            return {"lambda": np.full(len(x), np.nan), "omega_log_K": wlog, "omega_2_K": w2, "tc_K": tc}
        lam = np.clip(raw, 0.0, None)
        return {"lambda": lam, "omega_log_K": wlog, "omega_2_K": w2,
                "tc_K": np.asarray(allen_dynes_tc(lam, wlog, w2, self.mu_star), dtype=float)}
