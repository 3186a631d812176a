"""Site-projected phonon DOS from mesh modes: a Gaussian-broadened density on a common frequency grid
(meV, states/meV), accumulated chunk by chunk so that eigenvectors of a large mesh are never held at
once.

Recipe. Each mode (frequency f, q-weight w_q summing to 1 over the mesh, projection p_s on site s =
|eigenvector components on s|², summing to 1 over sites) is spread linearly onto the two grid nodes
around f, then the histogram is convolved with a Gaussian of width ``sigma`` (cut at 6 σ and
normalised on the grid). The grid starts at 0 meV when no mode is below ``-imaginary_tol`` (modes
within the tolerance are numerical noise of the acoustic branches; the default is the unstable
filter's 1 meV, so a structure the filter keeps has no negative grid); otherwise it starts 6 σ below
the lowest (imaginary, negative) mode. Broadening that falls below the grid start is reflected back
above it, and the grid ends 6 σ above the highest mode, so each site's DOS sums to exactly 3
(``sum(dos) * step``, a Riemann sum; the trapezoid rule differs by ``step (dos[0] + dos[-1]) / 2``)
and the sites add up to the total DOS, 3 per atom.
"""

from __future__ import annotations

import math

import numpy as np

from betenet.data.filters import DEFAULT_UNSTABLE_THRESHOLD_MEV

#: Gaussian cut-off in units of sigma.
KERNEL_HALF_WIDTH_SIGMA = 6.0


def gaussian_kernel(sigma_meV: float, step_meV: float) -> np.ndarray:
    """A Gaussian of width ``sigma`` sampled on ``step`` out to 6 σ, normalised so ``sum * step = 1``."""
    half = int(math.ceil(KERNEL_HALF_WIDTH_SIGMA * sigma_meV / step_meV))
    x = np.arange(-half, half + 1) * step_meV
    kernel = np.exp(-0.5 * (x / sigma_meV) ** 2)
    return kernel / (kernel.sum() * step_meV)


class SiteDOSAccumulator:
    """Collects modes (:meth:`add`) and returns ``(grid, dos [n_sites, n_grid])`` (:meth:`finish`).

    Histogram node ``k`` of ``hist`` stands for frequency ``(k + lo) * step``; it grows as modes
    outside its range arrive.
    """

    def __init__(self, n_sites: int, step_meV: float):
        self.n_sites, self.step = int(n_sites), float(step_meV)
        self.lo = 0
        self.hist = np.zeros((self.n_sites, 2))
        self.f_min, self.f_max = math.inf, -math.inf
        self.weight = 0.0

    def _cover(self, k_min: int, k_max: int) -> None:
        hi = self.lo + self.hist.shape[1] - 1
        left, right = max(0, self.lo - k_min), max(0, k_max - hi)
        if left or right:
            self.hist = np.pad(self.hist, ((0, 0), (left, right)))
            self.lo -= left

    def add(self, freq_meV, site_weight, q_weight) -> None:
        """Modes of some q-points: ``freq_meV`` [nq, nb] (signed: imaginary < 0), ``site_weight``
        [nq, nb, n_sites] (each mode's projections), ``q_weight`` [nq] (the mesh weights)."""
        freq = np.asarray(freq_meV, dtype=float)
        if freq.size == 0:
            return
        if not np.all(np.isfinite(freq)):
            raise ValueError("non-finite phonon frequency")
        w = np.asarray(site_weight, dtype=float) * np.asarray(q_weight, dtype=float)[:, None, None]
        w = w.reshape(-1, self.n_sites)
        pos = freq.reshape(-1) / self.step
        low = np.floor(pos).astype(np.int64)
        upper = pos - low
        self._cover(int(low.min()), int(low.max()) + 1)
        idx = low - self.lo
        size = self.hist.shape[1]
        for s in range(self.n_sites):
            self.hist[s] += np.bincount(idx, w[:, s] * (1.0 - upper), minlength=size)[:size]
            self.hist[s] += np.bincount(idx + 1, w[:, s] * upper, minlength=size)[:size]
        self.f_min, self.f_max = min(self.f_min, float(freq.min())), max(self.f_max, float(freq.max()))
        self.weight += float(np.sum(q_weight))

    def finish(self, sigma_meV: float, imaginary_tol_meV: float = DEFAULT_UNSTABLE_THRESHOLD_MEV
               ) -> tuple[np.ndarray, np.ndarray]:
        """The broadened DOS: ``grid`` [nf] (meV, ascending, step ``step``) and ``dos`` [n_sites, nf]
        (states/meV per site; the module docstring gives the grid's ends)."""
        if not math.isfinite(self.f_min):
            raise ValueError("no modes were added")
        kernel = gaussian_kernel(sigma_meV, self.step)
        half = (len(kernel) - 1) // 2
        k_lowest, k_highest = math.floor(self.f_min / self.step), math.ceil(self.f_max / self.step)
        first = k_lowest - half  # lowest node the broadening reaches
        start = 0 if self.f_min >= -imaginary_tol_meV else first
        end = max(k_highest + 1 + half, start + 2, 2 * start - first)  # long enough to take the reflection
        self._cover(first - half, end + half)
        full = np.stack([np.convolve(row, kernel, mode="same") for row in self.hist])
        i0, i1 = start - self.lo, end - self.lo
        dos = full[:, i0 : i1 + 1].copy()
        below = full[:, first - self.lo : i0]  # reflected about the grid start: node i0 - m → i0 + m
        if below.size:
            dos[:, np.arange(below.shape[1], 0, -1)] += below
        grid = np.round((np.arange(start, end + 1)) * self.step, 10)
        return grid, dos
