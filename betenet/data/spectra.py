"""Turn a raw spectrum (a2F or a site-projected phonon DOS, meV) into the 51-bin network target.

One function serves targets and CPD/FPD node attributes alike (paper Methods, DESIGN.md):

1. linear interpolation onto the fine grid ``FINE_GRID_MEV`` (0.1 meV step from 0.25 meV);
2. Savitzky–Golay smoothing, window 101 points (10 meV), polynomial order 3, ``mode="interp"``;
3. linear interpolation onto the bin centres ``BIN_CENTRES_MEV`` (0.25 + 2k meV, k = 0..50);
4. negative values clipped to 0.

Outside the frequency range of the input the spectrum is taken as 0 (``outside="zero"``, the
physical choice: no states beyond the computed range). The authors' release called
``np.interp`` without ``left``/``right`` and so held the first/last input value constant outside
the range; ``outside="edge"`` reproduces that exactly.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import savgol_filter

from betenet.errors import InputError
from betenet.physics.units import BIN_CENTRES_MEV, N_BINS

#: Fine grid step (meV): the 0.1 meV resolution of the DFT a2F files.
FINE_STEP_MEV = 0.1
#: Fine grid 0.25, 0.35, ..., 100.95 meV: ``np.arange(0.25, 101.0, 0.1)`` exactly as the release
#: built it (values equal start + k*step to within 3e-14 meV). (101 - 0.25)/0.1 = 1007.5 is far
#: from an integer, so float rounding cannot add or drop the end point: always 1008 points and the
#: grid stops at 100.95 meV, past the last bin centre (100.25 meV).
FINE_GRID_MEV = np.arange(0.25, 101.0, FINE_STEP_MEV)
assert FINE_GRID_MEV.size == 1008 and FINE_GRID_MEV[-1] > BIN_CENTRES_MEV[-1]
#: Savitzky–Golay window in fine-grid points (101 points = 10 meV) and polynomial order.
SAVGOL_WINDOW = 101
SAVGOL_ORDER = 3

_OUTSIDE = ("zero", "edge")


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


def _smooth_and_bin(fine: np.ndarray) -> np.ndarray:
    """Savitzky–Golay along the last axis, interpolate onto the bin centres, clip at 0."""
    smooth = savgol_filter(fine, SAVGOL_WINDOW, SAVGOL_ORDER, mode="interp", axis=-1)
    if smooth.ndim == 1:
        binned = np.interp(BIN_CENTRES_MEV, FINE_GRID_MEV, smooth)
    else:
        binned = np.stack([np.interp(BIN_CENTRES_MEV, FINE_GRID_MEV, row) for row in smooth])
    return np.clip(binned, 0.0, None)


def _to_fine(fs: np.ndarray, vs: np.ndarray, outside: str) -> np.ndarray:
    if outside == "zero":
        return np.interp(FINE_GRID_MEV, fs, vs, left=0.0, right=0.0)
    return np.interp(FINE_GRID_MEV, fs, vs)


def bin_spectrum(freq_meV, values, *, name: str = "spectrum", outside: str = "zero") -> np.ndarray:
    """Process one spectrum sampled at ``freq_meV`` (meV) into 51 non-negative bins.

    Frequencies may come in any order (they are sorted together with the values) but must be
    unique and finite; at least 2 points. Units of ``values`` are kept (a2F is dimensionless,
    a DOS keeps its states/meV). Raises ``InputError(name, reason)`` on bad input.
    """
    if outside not in _OUTSIDE:
        raise ValueError(f"outside must be one of {_OUTSIDE}, got {outside!r}")
    fs, order = _clean_frequencies(freq_meV, name)
    v = np.asarray(values, dtype=float)
    if v.shape != (fs.size,):
        raise InputError(name, f"values have shape {v.shape}, frequencies have {fs.size} points")
    if not np.all(np.isfinite(v)):
        raise InputError(name, "values contain NaN or inf")
    return _smooth_and_bin(_to_fine(fs, v[order], outside))


def bin_site_dos(freq_meV, site_dos, *, name: str = "site_dos", outside: str = "zero") -> np.ndarray:
    """Process a site-projected DOS ``[n_sites, n_freq]`` on a shared grid into ``[n_sites, 51]``.

    Each site goes through exactly the steps of :func:`bin_spectrum`.
    """
    if outside not in _OUTSIDE:
        raise ValueError(f"outside must be one of {_OUTSIDE}, got {outside!r}")
    fs, order = _clean_frequencies(freq_meV, name)
    d = np.asarray(site_dos, dtype=float)
    if d.ndim != 2 or d.shape[1] != fs.size or d.shape[0] == 0:
        raise InputError(name, f"site DOS must have shape [n_sites>0, {fs.size}], got {d.shape}")
    bad = np.flatnonzero(~np.all(np.isfinite(d), axis=1))
    if bad.size:
        raise InputError(name, f"site {bad[0]} contains NaN or inf")
    fine = np.stack([_to_fine(fs, row[order], outside) for row in d])
    return _smooth_and_bin(fine)


def validate_binned(a2f, name: str, *, rows: int | None = None, tol: float = 0.0) -> np.ndarray:
    """Check an already binned spectrum and return it as a float array.

    Shape must be ``(51,)`` (``rows=None``) or ``(rows, 51)``; values finite and ≥ ``-tol``.
    Raises ``InputError(name, reason)`` otherwise.
    """
    a = np.asarray(a2f, dtype=float)
    want = (N_BINS,) if rows is None else (rows, N_BINS)
    if a.shape != want:
        raise InputError(name, f"expected shape {want} ({N_BINS} bins), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(name, "binned spectrum contains NaN or inf")
    if a.size and a.min() < -tol:
        k = np.unravel_index(int(np.argmin(a)), a.shape)
        raise InputError(name, f"negative value {a[k]:.3g} at index {tuple(int(i) for i in k)} (tolerance {tol:g})")
    return a
