"""Geometry-only edge features of the reference network: smooth cutoff, Gaussian radial basis, spherical harmonics.

Everything here depends on the edge vectors alone (no learned parameters), so a dataset can
compute it once and hand it to :meth:`betenet.models.network.BeteNet.forward` as ``edge_feats``.

Conventions (those of e3nn's ``gate_points_2101`` and of the BETE-NET release):

* edge attribute  ``a_e = u(r_e / r_max) * Y(r̂_e)``, ``Y`` the real spherical harmonics
  l = 0..lmax with ``normalization="component"`` on the unit vector (``|Y^l|^2 = 2l+1``);
  ``u`` is the cosine step ``u(x) = 1`` for ``x <= 1/2``, ``(1 - cos(2 pi (x - 1)))/2`` for
  ``1/2 < x < 1`` and ``0`` for ``x >= 1``.
* radial embedding ``b_k(r) = sqrt(N) * exp(-((r - c_k)/d)^2) / 1.12`` with N Gaussians whose
  centres ``c_k = k r_max/(N-1)`` span [0, r_max] and width ``d = r_max/(N-1)`` (e3nn's
  ``soft_one_hot_linspace(..., basis="gaussian", cutoff=False)`` times ``sqrt(N)``).

Self-loop edges (zero vector, r = 0) are finite with bounded gradients: ``Y^0 = 1``, ``Y^{l>0} = 0``
(the same values as e3nn's ``normalize=True``, which divides by ``max(r, 1e-12)``, but with a zero
instead of a ~1e12 derivative), ``u(0) = 1``, and the Gaussians are regular at 0.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from e3nn import o3
from e3nn.math import soft_one_hot_linspace


class EdgeFeatures(NamedTuple):
    """Per-edge inputs of every convolution.

    attr:   [E, (lmax+1)^2]     cutoff-weighted spherical harmonics of the edge direction.
    radial: [E, number_of_basis] Gaussian embedding of the edge length.
    """

    attr: torch.Tensor
    radial: torch.Tensor


def smooth_cutoff(r: torch.Tensor, r_max: float) -> torch.Tensor:
    """Cosine step of gate_points_2101: 1 for r <= r_max/2, smoothly to 0 at r_max, 0 beyond."""
    u = 2.0 * (r / r_max - 1.0)  # in [-1, 0] on the transition r in [r_max/2, r_max]
    y = 0.5 * (1.0 - torch.cos(math.pi * u))
    y = torch.where(u < -1.0, torch.ones_like(y), y)
    return torch.where(u > 0.0, torch.zeros_like(y), y)


def radial_embedding(r: torch.Tensor, r_max: float, number_of_basis: int) -> torch.Tensor:
    """Gaussian basis on [0, r_max] (no cutoff), scaled by sqrt(number_of_basis) as in the release."""
    basis = soft_one_hot_linspace(r, 0.0, r_max, number_of_basis, basis="gaussian", cutoff=False)
    return basis * math.sqrt(number_of_basis)


def edge_features(edge_vec: torch.Tensor, lmax: int, r_max: float, number_of_basis: int) -> EdgeFeatures:
    """Spherical-harmonic edge attributes (times the smooth cutoff) and radial embedding of edge vectors [E, 3]."""
    r = torch.linalg.vector_norm(edge_vec, dim=1)
    nonzero = r > 0
    # unit vectors with 0 for self-loops; unlike dividing by max(r, eps) this has a zero (not ~1/eps)
    # derivative at r = 0, so gradients with respect to edge vectors stay bounded
    unit = torch.where(nonzero[:, None], edge_vec / torch.where(nonzero, r, 1.0)[:, None], 0.0)
    # e3nn's harmonics are homogeneous polynomials: Y^0 = 1 and Y^{l>0}(0) = 0 for self-loops
    sh = o3.spherical_harmonics(o3.Irreps.spherical_harmonics(lmax), unit, normalize=False, normalization="component")
    attr = smooth_cutoff(r, r_max)[:, None] * sh
    return EdgeFeatures(attr=attr, radial=radial_embedding(r, r_max, number_of_basis))
