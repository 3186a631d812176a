"""Turn a raw spectrum (a2F or a site-projected phonon DOS, meV) into the binned network target.

One function serves targets and CPD/FPD node attributes alike. The binned spectrum is a set of point
samples of a smoothed spectrum at the bin centres of a :class:`~betenet.physics.units.BinGrid`
(default the paper's 51 centres 0.25 + 2k meV). Two recipes (config ``data.spectrum.recipe``):

``physical`` (default)
    1. linear interpolation onto the grid's 0.1 meV fine grid, 0 outside the input's range;
    2. below the first fine point the spectrum is continued as an odd function of ω,
       a2F(−ω) = −a2F(ω), so the smoothed curve passes through 0 at ω = 0 (a2F and the phonon DOS
       vanish there: acoustic phonons);
    3. Savitzky–Golay smoothing, window 101 points (10 meV), polynomial order 3 (``mode="interp"``
       at the top end);
    4. linear interpolation onto the bin centres;
    5. the first bin follows the ω² law of acoustic phonons from the second:
       b_0 = b_1 (c_0 / c_1)², because a 10 meV window cannot resolve the rise from 0 at 0.25 meV
       (unresolved, the smoothing's overshoot would land in the bin with the largest 1/ω weight);
    6. negative values clipped to 0.

``paper``
    The published recipe, bit for bit: interpolation holding the first/last input value outside
    the input's range (``np.interp`` without ``left``/``right``, as the release called it),
    Savitzky–Golay with ``mode="interp"`` (a cubic extrapolated to the lowest fine points),
    interpolation onto the centres, negatives clipped. Use it to reproduce the release's targets.

The moments of a binned spectrum use the rectangle rule of ``betenet.physics.eliashberg`` with the
first cell [0, 1.25] meV (its physical extent from 0). Weight of a raw spectrum above the window's
top (the fine grid's last point, 100.95 meV for the paper's grid) is not represented:
:func:`lambda_above_window` measures the share of λ lost, and the data module warns about it.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import savgol_filter

from betenet.errors import InputError
from betenet.physics.properties import lambda_weights
from betenet.physics.units import FINE_STEP_MEV, PAPER_GRID, BinGrid

#: Savitzky–Golay window in fine-grid points (101 points = 10 meV) and polynomial order.
SAVGOL_WINDOW = 101
SAVGOL_ORDER = 3
#: The processing recipes (module docstring).
RECIPES = ("physical", "paper")
#: Fine points continued below the first one by the odd reflection (more than half a window).
_ODD_POINTS = SAVGOL_WINDOW // 2 + 10


def _clean_frequencies(freq, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (sorted finite 1-D frequencies, sort order); reject what cannot be a grid."""
    f = np.asarray(freq, dtype=float)
    if f.ndim != 1:
        raise InputError(name, f"frequencies must be 1-D, got shape {f.shape}")
    if f.size < 2:
        raise InputError(name, f"needs at least 2 frequency points, got {f.size}")
    if not np.all(np.isfinite(f)):
        raise InputError(name, "frequencies contain NaN or inf")
    order = np.argsort(f, kind="stable")
    fs = f[order]
    dup = np.flatnonzero(np.diff(fs) == 0)
    if dup.size:
        raise InputError(name, f"repeated frequency {fs[dup[0]]:g} meV (frequencies must be unique)")
    return fs, order


def _check_recipe(recipe: str) -> None:
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")


def _fine_rows(fs: np.ndarray, rows: np.ndarray, grid: BinGrid, recipe: str) -> np.ndarray:
    """Rows of values on the fine grid; for ``physical`` preceded by the odd continuation below 0."""
    fine = grid.fine
    if recipe == "paper":
        return np.stack([np.interp(fine, fs, r) for r in rows])
    ext = fine[0] + FINE_STEP_MEV * np.arange(-_ODD_POINTS, fine.size)
    sign = np.where(ext > 0, 1.0, -1.0)
    return np.stack([sign * np.interp(np.abs(ext), fs, r, left=0.0, right=0.0) for r in rows])


def _smooth_and_bin(rows: np.ndarray, grid: BinGrid, recipe: str) -> np.ndarray:
    """Savitzky–Golay along the last axis, sample at the bin centres, first-bin law, clip at 0."""
    smooth = savgol_filter(rows, SAVGOL_WINDOW, SAVGOL_ORDER, mode="interp", axis=-1)
    smooth = smooth[:, -grid.fine.size:]
    centres = grid.centres
    binned = np.stack([np.interp(centres, grid.fine, row) for row in smooth])
    if recipe == "physical":
        binned[:, 0] = binned[:, 1] * (centres[0] / centres[1]) ** 2
    return np.clip(binned, 0.0, None)


def bin_spectrum(freq_meV, values, *, name: str = "spectrum", grid: BinGrid = PAPER_GRID,
                 recipe: str = "physical") -> np.ndarray:
    """Process one spectrum sampled at ``freq_meV`` (meV) into ``grid.n_bins`` non-negative bins.

    Frequencies may come in any order (they are sorted together with the values) but must be
    unique and finite; at least 2 points. Units of ``values`` are kept (a2F is dimensionless,
    a DOS keeps its states/meV). Raises ``InputError(name, reason)`` on bad input.
    """
    _check_recipe(recipe)
    fs, order = _clean_frequencies(freq_meV, name)
    v = np.asarray(values, dtype=float)
    if v.shape != (fs.size,):
        raise InputError(name, f"values have shape {v.shape}, frequencies have {fs.size} points")
    if not np.all(np.isfinite(v)):
        raise InputError(name, "values contain NaN or inf")
    return _smooth_and_bin(_fine_rows(fs, v[order][None], grid, recipe), grid, recipe)[0]


def bin_site_dos(freq_meV, site_dos, *, name: str = "site_dos", grid: BinGrid = PAPER_GRID,
                 recipe: str = "physical") -> np.ndarray:
    """Process a site-projected DOS ``[n_sites, n_freq]`` on a shared grid into ``[n_sites, n_bins]``.

    Each site goes through exactly the steps of :func:`bin_spectrum`.
    """
    _check_recipe(recipe)
    fs, order = _clean_frequencies(freq_meV, name)
    d = np.asarray(site_dos, dtype=float)
    if d.ndim != 2 or d.shape[1] != fs.size or d.shape[0] == 0:
        raise InputError(name, f"site DOS must have shape [n_sites>0, {fs.size}], got {d.shape}")
    bad = np.flatnonzero(~np.all(np.isfinite(d), axis=1))
    if bad.size:
        raise InputError(name, f"site {bad[0]} contains NaN or inf")
    return _smooth_and_bin(_fine_rows(fs, d[:, order], grid, recipe), grid, recipe)


def lambda_above_window(freq_meV, a2f, grid: BinGrid = PAPER_GRID) -> float:
    """Share of λ of the raw spectrum that lies above the window's top (``grid.top_meV``), which
    the binned representation drops; 0.0 when λ of the raw spectrum is not positive."""
    f = np.asarray(freq_meV, dtype=float)
    order = np.argsort(f, kind="stable")
    f, a = f[order], np.asarray(a2f, dtype=float)[order]
    contrib = lambda_weights(f) * a
    total = float(contrib.sum())
    if total <= 0:
        return 0.0
    return float(contrib[f > grid.top_meV].sum()) / total


def validate_binned(a2f, name: str, *, rows: int | None = None, tol: float = 0.0,
                    n_bins: int = PAPER_GRID.n_bins) -> np.ndarray:
    """Check an already binned spectrum and return it as a float array.

    Shape must be ``(n_bins,)`` (``rows=None``) or ``(rows, n_bins)``; values finite and ≥ ``-tol``.
    Raises ``InputError(name, reason)`` otherwise.
    """
    a = np.asarray(a2f, dtype=float)
    want = (n_bins,) if rows is None else (rows, n_bins)
    if a.shape != want:
        raise InputError(name, f"expected shape {want} ({n_bins} bins), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(name, "binned spectrum contains NaN or inf")
    if a.size and a.min() < -tol:
        k = np.unravel_index(int(np.argmin(a)), a.shape)
        raise InputError(name, f"negative value {a[k]:.3g} at index {tuple(int(i) for i in k)} (tolerance {tol:g})")
    return a
