"""The physical properties of an a2F spectrum under one set of names, in torch and in numpy.

:data:`PROPERTIES` names them everywhere in the package — labels, losses, predictions, metrics:

* ``lambda``       electron–phonon coupling constant λ = 2 ∫ a2F(ω)/ω dω
* ``omega_log_K``  logarithmic moment ω_log (K)
* ``omega_2_K``    second moment ω_2 (K)
* ``tc_K``         Allen–Dynes T_c (K) at a given μ*

:func:`properties_torch` (differentiable, batched, dtype-preserving) and :func:`properties` (numpy,
float64, the same torch code) return dicts with exactly these keys; :func:`a2f_properties` is the
one-spectrum convenience with Python floats. Files and CLI output may rename them (``tc_K`` is
written :data:`TC_ALLEN_DYNES`, ``tc_allen_dynes_K``, by every command: predict, screen, analyze-a2f);
nothing else does.

Policy for negative a2F values (smearing noise of DFT output): every property, here and in the
Eliashberg solver, integrates the spectrum as given, as QE does. :func:`spectrum_warnings` says how
much of the λ integrand is negative and what λ would be with the negative values set to zero, so a
user sees when the choice matters (QE's a2F.dos1 for Al: λ 0.219 as given, 0.342 clipped).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from betenet.physics.eliashberg import (allen_dynes_tc_torch, cell_widths_torch, mcmillan_tc_torch,
                                        moments_torch)
from betenet.physics.units import CMM1_TO_MEV, LOW_FREQUENCY_MEV, MAX_PHONON_MEV, MU_STAR_DEFAULT

__all__ = [
    "PROPERTIES",
    "MOMENTS",
    "TC_ALLEN_DYNES",
    "properties_torch",
    "properties",
    "a2f_properties",
    "allen_dynes_tc",
    "mcmillan_tc",
    "allen_dynes_lambda",
    "TYPICAL_RANGES",
    "CONVENTIONAL_RANGES",
    "in_ranges",
    "phonon_moments",
    "implausibility",
    "lambda_weights",
    "spectrum_warnings",
    "weight_edge",
]

#: The derived properties of a spectrum, in Table I's column order (T_c added).
PROPERTIES = ("lambda", "omega_log_K", "omega_2_K", "tc_K")
#: The three moments (the properties that do not depend on μ*).
MOMENTS = PROPERTIES[:3]
#: The name of the predicted (Allen–Dynes) ``tc_K`` in the files and tables the commands write.
TC_ALLEN_DYNES = "tc_allen_dynes_K"
#: Where λ and ω_log of real conventional superconductors and ordinary metals lie (strong-coupling
#: extremes near λ 3, the softest lattices near ω_log 30 K, hydrides and light-element compounds up to
#: ~1500 K): a predicted spectrum outside is flagged, not trusted.
TYPICAL_RANGES = {"lambda": (0.05, 3.0), "omega_log_K": (30.0, 1500.0)}
#: The same for conventional metals without hydrogen or other light-element stiff lattices (ω_log up to
#: 800 K): the "in range" share evaluate reports beside the flag-free share, and the studies' physics goal.
CONVENTIONAL_RANGES = {"lambda": TYPICAL_RANGES["lambda"], "omega_log_K": (30.0, 800.0)}
#: Negative weight below this share of the λ integrand is not worth a warning.
NEGATIVE_WARN_FRACTION = 1e-3
#: A share of λ above this from frequencies below :data:`~betenet.physics.units.LOW_FREQUENCY_MEV` is
#: warned about (weight at ω → 0 makes λ as large as one likes: a2F 0.5 at 1e-12 meV gives λ ~ 1e12).
LOW_FREQUENCY_WARN_FRACTION = 0.1
#: Where a spectrum's weight ends: the highest frequency at which it reaches this fraction of its peak.
EDGE_FRACTION = 1e-2


def properties_torch(omega_meV: Tensor, a2f: Tensor, mu_star: Tensor | float = MU_STAR_DEFAULT) -> dict[str, Tensor]:
    """:data:`PROPERTIES` of ``a2f`` [..., B] on the ascending grid ``omega_meV`` [B] (tensors of
    ``a2f``'s leading shape and dtype, differentiable with respect to ``a2f``)."""
    lam, wlog, w2 = moments_torch(omega_meV, a2f)
    tc = allen_dynes_tc_torch(lam, wlog, w2, mu_star)
    return dict(zip(PROPERTIES, (lam, wlog, w2, tc)))


# --------------------------------------------------------------------------------------------
# numpy-facing functions (float64, the same torch code)
# --------------------------------------------------------------------------------------------
def _as_f64(x, name: str) -> Tensor:
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return torch.from_numpy(arr.copy())


def _out(t: Tensor):
    a = t.detach().cpu().numpy()
    return float(a) if a.ndim == 0 else a


def _grid(omega_meV) -> Tensor:
    omega = _as_f64(omega_meV, "omega_meV")
    if omega.ndim != 1 or omega.shape[0] == 0:
        raise ValueError(f"omega_meV must be a non-empty 1-D grid, got shape {tuple(omega.shape)}")
    if omega.shape[0] > 1 and not bool((omega[1:] > omega[:-1]).all()):
        raise ValueError("omega_meV must be strictly increasing")
    return omega


def properties(omega_meV, a2f, mu_star=MU_STAR_DEFAULT) -> dict:
    """numpy: :data:`PROPERTIES` of ``a2f`` [..., B] on the grid ``omega_meV`` [B]; floats for one
    spectrum, arrays of the leading shape for a batch. ``mu_star`` may broadcast against the batch."""
    props = properties_torch(_grid(omega_meV), _as_f64(a2f, "a2f"), _as_f64(mu_star, "mu_star"))
    return {k: _out(v) for k, v in props.items()}


def phonon_moments(freq_meV, dos) -> dict:
    """ω_log and ω_2 (K) of a phonon DOS g(ω) [..., F] taken as an a2F, as Allen & Dynes used the phonon DOS:
    :func:`properties` of g on its positive frequencies, negative values clipped to 0 (imaginary modes and
    interpolation undershoot carry no weight). ``dict(omega_log_K, omega_2_K)``; NaN with no state above 0."""
    f = np.asarray(freq_meV, dtype=np.float64)
    g = np.clip(np.asarray(dos, dtype=np.float64), 0.0, None)[..., f > 0]
    props = properties(f[f > 0], g)
    return {k: props[k] for k in ("omega_log_K", "omega_2_K")}


def a2f_properties(omega_meV, a2f, mu_star=MU_STAR_DEFAULT) -> dict[str, float]:
    """:data:`PROPERTIES` of one spectrum as Python floats."""
    if np.ndim(a2f) != 1:
        raise ValueError(f"a2f_properties takes one spectrum (1-D a2f), got shape {np.shape(a2f)}")
    return {k: float(v) for k, v in properties(omega_meV, a2f, mu_star).items()}


def allen_dynes_tc(lam, wlog_K, w2_K, mu_star=MU_STAR_DEFAULT):
    """numpy: Allen–Dynes Tc [K], vectorised over broadcastable inputs."""
    return _out(allen_dynes_tc_torch(_as_f64(lam, "lam"), _as_f64(wlog_K, "wlog_K"), _as_f64(w2_K, "w2_K"),
                                     _as_f64(mu_star, "mu_star")))


def mcmillan_tc(lam, wlog_K, mu_star=MU_STAR_DEFAULT):
    """numpy: McMillan Tc [K] (Allen–Dynes form, prefactor w_log/1.2), vectorised."""
    return _out(mcmillan_tc_torch(_as_f64(lam, "lam"), _as_f64(wlog_K, "wlog_K"), _as_f64(mu_star, "mu_star")))


# --------------------------------------------------------------------------------------------
# diagnostics
# --------------------------------------------------------------------------------------------
def lambda_weights(omega_meV) -> np.ndarray:
    """d lambda / d a2F_i = 2 dw_i / w_i on the grid (0 for w_i <= 0): lambda = weights @ a2F."""
    omega = _grid(omega_meV)
    w = cell_widths_torch(omega).numpy()
    om = omega.numpy()
    return np.where(om > 0, 2.0 * w / np.where(om > 0, om, 1.0), 0.0)


def weight_edge(omega_meV, values) -> float:
    """Where a spectrum's weight ends: the highest frequency at which ``values`` reaches
    :data:`EDGE_FRACTION` of its peak (-inf when nothing is positive)."""
    omega, values = np.asarray(omega_meV, dtype=float), np.asarray(values, dtype=float)
    peak = float(values.max()) if values.size else 0.0
    return float(omega[values >= EDGE_FRACTION * peak].max()) if peak > 0 else -np.inf


def spectrum_warnings(omega_meV, a2f) -> tuple[list[str], dict]:
    """What a user should know before trusting the properties of one raw spectrum.

    Returns ``(warnings, facts)``: ``facts`` holds ``negative_lambda_fraction`` (share of the
    absolute λ integrand carried by negative a2F values), ``lambda_as_given`` and
    ``lambda_negatives_zeroed``; ``warnings`` one sentence per problem: negative weight above
    :data:`NEGATIVE_WARN_FRACTION`, more than :data:`LOW_FREQUENCY_WARN_FRACTION` of λ from below
    ``LOW_FREQUENCY_MEV`` (weight at ω → 0), weight above ``MAX_PHONON_MEV`` (no phonon is that high:
    another unit), rows at negative frequency (left out of every integral), a single row (no
    integration cell). The properties themselves stay exact.
    """
    omega = np.asarray(omega_meV, dtype=float)
    spec = np.asarray(a2f, dtype=float)
    weights = lambda_weights(omega)
    contrib = weights * spec
    total_abs = float(np.abs(contrib).sum())
    negative = float(-contrib[contrib < 0].sum())
    facts = {
        "negative_lambda_fraction": negative / total_abs + 0.0 if total_abs > 0 else 0.0,  # + 0.0: no -0
        "lambda_as_given": float(contrib.sum()),
        "lambda_negatives_zeroed": float(contrib[contrib > 0].sum()),
    }
    out = []
    if facts["negative_lambda_fraction"] > NEGATIVE_WARN_FRACTION:
        out.append(f"negative a2F values carry {100 * facts['negative_lambda_fraction']:.1f} % of the lambda "
                   f"integrand; every property integrates them as given (lambda {facts['lambda_as_given']:.4g}; "
                   f"with negative values set to 0 it would be {facts['lambda_negatives_zeroed']:.4g})")
    positive = facts["lambda_negatives_zeroed"]
    low = float(contrib[(omega > 0) & (omega < LOW_FREQUENCY_MEV) & (contrib > 0)].sum())
    if positive > 0 and low > LOW_FREQUENCY_WARN_FRACTION * positive:
        lowest = float(omega[(omega > 0) & (contrib > 0)].min())
        out.append(f"{100 * low / positive:.3g} % of lambda comes from frequencies below {LOW_FREQUENCY_MEV:g} meV "
                   f"(the lowest with weight: {lowest:.3g} meV), where a real a2F vanishes as omega^2: weight at "
                   "omega -> 0 makes lambda as large as one likes, so lambda, omega_log and Tc say nothing physical")
    edge = weight_edge(omega, spec)
    if edge > MAX_PHONON_MEV:
        out.append(f"a2F has weight up to {edge:,.0f} meV, above any phonon (the highest vibration of any "
                   f"material, the H2 stretch, is ~516 meV): are the frequencies in meV? (1 meV = "
                   f"{1 / CMM1_TO_MEV:.3f} cm^-1); lambda, omega_log and Tc say nothing physical")
    below = omega[omega < 0]
    if below.size:
        out.append(f"{below.size} row(s) at negative frequency ({below.min():g} to {below.max():g} meV) are left "
                   "out: lambda, omega_log, omega_2 and Tc integrate over w > 0")
    if omega.size < 2:
        out.append("a single row; an integral needs at least two frequencies, so lambda, omega_log, omega_2 and "
                   "Tc are 0")
    return out, facts


def allen_dynes_lambda(tc_K, omega_log_K, omega_2_K, mu_star=MU_STAR_DEFAULT, lam_max: float = 10.0):
    """numpy: the λ at which the Allen–Dynes Tc equals ``tc_K`` for the given ω_log, ω_2 (K) and μ*.

    Allen–Dynes Tc rises monotonically with λ above the threshold λ_c = μ*/(1 − 0.62 μ*), where it
    is 0; the root is bracketed in [λ_c, ``lam_max``] and found by bisection to 1e-10 (vectorised).
    ``tc_K`` = 0 gives λ_c (the largest λ with Tc = 0); a Tc above what ``lam_max`` reaches, or a
    non-positive ω_log / ω_2, gives NaN.
    """
    tc, wlog, w2, mu = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in
                                             (tc_K, omega_log_K, omega_2_K, mu_star)))
    lam_c = mu / (1.0 - 0.62 * mu)
    lo = lam_c.copy()
    hi = np.full_like(lo, float(lam_max))
    reachable = (wlog > 0) & (w2 > 0) & (tc >= 0) & (allen_dynes_tc(hi, wlog, w2, mu) >= tc)
    for _ in range(80):  # (lam_max - lam_c) / 2^80 is far below 1e-10
        mid = 0.5 * (lo + hi)
        above = allen_dynes_tc(mid, wlog, w2, mu) > tc
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    lam = np.where(tc > 0, 0.5 * (lo + hi), lam_c)
    out = np.where(reachable, lam, np.nan)
    return float(out) if out.ndim == 0 else out


def in_ranges(values: Mapping[str, np.ndarray], ranges: Mapping[str, tuple[float, float]]) -> np.ndarray:
    """Per entry, whether every property of ``ranges`` (e.g. :data:`TYPICAL_RANGES`) lies inside its closed
    range; NaN is outside."""
    inside = None
    for k, (lo, hi) in ranges.items():
        v = np.asarray(values[k], dtype=float)
        ok = (v >= lo) & (v <= hi)
        inside = ok if inside is None else inside & ok
    return inside


def implausibility(lam: float, omega_log_K: float) -> str | None:
    """A sentence when a spectrum's λ and ω_log are not those of a real metal, else None: λ above
    :data:`TYPICAL_RANGES` (3), or ω_log below 30 K while the coupling is not negligible (λ ≥ 0.05),
    the signature of weight piled into the lowest bins to reach a T_c. Small λ alone is not flagged
    (most metals hardly couple)."""
    lam_hi = TYPICAL_RANGES["lambda"][1]
    lam_lo, (wlog_lo, wlog_hi) = TYPICAL_RANGES["lambda"][0], TYPICAL_RANGES["omega_log_K"]
    problems = []
    if lam > lam_hi:
        problems.append(f"lambda {lam:.3g} above {lam_hi:g}")
    if lam >= lam_lo and omega_log_K < wlog_lo:
        problems.append(f"omega_log {omega_log_K:.3g} K below {wlog_lo:g} K")
    if omega_log_K > wlog_hi:
        problems.append(f"omega_log {omega_log_K:.3g} K above {wlog_hi:g} K")
    if not problems:
        return None
    return "implausible spectrum: " + " and ".join(problems) + " (real metals: lambda up to ~3, omega_log 30-1500 K)"
