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

    def __init__(self, n_terms: int, n_bins: int) -> None:
        super().__init__()
        if n_terms < 1:
            raise InputError("coupling_basis", f"must be >= 1, got {n_terms}")
        self.n_bins = n_bins
        self.register_buffer("basis", torch.as_tensor(legendre_basis(n_terms, n_bins), dtype=torch.float32))

    def forward(self, coefficients: torch.Tensor, attr: torch.Tensor) -> torch.Tensor:
        """Per-atom a2F [N, n_bins] from the atoms' coefficients [N, n_terms] and attributes attr [N, ...]."""
        site_dos = attr[:, -self.n_bins:]
        exponent = (coefficients @ self.basis.to(coefficients.dtype)).clamp(*EXPONENT_BOUNDS)
        return torch.exp(exponent) * site_dos / 3.0
