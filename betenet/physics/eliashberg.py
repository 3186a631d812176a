"""Moments of a2F(w) (lambda, w_log, w_2) and the Allen–Dynes / McMillan Tc formulas, in torch.

Each formula is written once, in torch: differentiable, batched over leading dimensions and
dtype-preserving, so that a training loss can use it directly.  ``betenet.physics.properties``
turns them into the named properties of a spectrum and holds the numpy-facing functions, which
call this same code in float64.

Units: frequencies in meV in; w_log, w_2 and Tc in kelvin out (via ``MEV_TO_K``).  lambda is
dimensionless and does not depend on the frequency unit (dw/w is scale free).

Integration rule (QE matdyn's rectangle rule, generalised to non-uniform grids and kept on
w >= 0): each grid point w_i is the centre of a cell reaching halfway to its two neighbours; the
first and last cells are symmetric about their point (half the adjacent interval on either side);
every cell is cut at w = 0, because a2F lives on w > 0 only.  On QE's a2F grid (w_i = (i + 1/2) Delta)
every cell has width Delta and the first one starts exactly at 0, so ``lambda = 2 sum_i a2F_i / w_i
Delta`` is the sum QE prints at the end of ``a2F.dosN``.  On the binned grid (0.25 + 2k meV) the
first cell is [0, 1.25] meV, not [-0.75, 1.25]: its physical extent.  Points with w <= 0 never
contribute (ln w and 1/w are never evaluated there).  A one-point grid has no cell width and
integrates to zero.

    lambda = 2 ∫ a2F(w)/w dw
    w_log  = exp[(2/lambda) ∫ ln(w) a2F(w)/w dw]
    w_2    = [(2/lambda) ∫ w a2F(w) dw]^(1/2)

Negative a2F values (DFT smearing noise) are integrated as given, in every property here and in the
Eliashberg solver, as QE does; ``betenet.physics.properties.spectrum_warnings`` reports them.
w_log and w_2 are 0 when lambda <= ``LAMBDA_EPS`` (no coupling: the averages are undefined, and
in float32 a vanishing lambda would make their gradients overflow), and w_2 is 0 when its square
is not positive (possible only for spectra with negative entries).

Tc (Allen & Dynes, PRB 12, 905 (1975)), with D = lambda - mu*(1 + 0.62 lambda):

    Tc_AD = f1 f2 (w_log/1.2) exp[-1.04 (1 + lambda) / D]
    f1 = [1 + (lambda/L1)^(3/2)]^(1/3),  L1 = 2.46 (1 + 3.8 mu*)
    f2 = 1 + (w_2/w_log - 1) lambda^2 / (lambda^2 + L2^2),  L2 = 1.82 (1 + 6.3 mu*) (w_2/w_log)

McMillan Tc is used in the Allen–Dynes form, i.e. with the prefactor w_log/1.2 instead of
McMillan's original theta_D/1.45:  Tc_McM = (w_log/1.2) exp[-1.04 (1 + lambda) / D].

Tc = 0 when D <= 0.  Numerically the exponential is evaluated only while its argument is above
-``_MAX_EXPONENT`` (= -800); below that exp(...) is exactly 0 in float64 and float32, so the cut
changes no value and Tc goes to 0 continuously as lambda approaches the threshold from above.
Every masked branch is computed with safe (dummy) operands and selected with ``torch.where``,
so edge cases (all-zero a2F, lambda below threshold, single bins, negative a2F entries) give
finite values and finite gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor

from betenet.physics.units import MEV_TO_K, MU_STAR_DEFAULT

__all__ = [
    "LAMBDA_EPS",
    "moments_torch",
    "allen_dynes_tc_torch",
    "mcmillan_tc_torch",
    "mcmillan_lambda_for_tc_torch",
    "cell_widths_torch",
]

#: lambda at or below which a spectrum counts as uncoupled (w_log = w_2 = 0, no gradient through them).
LAMBDA_EPS = 1e-8
#: exp(-x) is exactly 0 in float64 (and float32) for x above ~745; the Tc exponent is cut there.
_MAX_EXPONENT = 800.0


# --------------------------------------------------------------------------------------------
# torch: the single implementation
# --------------------------------------------------------------------------------------------
def cell_widths_torch(omega: Tensor) -> Tensor:
    """Integration weights dw_i of the rectangle rule on an ascending grid ``omega`` [B].

    Cell i spans [w_i - l_i/2, w_i + r_i/2] cut at w = 0, with l_i, r_i the distances to the
    neighbours (the end points use the adjacent interval on both sides); a one-point grid gets 0.
    """
    if omega.ndim != 1:
        raise ValueError(f"omega must be a 1-D grid, got shape {tuple(omega.shape)}")
    if omega.shape[0] < 2:
        return torch.zeros_like(omega)
    d = omega[1:] - omega[:-1]
    left = torch.cat([d[:1], d])
    right = torch.cat([d, d[-1:]])
    upper = omega + 0.5 * right
    lower = (omega - 0.5 * left).clamp(min=0.0)
    return (upper - lower).clamp(min=0.0)


def moments_torch(omega_meV: Tensor, a2f: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """lambda, w_log [K], w_2 [K] of ``a2f`` [..., B] sampled on the ascending grid ``omega_meV`` [B].

    Differentiable with respect to ``a2f``; the result has ``a2f``'s leading shape and dtype.
    """
    if a2f.shape[-1:] != omega_meV.shape or omega_meV.ndim != 1:
        raise ValueError(
            f"a2f [..., B] must match omega_meV [B]: got {tuple(a2f.shape)} and {tuple(omega_meV.shape)}"
        )
    omega = omega_meV.to(dtype=a2f.dtype, device=a2f.device)
    positive = omega > 0
    w = torch.where(positive, omega, torch.ones_like(omega))  # safe: 1/w, ln w never at w <= 0
    dw_over_w = torch.where(positive, cell_widths_torch(omega) / w, torch.zeros_like(omega))

    lam = 2.0 * (a2f * dw_over_w).sum(-1)
    log_int = 2.0 * (a2f * (dw_over_w * torch.log(w))).sum(-1)  # 2∫ ln(w) a2F/w dw
    sq_int = 2.0 * (a2f * (dw_over_w * w * w)).sum(-1)  # 2∫ w a2F dw

    has_lam = lam > LAMBDA_EPS
    lam_safe = torch.where(has_lam, lam, torch.ones_like(lam))
    log_wlog = torch.where(has_lam, log_int / lam_safe, torch.zeros_like(lam))
    wlog = torch.where(has_lam, torch.exp(log_wlog), torch.zeros_like(lam))

    w2_sq = sq_int / lam_safe
    has_w2 = has_lam & (w2_sq > 0)
    w2_sq_safe = torch.where(has_w2, w2_sq, torch.ones_like(w2_sq))
    w2 = torch.where(has_w2, torch.sqrt(w2_sq_safe), torch.zeros_like(lam))
    return lam, wlog * MEV_TO_K, w2 * MEV_TO_K


def _exponent_gate(lam: Tensor, mu_star: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
    """(valid, numerator, safe denominator) of the exponent -1.04(1+lam)/(lam - mu*(1+0.62 lam))."""
    num = 1.04 * (1.0 + lam)
    den = lam - mu_star * (1.0 + 0.62 * lam)
    # den > 0 and the exponent above -_MAX_EXPONENT (below it exp(...) is exactly 0 anyway).
    valid = (lam > 0) & (den > 0) & (den * _MAX_EXPONENT > num)
    den_safe = torch.where(valid, den, torch.ones_like(den))
    return valid, num, den_safe


def mcmillan_tc_torch(lam: Tensor, wlog_K: Tensor, mu_star: Tensor | float = MU_STAR_DEFAULT) -> Tensor:
    """McMillan Tc [K], Allen–Dynes form: (w_log/1.2) exp[-1.04(1+lam)/(lam - mu*(1+0.62 lam))]."""
    lam, wlog_K = torch.broadcast_tensors(lam, wlog_K)
    mu = torch.as_tensor(mu_star, dtype=lam.dtype, device=lam.device)
    valid, num, den = _exponent_gate(lam, mu)
    valid = valid & (wlog_K > 0)
    tc = wlog_K / 1.2 * torch.exp(-num / den)
    return torch.where(valid, tc, torch.zeros_like(tc))


def mcmillan_lambda_for_tc_torch(
    tc_K: Tensor, wlog_K: Tensor, mu_star: Tensor | float = MU_STAR_DEFAULT, lam_max: float = 5.0
) -> Tensor:
    """The lambda at which McMillan's Tc (Allen–Dynes form) equals ``tc_K`` for a given w_log.

    Closed-form inverse of ``mcmillan_tc_torch``: with x = ln(1.2 Tc / w_log),
    lambda = (x mu* - 1.04) / (x (1 - 0.62 mu*) + 1.04).  Tc -> 0 gives the threshold
    mu*/(1 - 0.62 mu*); a Tc that McMillan cannot reach at any lambda for this w_log (denominator
    >= 0), or w_log <= 0, gives ``lam_max``.  Used as a training guide for entries labelled only
    with Tc: below the threshold Tc is exactly 0 and carries no gradient, lambda does.
    """
    tc_K, wlog_K = torch.broadcast_tensors(tc_K, wlog_K)
    mu = torch.as_tensor(mu_star, dtype=tc_K.dtype, device=tc_K.device)
    threshold = mu / (1.0 - 0.62 * mu) * torch.ones_like(tc_K)
    ok = (tc_K > 0) & (wlog_K > 0)
    x = torch.log(1.2 * torch.where(ok, tc_K, torch.ones_like(tc_K)) / torch.where(ok, wlog_K, torch.ones_like(tc_K)))
    den = x * (1.0 - 0.62 * mu) + 1.04
    reachable = ok & (den < 0)
    lam = (x * mu - 1.04) / torch.where(reachable, den, -torch.ones_like(den))
    lam = torch.where(reachable, lam.clamp(max=lam_max), torch.full_like(lam, lam_max))
    return torch.where(tc_K > 0, torch.where(wlog_K > 0, lam, torch.full_like(lam, lam_max)), threshold)


def allen_dynes_tc_torch(
    lam: Tensor, wlog_K: Tensor, w2_K: Tensor, mu_star: Tensor | float = MU_STAR_DEFAULT
) -> Tensor:
    """Allen–Dynes Tc [K] with the strong-coupling (f1) and shape (f2) corrections."""
    lam, wlog_K, w2_K = torch.broadcast_tensors(lam, wlog_K, w2_K)
    mu = torch.as_tensor(mu_star, dtype=lam.dtype, device=lam.device)
    valid, num, den = _exponent_gate(lam, mu)
    valid = valid & (wlog_K > 0) & (w2_K > 0)
    one = torch.ones_like(lam)
    lam_s = torch.where(valid, lam, one)
    wlog_s = torch.where(valid, wlog_K, one)
    w2_s = torch.where(valid, w2_K, one)

    ratio = w2_s / wlog_s
    big_l1 = 2.46 * (1.0 + 3.8 * mu)
    big_l2 = 1.82 * (1.0 + 6.3 * mu) * ratio
    f1 = (1.0 + (lam_s / big_l1) ** 1.5) ** (1.0 / 3.0)
    f2 = 1.0 + (ratio - 1.0) * lam_s**2 / (lam_s**2 + big_l2**2)
    tc = f1 * f2 * wlog_s / 1.2 * torch.exp(-num / den)
    return torch.where(valid, tc, torch.zeros_like(tc))
