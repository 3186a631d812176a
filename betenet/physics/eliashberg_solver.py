"""Isotropic Migdal–Eliashberg Tc: where the linearized Matsubara gap equation first has a solution.

Method
------
The isotropic Migdal–Eliashberg equations on the imaginary axis, linearized at Tc (the gap
Δ_n → 0 so it drops out of every denominator), read for fermionic Matsubara frequencies
ω_n = πT(2n+1) (Allen & Mitrović, Solid State Phys. 37, 1 (1982); Carbotte, Rev. Mod. Phys. 62,
1027 (1990))::

    Z_n    = 1 + (πT/ω_n) Σ_m λ(n-m) sgn(ω_m)
    Z_n Δ_n = πT Σ_m [λ(n-m) - μ*_c θ(ω_c - |ω_m|)] Δ_m / |ω_m|

with the bosonic-difference kernel (ν_l = 2πT l)::

    λ(l) = 2 ∫_0^∞ ω α²F(ω) / (ω² + ν_l²) dω          (λ(0) = λ, the usual coupling constant)

For an even-frequency gap, Δ_{-n-1} = Δ_n, every sum folds onto n, m ≥ 0. The Z sum telescopes
exactly (no truncation): (2n+1) Z_n = D_n ≡ 2n+1 + λ(0) + 2 Σ_{l=1}^{n} λ(l). With
x_n = Δ_n / (2n+1) the gap equation becomes the matrix problem of Allen & Dynes (Phys. Rev. B 12,
905 (1975))::

    Σ_m [A_nm - δ_nm D_n] x_m = 0,    A_nm = λ(n-m) + λ(n+m+1) - 2 μ*_c θ(ω_c - ω_m) θ(ω_c - ω_n)

The solver uses the equivalent symmetric, Z-normalised form M = D^{-1/2} A D^{-1/2}: because
A - D = D^{1/2} (M - 1) D^{1/2} (a congruence, D_n > 0), the largest eigenvalue η(T) of M
crosses 1 exactly where the largest eigenvalue of A - D crosses 0. η(T) > 1 means the normal
state is unstable (T < Tc); Tc is the temperature where η(Tc) = 1, found by scipy's ``brentq``
in ln T after a geometric downward scan has bracketed the crossing.

Conventions and numerical choices
---------------------------------
* Spectrum: only ω > 0 contributes; negative a2F values (DFT smearing noise) are integrated as
  given, the one policy of :mod:`betenet.physics.properties`. The integral uses the same cells as
  :func:`betenet.physics.eliashberg.moments_torch` (QE's rectangle rule, cut at ω = 0; non-uniform
  grids allowed), so λ(0) is the λ of every other property; a one-point grid has no cell width,
  hence no coupling. λ(0) ≤ ``LAMBDA_EPS`` means no coupling and Tc = 0.
* The phonon scale ω_ph (:func:`phonon_scale_meV`) is the frequency below which ``SCALE_QUANTILE``
  (99 %) of the positive spectral weight ∫ a2F dω lies, interpolated between grid points. It
  moves continuously with the spectrum, and a tail carrying a fraction f of the weight moves it
  by about f / 1 % of a grid step, so the near-zero tails every predicted spectrum carries do not
  set the scale (a highest-nonzero-frequency rule would jump to the tail and move Tc with it). The
  Matsubara (Coulomb) cutoff is ω_c = ``cutoff_factor`` × ω_ph.
* μ* is the Coulomb pseudopotential at the phonon scale ω_ph (the usual value quoted with
  Allen–Dynes/McMillan, default 0.10). It is rescaled to the cutoff with the standard
  Morel–Anderson / Bogoliubov–Tolmachev renormalisation (Allen & Mitrović 1982, sec. on μ*)::

      μ*_c = μ* / (1 + μ* ln(ω_ph/ω_c)) = μ* / (1 - μ* ln(cutoff_factor))

  so that Tc is (to the accuracy of this logarithmic scaling) independent of ``cutoff_factor``.
  Values with μ* ln(cutoff_factor) ≥ 1 have no finite μ*_c and are rejected.
* The phonon sums run over the N_c positive frequencies below ω_c, but never over fewer than
  ``min_matsubara`` (so strong coupling, where Tc ≳ ω_c/(2π), still has a converged kernel);
  the Coulomb term acts only below ω_c.
* The matrix has about ω_c/(2πT) rows, so T is not searched below the floor
  T_floor = max(``t_min_K``, ω_c / (π (2 ``max_matsubara`` + 1))) — for ω_ph = 100 meV and
  the defaults this is ≈0.11 K. If η(T_floor) < 1 the spectrum has no Tc above the floor and
  the solver returns 0.0 (likewise for a spectrum with no positive coupling). Up to 64 rows
  the eigenvalue comes from a dense symmetric solver; larger matrices are applied through FFT
  convolutions and solved with Lanczos (ARPACK ``eigsh``).

Assumptions: isotropic (Fermi-surface averaged) coupling, linearized at Tc, Migdal's theorem
(no vertex corrections), constant electronic DOS around E_F (infinite band, particle–hole
symmetric, no χ/energy-shift term), Coulomb repulsion as a frequency-independent μ* with a
sharp Matsubara cutoff, even-frequency s-wave gap.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse.linalg
import torch

from betenet.errors import InputError
from betenet.physics.eliashberg import LAMBDA_EPS, cell_widths_torch
from betenet.physics.units import MEV_TO_K, MU_STAR_DEFAULT

#: Share of the positive spectral weight ∫ a2F dω below the phonon scale ω_ph (the cutoff scale).
SCALE_QUANTILE = 0.99
#: Matrices up to this many rows use a dense eigensolver, larger ones FFT products + Lanczos.
DENSE_MAX = 64
#: Terms of the large-ν series of the kernel (ratio ≤ 1/4 per term, so 4^-27 < 1e-16).
_SERIES_TERMS = 27


def _validate(omega_meV, a2f) -> tuple[np.ndarray, np.ndarray]:
    """Return (ω, a2F with the ω ≤ 0 points zeroed) as float arrays; InputError for unusable input."""
    omega = np.asarray(omega_meV, dtype=float)
    spec = np.asarray(a2f, dtype=float)
    if omega.ndim != 1 or omega.size == 0:
        raise InputError("omega_meV", f"expected a non-empty 1-D frequency grid, got shape {omega.shape}")
    if spec.shape != omega.shape:
        raise InputError("a2f", f"shape {spec.shape} does not match omega_meV shape {omega.shape}")
    if not np.all(np.isfinite(omega)):
        raise InputError("omega_meV", "contains NaN or infinite frequencies")
    if not np.all(np.isfinite(spec)):
        raise InputError("a2f", "contains NaN or infinite values")
    if omega.size > 1 and np.any(np.diff(omega) <= 0):
        raise InputError("omega_meV", "frequencies must be strictly increasing")
    spec = np.where(omega > 0, spec, 0.0)
    return omega, spec


def _quadrature_weights(omega: np.ndarray) -> np.ndarray:
    """Cell widths of the properties' rectangle rule (cut at ω = 0; one point: 0)."""
    return cell_widths_torch(torch.from_numpy(omega)).numpy()


def phonon_scale_meV(omega_meV, a2f, quantile: float = SCALE_QUANTILE) -> float:
    """ω_ph: the frequency below which ``quantile`` of the positive weight ∫ max(a2F, 0) dω lies.

    The weight of each grid point (its a2F times its rectangle-rule cell) sits at the point, and
    the cumulative weight is interpolated linearly between neighbouring points (from 0 before the
    first), so the result moves continuously with the spectrum; a single-bin (Einstein) spectrum at
    ω_E gives ω_E - (1 - quantile) × the grid step. 0.0 for a spectrum without positive weight.
    """
    omega, spec = _validate(omega_meV, a2f)
    weight = _quadrature_weights(omega) * np.clip(spec, 0.0, None)
    total = float(weight.sum())
    if total <= 0:  # also the one-point grid (no cell)
        return 0.0
    cum = np.concatenate(([0.0], np.cumsum(weight)))
    points = np.concatenate(([0.0], np.clip(omega, 0.0, None)))
    i = min(int(np.searchsorted(cum, quantile * total)), omega.size)  # first point reaching the quantile
    frac = (quantile * total - cum[i - 1]) / (cum[i] - cum[i - 1])
    return float(points[i - 1] + frac * (points[i] - points[i - 1]))


def _kernel(omega: np.ndarray, weight: np.ndarray, nu_meV: np.ndarray) -> np.ndarray:
    """λ(ν) = 2 Σ_i w_i ω_i a2F_i / (ω_i² + ν²) for the support points (ω, w·a2F).

    Where ν ≥ 2 max(ω) the sum is evaluated from its convergent large-ν series
    λ(ν) = (2/ν²) Σ_k (-x)^k S_k, x = (ω_s/ν)² ≤ 1/4, S_k = Σ_i w_i a2F_i ω_i (ω_i/ω_s)^{2k},
    truncated after _SERIES_TERMS terms (remainder < 4^-_SERIES_TERMS relative, below float
    rounding): identical to the direct sum, but O(len(ν)) instead of O(len(ν) len(ω)).
    """
    out = np.empty(nu_meV.shape, dtype=float)
    if omega.size == 0:
        out[:] = 0.0
        return out
    num = 2.0 * weight * omega
    w2 = omega**2
    w_s = float(omega.max())
    far = nu_meV >= 2.0 * w_s
    near = np.flatnonzero(~far)
    step = max(1, 2**22 // omega.size)
    for s in range(0, near.size, step):
        nu2 = nu_meV[near[s : s + step], None] ** 2
        out[near[s : s + step]] = (num / (w2 + nu2)).sum(axis=1)
    if far.any():
        ratio2 = (omega / w_s) ** 2
        coeff = np.array([(num * ratio2**k).sum() for k in range(_SERIES_TERMS)])
        x = -((w_s / nu_meV[far]) ** 2)
        acc = np.full(x.shape, coeff[-1])
        for c in coeff[-2::-1]:  # Horner in x
            acc = acc * x + c
        out[far] = acc / nu_meV[far] ** 2
    return out


def matsubara_lambda(omega_meV, a2f, nu_meV) -> np.ndarray:
    """Eliashberg kernel λ(ν) = 2 ∫_0^∞ ω α²F(ω) / (ω² + ν²) dω at bosonic frequencies ν (meV).

    ``λ(0)`` is the electron–phonon coupling constant λ. Points at ω ≤ 0 are dropped, negative a2F
    values integrated as given; the integral uses the properties' rectangle-rule cells.
    """
    omega, spec = _validate(omega_meV, a2f)
    nu = np.asarray(nu_meV, dtype=float).ravel()
    keep = spec != 0
    weight = (_quadrature_weights(omega) * spec)[keep]
    return _kernel(omega[keep], weight, nu).reshape(np.shape(nu_meV))


class _Problem:
    """A spectrum plus the solver settings; evaluates η(T) for the Tc search."""

    def __init__(self, omega_meV, a2f, mu_star, cutoff_factor, min_matsubara, max_matsubara):
        omega, spec = _validate(omega_meV, a2f)
        if not (np.isfinite(mu_star) and mu_star >= 0):
            raise InputError("mu_star", f"must be a finite number >= 0, got {mu_star!r}")
        if not (np.isfinite(cutoff_factor) and cutoff_factor > 1):
            raise InputError("cutoff_factor", f"must be > 1 (cutoff above the phonons), got {cutoff_factor!r}")
        if int(min_matsubara) < 1:
            raise InputError("min_matsubara", f"must be >= 1, got {min_matsubara!r}")
        if int(max_matsubara) < int(min_matsubara):
            raise InputError("max_matsubara", f"must be >= min_matsubara={min_matsubara}, got {max_matsubara}")
        denom = 1.0 - mu_star * math.log(cutoff_factor)
        if denom <= 0:
            raise InputError(
                "mu_star", f"{mu_star} cannot be rescaled to cutoff_factor={cutoff_factor}: mu* ln(cutoff) >= 1"
            )
        keep = spec != 0
        self.omega = omega[keep]
        self.weight = (_quadrature_weights(omega) * spec)[keep]
        self.lam = float(_kernel(self.omega, self.weight, np.zeros(1))[0]) if keep.any() else 0.0
        if self.lam > LAMBDA_EPS:
            self.omega_ph = phonon_scale_meV(omega, spec)
        else:
            self.lam = 0.0
            self.omega_ph = 0.0
        self.omega_c = cutoff_factor * self.omega_ph
        self.mu_c = mu_star / denom
        self.min_n = int(min_matsubara)
        self.max_n = int(max_matsubara)

    def n_cutoff(self, t_meV: float) -> int:
        """Number of ω_n = πT(2n+1) > 0 strictly below ω_c."""
        x = self.omega_c / (math.pi * t_meV)
        return max(0, math.ceil((x - 1.0) / 2.0))

    def t_floor_meV(self, t_min_K: float) -> float:
        """Lowest temperature searched: t_min_K or where N_c reaches max_matsubara."""
        return max(t_min_K / MEV_TO_K, self.omega_c / (math.pi * (2 * self.max_n + 1)))

    def parts(self, t_meV: float):
        """(λ(0..2N-1), D_n, Coulomb mask u_n, N) at temperature T (meV)."""
        n_c = self.n_cutoff(t_meV)
        n = max(n_c, self.min_n)
        lam_l = _kernel(self.omega, self.weight, 2.0 * math.pi * t_meV * np.arange(2 * n))
        idx = np.arange(n)
        d = 2 * idx + 1 + lam_l[0] + 2.0 * np.concatenate(([0.0], np.cumsum(lam_l[1:n])))[:n]
        u = (idx < n_c).astype(float)
        return lam_l, d, u, n

    def eigenvalue(self, t_meV: float, dense: bool | None = None) -> float:
        """Largest eigenvalue η(T) of the Z-normalised gap kernel M (η = 1 at Tc)."""
        lam_l, d, u, n = self.parts(t_meV)
        s = 1.0 / np.sqrt(d)
        if dense is None:
            dense = n <= DENSE_MAX
        if dense:
            idx = np.arange(n)
            a = lam_l[np.abs(idx[:, None] - idx[None, :])] + lam_l[idx[:, None] + idx[None, :] + 1]
            a -= 2.0 * self.mu_c * np.outer(u, u)
            m = s[:, None] * a * s[None, :]
            return float(scipy.linalg.eigh(m, eigvals_only=True, subset_by_index=[n - 1, n - 1])[0])
        # Unfolded, (A + 2μ*uu)x is the Toeplitz product Σ_j λ(|n-j|) x_j over j = -N..N-1 with the
        # even extension x_{-m-1} = x_m; n - j spans -(N-1)..2N-1, so one circular convolution of
        # length L ≥ 3N holds it without wrap-around.
        size = 1 << int(math.ceil(math.log2(3 * n)))
        circ = np.zeros(size)
        circ[: 2 * n] = lam_l
        circ[size - n + 1 :] = lam_l[n - 1 : 0 : -1]
        circ = np.fft.rfft(circ)
        mu2 = 2.0 * self.mu_c

        def matvec(x):
            y = s * np.ravel(x)
            conv = np.fft.irfft(circ * np.fft.rfft(np.concatenate((y[::-1], y)), size), size)[n : 2 * n]
            return s * (conv - mu2 * u * (u @ y))

        op = scipy.sparse.linalg.LinearOperator((n, n), matvec=matvec, dtype=float)
        v0 = s * np.sqrt(s)  # positive, smooth start close to the leading (nodeless) gap vector
        val = scipy.sparse.linalg.eigsh(op, k=1, which="LA", v0=v0, tol=1e-10, return_eigenvectors=False)
        return float(val[0])


def gap_eigenvalue(
    omega_meV,
    a2f,
    t_K: float,
    mu_star: float = MU_STAR_DEFAULT,
    *,
    cutoff_factor: float = 10.0,
    min_matsubara: int = 32,
) -> float:
    """Largest eigenvalue η(T) of the Z-normalised linearized gap kernel at ``t_K`` kelvin.

    η > 1 below Tc, η = 1 at Tc, η < 1 above (see the module docstring for the equations).
    The matrix has max(N_c, ``min_matsubara``) rows, N_c ≈ ω_c/(2πT); it is not capped here.
    """
    prob = _Problem(omega_meV, a2f, mu_star, cutoff_factor, min_matsubara, min_matsubara)
    if not (np.isfinite(t_K) and t_K > 0):
        raise InputError("t_K", f"temperature must be > 0 K, got {t_K!r}")
    if prob.lam == 0:
        return 0.0
    return prob.eigenvalue(t_K / MEV_TO_K)


def eliashberg_tc(
    omega_meV,
    a2f,
    mu_star: float = MU_STAR_DEFAULT,
    *,
    cutoff_factor: float = 10.0,
    tol: float = 1e-4,
    t_min_K: float = 0.01,
    min_matsubara: int = 32,
    max_matsubara: int = 16384,
) -> float:
    """Superconducting Tc (K) from the linearized isotropic Migdal–Eliashberg equations.

    Parameters
    ----------
    omega_meV, a2f : the Eliashberg function α²F(ω) on a strictly increasing grid (meV).
        Points at ω ≤ 0 are ignored, negative a2F values integrated as given; one nonzero bin is enough.
    mu_star : Coulomb pseudopotential at the phonon scale ω_ph (rescaled to ω_c internally).
    cutoff_factor : Matsubara/Coulomb cutoff ω_c = cutoff_factor × ω_ph (:func:`phonon_scale_meV`).
    tol : relative tolerance on Tc (brentq runs in ln T with ``xtol = tol``).
    t_min_K, max_matsubara : the search floor is max(t_min_K, ω_c/(π(2 max_matsubara+1))).
    min_matsubara : fewest positive Matsubara frequencies kept (matters when Tc ≳ ω_c/2π).

    Returns
    -------
    Tc in kelvin where the largest eigenvalue of the gap kernel equals 1, or 0.0 when there
    is no positive coupling or no Tc above the floor (never NaN). See the module docstring for
    the equations, the μ* cutoff convention and the assumptions (isotropic, linearized at Tc,
    Migdal, constant DOS, no vertex corrections).
    """
    prob = _Problem(omega_meV, a2f, mu_star, cutoff_factor, min_matsubara, max_matsubara)
    if not (np.isfinite(tol) and 0 < tol < 1):
        raise InputError("tol", f"relative tolerance must be in (0, 1), got {tol!r}")
    if not (np.isfinite(t_min_K) and t_min_K > 0):
        raise InputError("t_min_K", f"must be > 0 K, got {t_min_K!r}")
    if prob.lam == 0:
        return 0.0
    t_floor = prob.t_floor_meV(t_min_K)

    seen: dict[float, float] = {}  # brentq re-evaluates the bracket ends

    def excess(log_t: float) -> float:
        if log_t not in seen:
            seen[log_t] = prob.eigenvalue(math.exp(log_t)) - 1.0
        return seen[log_t]

    # Upper end: η(T) → λ/(1+λ) < 1 as T → ∞, so doubling from ω_ph terminates.
    t_hi = max(prob.omega_ph, t_floor)
    while excess(math.log(t_hi)) >= 0:
        t_hi *= 2.0
    # Downward geometric scan (cheap at high T) until η ≥ 1 brackets Tc, or the floor is reached.
    t_lo = t_hi
    while True:
        t_next = max(t_lo / 4.0, t_floor)
        f_next = excess(math.log(t_next))
        if f_next >= 0:
            t_hi, t_lo = t_lo, t_next
            break
        if t_next <= t_floor:
            return 0.0
        t_lo = t_next
    if f_next == 0:
        return t_lo * MEV_TO_K
    eps = 4 * np.finfo(float).eps
    log_tc = scipy.optimize.brentq(excess, math.log(t_lo), math.log(t_hi), xtol=tol, rtol=eps)
    return math.exp(log_tc) * MEV_TO_K
