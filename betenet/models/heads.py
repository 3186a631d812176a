"""Output heads: how the network's per-atom outputs become the predicted a2F(ω) on the bins.

``spectrum`` (the paper's): the output convolution gives every atom ``n_bins`` scalars; ReLU; the mean
over atoms is a2F. Nothing ties its shape to the phonons: trained on scalars alone (a Tc), it is free
to pile weight into the lowest bins, where 1/ω makes λ large and ω_log small.

``coupling``: a2F is factorised as Eliashberg wrote it, α²(ω) F(ω), site by site:

    a2F(ω) = (1/N) Σ_i α²_i(ω) g_i(ω) / 3

with g_i the atom's binned site-projected phonon DOS (the last ``n_bins`` columns of its node attributes
``attr``: CPD/FPD variants, from DFT or an ML potential; each integrates to 3) and α²_i(ω) a smooth,
positive coupling: ``α²_i(ω) = exp(Σ_k c_ik P_k(x))`` with ``P_k`` the Legendre polynomials of degree
k < ``coupling_basis`` on the bin index mapped to x ∈ [-1, 1], and c_ik the atom's ``coupling_basis``
outputs. The spectral support, the low-frequency ω² edge and most of ω_log and ω_2 then come from
the phonons; the network learns how strongly (and, with more than one basis function, how unevenly
in frequency) the electrons couple to them. ``coupling_basis = 1`` is a constant α² per atom.
The exponent is clamped to [-30, 8] so that a wild output cannot overflow.

``coupling_lambda_max`` (optional) bounds each atom's coupling smoothly: with λ_i = Σ_b w_b a2F_ib the
atom's λ on the grid's quadrature (``physics.properties.lambda_weights``), the atom's spectrum is scaled
by λ_max tanh(λ_i/λ_max)/λ_i, so λ_i < λ_max (and the mean over atoms too) while a λ_i well below the
bound is nearly unchanged (λ_i = 0.5 under λ_max = 4: -0.5 %). Without it nothing stops a structure
unlike the training set from coming out with λ ~ 50 (seen in a JARVIS fold: one member's
extrapolation took the ensemble's CaBC to Tc 122 K against 1 K).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.polynomial import legendre

from betenet.errors import InputError

HEADS = ("spectrum", "coupling")
#: Bounds of the coupling exponent Σ_k c_k P_k (α² between e^-30 and e^8 ≈ 3000).
EXPONENT_BOUNDS = (-30.0, 8.0)


def legendre_basis(n_terms: int, n_bins: int) -> np.ndarray:
    """[n_terms, n_bins]: Legendre P_0 .. P_{n_terms-1} at the bin indices mapped onto [-1, 1]."""
    x = np.linspace(-1.0, 1.0, n_bins)
    return np.stack([legendre.legval(x, np.eye(n_terms)[k]) for k in range(n_terms)])


class CouplingHead(torch.nn.Module):
    """a2F per atom = exp(c @ basis) * site PhDOS / 3 (module docstring); no parameters of its own."""

    def __init__(self, n_terms: int, n_bins: int, lambda_weights=None, lambda_max: float | None = None) -> None:
        super().__init__()
        if n_terms < 1:
            raise InputError("coupling_basis", f"must be >= 1, got {n_terms}")
        self.n_bins = n_bins
        self.register_buffer("basis", torch.as_tensor(legendre_basis(n_terms, n_bins), dtype=torch.float32))
        self.lambda_max = None if lambda_max is None else float(lambda_max)
        if self.lambda_max is not None:
            if not self.lambda_max > 0:
                raise InputError("coupling_lambda_max", f"must be positive (or null), got {lambda_max}")
            if lambda_weights is None or len(lambda_weights) != n_bins:
                raise InputError("coupling_lambda_max", f"needs the grid's {n_bins} lambda weights")
            self.register_buffer("lambda_weights", torch.as_tensor(np.asarray(lambda_weights), dtype=torch.float64),
                                 persistent=False)

    def forward(self, coefficients: torch.Tensor, attr: torch.Tensor) -> torch.Tensor:
        """Per-atom a2F [N, n_bins] from the atoms' coefficients [N, n_terms] and attributes attr [N, ...]."""
        site_dos = attr[:, -self.n_bins:]
        exponent = (coefficients @ self.basis.to(coefficients.dtype)).clamp(*EXPONENT_BOUNDS)
        per_atom = torch.exp(exponent) * site_dos / 3.0
        if self.lambda_max is None:
            return per_atom
        lam = per_atom @ self.lambda_weights.to(per_atom.dtype)  # [N]: each atom's lambda
        x = lam / self.lambda_max
        small = x.abs() < 1e-4  # tanh(x)/x -> 1 (and no 0/0 for an atom without PhDOS)
        scale = torch.where(small, 1.0 - x * x / 3.0, torch.tanh(x) / torch.where(small, torch.ones_like(x), x))
        return per_atom * scale.unsqueeze(-1)
