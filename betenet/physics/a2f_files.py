"""Readers for a2F(w) files: Quantum ESPRESSO matdyn ``a2F.dosN`` and plain two-column text.

Both return an :class:`A2FSpectrum` with frequencies in meV; a2F itself is dimensionless, so only
the frequency axis is converted (QE writes it in Rydberg).  Any unusable file raises
:class:`betenet.errors.InputError` naming the file and one reason.

QE ``a2F.dosN`` layout (matdyn.x with ``la2F=.true.``)::

     # Eliashberg function a2F (per both spin)
     #  frequencies in Rydberg
     # DOS normalized to E in Rydberg: a2F_total, a2F(mode)
           0.000031   -0.000003                          <- omega [Ry], a2F total
         -0.00000174     -0.00000138     -0.00000006     <- a2F per mode (3*nat values,
     ...                                                     possibly wrapped over lines)
      lambda =  0.21892891254052915   Delta =  6.1286691769987087E-005

The per-mode block length is not taken from the first record on faith: every split of the first
block at a line boundary is tried, smallest first, and the first one under which every record of
the file has the same layout (a 2-value line followed by exactly that many per-mode values) and
the frequencies increase strictly is used (so a file must hold at least two frequencies).

The frequencies are printed with 6 decimals only, which makes individual grid spacings wrong by
up to ~1%; the spacing ``Delta`` on the last line is exact, so when the printed frequencies are a
uniform grid of spacing Delta rounded to the printed digits, that full-precision grid is used.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from betenet.errors import InputError
from betenet.physics.units import RY_TO_MEV

__all__ = ["A2FSpectrum", "read_qe_a2f", "read_columns_a2f", "read_a2f", "check_a2f_range"]

_LAMBDA_LINE = re.compile(r"^\s*lambda\s*=\s*(\S+)(?:\s+Delta\s*=\s*(\S+))?", re.IGNORECASE)
_SPLIT = re.compile(r"[,\s]+")
#: How many lines after the first record's header may hold its per-mode values (wrapped output).
_MAX_MODE_LINES = 2000


@dataclass
class A2FSpectrum:
    """An a2F spectrum read from a file: grid in meV, total a2F, optional per-mode a2F [n, modes]."""

    omega_meV: np.ndarray
    a2f: np.ndarray
    per_mode: np.ndarray | None
    lambda_reported: float | None
    path: str  # the file it was read from


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _read_lines(path) -> list[tuple[int, str]]:
    """(line number, stripped text) of the non-blank, non-comment lines of ``path``."""
    p = Path(path)
    if not p.exists():
        raise InputError(path, "file not found")
    if not p.is_file():
        raise InputError(path, "not a regular file")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read file ({exc.__class__.__name__}: {exc})") from exc
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s and not s.startswith("#"):
            out.append((i, s))
    if not out:
        raise InputError(path, "no data lines (file is empty or holds only '#' comments)")
    return out


def _parse_float(token: str, path, lineno: int) -> float:
    """A number as Fortran may write it ('1.0D-03' accepted); NaN/inf and junk are rejected."""
    try:
        value = float(token.replace("D", "E").replace("d", "e"))
    except ValueError:
        raise InputError(path, f"line {lineno}: cannot parse number {token!r}") from None
    if not math.isfinite(value):
        raise InputError(path, f"line {lineno}: non-finite value {token!r}")
    return value


def _parse_row(text: str, path, lineno: int) -> list[float]:
    return [_parse_float(t, path, lineno) for t in _SPLIT.split(text.strip(",; \t")) if t]


def _check_grid(omega_meV: np.ndarray, path) -> None:
    bad = np.flatnonzero(np.diff(omega_meV) <= 0)
    if bad.size:
        k = int(bad[0])
        raise InputError(
            path,
            f"frequencies are not strictly increasing "
            f"(row {k + 2}: {omega_meV[k + 1]:g} after {omega_meV[k]:g} meV)",
        )


# --------------------------------------------------------------------------------------------
# QE matdyn a2F.dosN
# --------------------------------------------------------------------------------------------
def _split_records(rows: list[tuple[int, list[float]]], n_modes: int):
    """Records (line, omega, total, modes) if each is a 2-value line + n_modes values, else None."""
    records = []
    i = 0
    while i < len(rows):
        lineno, head = rows[i]
        if len(head) != 2:
            return None
        i += 1
        modes: list[float] = []
        while len(modes) < n_modes and i < len(rows):
            modes.extend(rows[i][1])
            i += 1
        if len(modes) != n_modes:
            return None
        records.append((lineno, head[0], head[1], modes))
    return records


def _fixed_decimals(lines: list[tuple[int, str]], records) -> int | None:
    """Digits after the point of the printed frequencies, or None unless all are plain fixed-point."""
    text = dict(lines)
    decimals = set()
    for lineno, *_ in records:
        token = text[lineno].split()[0]
        if not re.fullmatch(r"[-+]?\d*\.\d+", token):
            return None
        decimals.add(len(token.split(".")[1]))
    return decimals.pop() if len(decimals) == 1 else None


def _restore_uniform_grid(
    omega_ry: np.ndarray, delta_ry: float | None, decimals: int | None
) -> np.ndarray:
    """The full-precision grid omega_0 + k*Delta when the printed frequencies are that grid rounded.

    matdyn prints the frequencies with 6 decimals (relative spacing errors ~1%) but Delta to full
    precision; the grid is restored only if every printed value lies within half a unit of its last
    printed digit of the fitted uniform grid.  Otherwise the printed values are kept.
    """
    if delta_ry is None or decimals is None or delta_ry <= 0 or omega_ry.size < 2:
        return omega_ry
    k = np.arange(omega_ry.size)
    offset = float(np.mean(omega_ry - k * delta_ry))
    grid = offset + k * delta_ry
    half_unit = 0.5 * 10.0 ** (-decimals)
    if np.max(np.abs(grid - omega_ry)) <= half_unit * (1 + 1e-6):
        return grid
    return omega_ry


def _one_line_records(rows: list[tuple[int, list[float]]], path):
    """QE 6.x layout: one record per line, 'omega a2F_total a2F_mode1 .. a2F_modeN'."""
    width = len(rows[0][1])
    for lineno, vals in rows:
        if len(vals) != width:
            raise InputError(path, f"line {lineno}: expected {width} values like the first record, got {len(vals)}")
    records = [(lineno, vals[0], vals[1], vals[2:]) for lineno, vals in rows]
    if len(records) < 2 or not all(b[1] > a[1] for a, b in zip(records, records[1:])):
        raise InputError(path, "at least two records with strictly increasing frequencies are needed")
    return records


def _wrapped_records(rows: list[tuple[int, list[float]]], path):
    """QE example layout: an 'omega a2F_total' line followed by the per-mode values over one or more lines."""
    # Candidate per-mode counts: 0 (no per-mode data) and the values after the first line summed up to
    # each following line boundary.  The smallest count under which every record has the same layout
    # and the frequencies increase strictly is used.  At least two records are required: a single
    # record swallowing the whole file would fit any layout.
    candidates = [0]
    count = 0
    for _, vals in rows[1 : 1 + _MAX_MODE_LINES]:
        count += len(vals)
        candidates.append(count)
    records = None
    for n_modes in candidates:
        records = _split_records(rows, n_modes)
        increasing = records is not None and all(b[1] > a[1] for a, b in zip(records, records[1:]))
        if increasing and len(records) >= 2:
            break
        records = None
    if records is None:
        raise InputError(
            path,
            "records do not share one layout (at least two records, each an 'omega a2F_total' line "
            "followed by the same number of per-mode values, frequencies increasing)",
        )
    return records


def read_qe_a2f(path) -> A2FSpectrum:
    """Read a QE matdyn ``a2F.dosN`` file (frequencies in Ry, converted to meV)."""
    lines = _read_lines(path)
    lambda_reported = None
    delta_ry = None
    rows: list[tuple[int, list[float]]] = []
    for lineno, text in lines:
        m = _LAMBDA_LINE.match(text)
        if m:
            if lambda_reported is not None:
                raise InputError(path, f"line {lineno}: second 'lambda =' line")
            lambda_reported = _parse_float(m.group(1), path, lineno)
            if m.group(2) is not None:
                delta_ry = _parse_float(m.group(2), path, lineno)
            continue
        if lambda_reported is not None:
            raise InputError(path, f"line {lineno}: data after the 'lambda =' line")
        rows.append((lineno, _parse_row(text, path, lineno)))
    if not rows:
        raise InputError(path, "no a2F records before the 'lambda =' line")
    if len(rows[0][1]) > 2:
        records = _one_line_records(rows, path)
    elif len(rows[0][1]) == 2:
        records = _wrapped_records(rows, path)
    else:
        raise InputError(path, f"line {rows[0][0]}: expected 'omega a2F_total [a2F per mode]', "
                               f"got {len(rows[0][1])} value(s)")

    omega_printed = np.array([r[1] for r in records])
    omega_ry = _restore_uniform_grid(omega_printed, delta_ry, _fixed_decimals(lines, records))
    omega_meV = omega_ry * RY_TO_MEV
    a2f = np.array([r[2] for r in records])
    n_modes = len(records[0][3])
    per_mode = np.array([r[3] for r in records]).reshape(len(records), n_modes) if n_modes else None
    return A2FSpectrum(omega_meV, a2f, per_mode, lambda_reported, str(path))


# --------------------------------------------------------------------------------------------
# plain columns
# --------------------------------------------------------------------------------------------
def read_columns_a2f(path) -> A2FSpectrum:
    """Read two-column text: frequency [meV], a2F; '#' comments, whitespace or comma separated."""
    data = []
    for lineno, text in _read_lines(path):
        vals = _parse_row(text, path, lineno)
        if len(vals) != 2:
            raise InputError(path, f"line {lineno}: expected 2 columns (omega_meV a2F), got {len(vals)}")
        data.append(vals)
    arr = np.array(data, dtype=np.float64)
    _check_grid(arr[:, 0], path)
    return A2FSpectrum(arr[:, 0].copy(), arr[:, 1].copy(), None, None, str(path))


# --------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------
def _looks_like_qe(path) -> bool:
    """QE a2F.dosN: named a2F.dos*, or a '#' header mentioning Rydberg, or a 'lambda =' line."""
    if re.match(r"a2F\.dos\d*$", Path(path).name, re.IGNORECASE):
        return True
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return False  # the columns reader reports the problem
    for line in text.splitlines():
        s = line.strip()
        if (s.startswith("#") and "rydberg" in s.lower()) or _LAMBDA_LINE.match(s):
            return True
    return False


def read_a2f(path, format: str = "auto") -> A2FSpectrum:
    """Read an a2F file; ``format`` is 'qe', 'columns' or 'auto' (QE if it looks like matdyn output)."""
    if format not in ("auto", "qe", "columns"):
        raise ValueError(f"unknown a2F file format {format!r}: use 'auto', 'qe' or 'columns'")
    if format == "auto":
        if not Path(path).exists():
            raise InputError(path, "file not found")
        format = "qe" if _looks_like_qe(path) else "columns"
    return read_qe_a2f(path) if format == "qe" else read_columns_a2f(path)


# --------------------------------------------------------------------------------------------
# range
# --------------------------------------------------------------------------------------------
#: Largest |frequency| (meV) and |a2F| accepted: far beyond any phonon spectrum (hydrogen modes
#: reach ~500 meV) and any coupling, small enough that the moments and the Eliashberg solver
#: stay finite.
MAX_FREQUENCY_MEV = 1.0e5
MAX_A2F = 1.0e4


def check_a2f_range(spec: A2FSpectrum) -> None:
    """Raise ``InputError`` naming the file when frequencies or a2F values lie outside
    ``|w| <= MAX_FREQUENCY_MEV`` / ``|a2F| <= MAX_A2F`` (warnings about rows the integrals leave out
    come from :func:`betenet.physics.properties.spectrum_warnings`)."""
    w, a = np.asarray(spec.omega_meV, dtype=float), np.asarray(spec.a2f, dtype=float)
    if np.max(np.abs(w)) > MAX_FREQUENCY_MEV:
        raise InputError(spec.path, f"frequencies span {w.min():.3g} to {w.max():.3g} meV, outside the range "
                                      f"betenet integrates (|w| <= {MAX_FREQUENCY_MEV:.0e} meV); check the unit")
    if np.max(np.abs(a)) > MAX_A2F:
        raise InputError(spec.path, f"a2F values span {a.min():.3g} to {a.max():.3g}, outside the range betenet "
                                      f"integrates (|a2F| <= {MAX_A2F:.0e})")
