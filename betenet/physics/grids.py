"""Standardized, commensurate k- and q-point grids from point densities (paper Methods A).

The number of subdivisions along reciprocal vector b_i is ``n_i = max(1, ceil(density * |b_i|))``,
with |b_i| in 1/Å and *without* the 2π factor (so for an orthogonal cell ``|b_i| = 1/a_i``).
Electron-phonon calculations need every k-grid subdivision to be a multiple of the matching q-grid
subdivision. Along each direction independently, when k_i is not a multiple of q_i, k_i + 1 is
tried, then k_i - 1 (kept ≥ 1); if neither is commensurate, q_i is reduced by one and the search
restarts from the original k_i. The paper defaults are 40 Å⁻¹ for k and 15 Å⁻¹ for q.

Because three consecutive integers always contain a multiple of 3 and two contain an even one,
the search never takes q_i below min(q_target_i, 3) and never needs q_i < 1 for valid inputs;
the paper's "q-grid would fall below 1" error therefore surfaces only as a rejection of invalid
subdivisions (k < 1 or q < 1), which :func:`commensurate_pair` raises as :class:`InputError`.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from betenet.errors import InputError

#: Paper defaults (Methods A), in points per Å⁻¹ (reciprocal lengths without 2π).
K_DENSITY_DEFAULT = 40.0
Q_DENSITY_DEFAULT = 15.0

# density * |b| that lands on an integer up to float noise (e.g. 40 * 0.25000000000000006)
# must not be rounded up to the next subdivision.
_CEIL_RTOL = 1e-9


def _label(obj) -> str:
    """Name used in error messages: the reduced formula, or the object kind."""
    composition = getattr(obj, "composition", None)  # pymatgen Structure
    if composition is not None:
        return composition.reduced_formula
    if hasattr(obj, "get_chemical_formula"):  # ASE Atoms
        return obj.get_chemical_formula() or "empty Atoms"
    return type(obj).__name__


def reciprocal_lengths(obj) -> np.ndarray:
    """|b_1|, |b_2|, |b_3| in 1/Å, without 2π, of a pymatgen Structure/Lattice or ASE Atoms/Cell
    (files are read by :func:`betenet.data.structures.load_structure`).

    Raises :class:`InputError` for a non-periodic ASE object or a degenerate cell.
    """
    label = _label(obj)

    lattice = getattr(obj, "lattice", obj)  # Structure -> Lattice
    if hasattr(lattice, "reciprocal_lattice_crystallographic"):
        matrix = np.asarray(lattice.matrix, dtype=float)
    elif hasattr(obj, "cell"):  # ASE Atoms
        matrix = np.asarray(obj.cell[:], dtype=float)
    elif hasattr(obj, "reciprocal") and hasattr(obj, "volume"):  # ASE Cell
        matrix = np.asarray(obj[:], dtype=float)
    else:
        raise InputError(label, "expected a pymatgen Structure/Lattice or ASE Atoms/Cell")

    if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
        raise InputError(label, f"lattice must be a finite 3x3 matrix, got {matrix.tolist()}")
    lengths = np.linalg.norm(matrix, axis=1)
    volume = abs(np.linalg.det(matrix))
    if np.any(lengths == 0.0) or volume <= 1e-8 * np.prod(lengths):
        raise InputError(label, "lattice is degenerate or not fully periodic (zero cell volume)")

    if hasattr(lattice, "reciprocal_lattice_crystallographic"):
        recip = np.asarray(lattice.reciprocal_lattice_crystallographic.matrix, dtype=float)
    else:
        from ase.cell import Cell

        recip = np.asarray(Cell(matrix).reciprocal(), dtype=float)  # rows b_i, no 2π
    return np.linalg.norm(recip, axis=1)


def _check_density(density, label: str) -> float:
    """The density as a float, or ``InputError(label, ...)`` unless it is a positive finite number."""
    valid = isinstance(density, Real) and not isinstance(density, bool)
    if not (valid and math.isfinite(density) and density > 0):
        raise InputError(label, f"point density must be a positive finite number of points per 1/Å, got {density!r}")
    return float(density)


def _subdivisions(lengths: np.ndarray, density: float) -> tuple[int, int, int]:
    """max(1, ceil(density * |b_i|)) per direction, ignoring float noise just above an integer."""
    out = []
    for length in lengths:
        x = density * float(length)
        out.append(max(1, math.ceil(x - _CEIL_RTOL * max(1.0, x))))
    return tuple(out)


def target_grid(lattice, density: float) -> tuple[int, int, int]:
    """Subdivisions n_i = max(1, ceil(density * |b_i|)), |b_i| in 1/Å without 2π.

    ``lattice`` is a pymatgen Structure or Lattice, an ASE Atoms or Cell, or a structure file.
    """
    lengths = reciprocal_lengths(lattice)
    return _subdivisions(lengths, _check_density(density, _label(lattice)))


def commensurate_pair(k: int, q: int, label: str = "grid") -> tuple[int, int]:
    """Commensurate (k, q) subdivisions along one direction, following the paper's search order.

    Tries k, k + 1, k - 1 (only if ≥ 1) against q, then the same k candidates against q - 1,
    q - 2, ... Raises ``InputError(label, reason)`` when k or q is not an integer ≥ 1, i.e. when
    q is already below 1 (q = 1 divides every k, so the search itself always ends by q = 1).
    """
    for name, value in (("k", k), ("q", q)):
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise InputError(label, f"{name} subdivisions must be an integer, got {value!r}")
    k, q = int(k), int(q)
    if k < 1:
        raise InputError(label, f"k subdivisions must be >= 1, got {k}")
    if q < 1:
        raise InputError(label, f"q subdivisions fell below 1 (q = {q}); no commensurate q-grid exists")
    for q_try in range(q, 1, -1):
        for k_try in (k, k + 1, k - 1):
            if k_try >= 1 and k_try % q_try == 0:
                return k_try, q_try
    return k, 1  # q = 1 is commensurate with any k


def _grids(lengths: np.ndarray, k_density, q_density, label: str):
    """(k_target, q_target, k_grid, q_grid) from reciprocal lengths; errors are labelled ``label``."""
    k_target = _subdivisions(lengths, _check_density(k_density, label))
    q_target = _subdivisions(lengths, _check_density(q_density, label))
    pairs = [
        commensurate_pair(k, q, f"{label} (direction {i + 1})")
        for i, (k, q) in enumerate(zip(k_target, q_target))
    ]
    k_grid = tuple(k for k, _ in pairs)
    q_grid = tuple(q for _, q in pairs)
    return k_target, q_target, k_grid, q_grid


def commensurate_kq_grids(
    structure,
    k_density: float = K_DENSITY_DEFAULT,
    q_density: float = Q_DENSITY_DEFAULT,
    name: str | None = None,
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Standardized commensurate (k_grid, q_grid) for a structure from k- and q-point densities (1/Å).

    ``structure`` is a pymatgen Structure/Lattice or an ASE Atoms/Cell; ``name`` (default: the
    reduced formula) labels any :class:`InputError`.
    """
    label = name if name is not None else _label(structure)
    _, _, k_grid, q_grid = _grids(reciprocal_lengths(structure), k_density, q_density, label)
    return k_grid, q_grid


def kq_grid_report(
    structure,
    k_density: float = K_DENSITY_DEFAULT,
    q_density: float = Q_DENSITY_DEFAULT,
    name: str | None = None,
) -> dict:
    """Targets and commensurate k/q grids of one pymatgen Structure, as plain lists for the CLI.

    Returns ``dict(k_grid, q_grid, k_target, q_target, formula)``; errors name ``name`` (default:
    the reduced formula).
    """
    lengths = reciprocal_lengths(structure)
    label = name if name is not None else _label(structure)
    k_target, q_target, k_grid, q_grid = _grids(lengths, k_density, q_density, label)
    return dict(
        k_grid=list(k_grid),
        q_grid=list(q_grid),
        k_target=list(k_target),
        q_target=list(q_target),
        formula=structure.composition.reduced_formula,
    )
