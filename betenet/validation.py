"""Numeric options checked at one boundary shared by the command line and the Python API.

Each helper returns the value as the type it stands for, or raises
:class:`~betenet.errors.InputError` naming the setting as the caller spells it (``--batch-size``
on the command line, ``batch_size`` in Python, ``data.test_fraction`` in a training config) with
the range it must lie in. The bounds are listed in README.md ("Errors and limits").
"""

from __future__ import annotations

import math
import numbers

from betenet.errors import InputError

__all__ = ["MU_STAR_MAX", "SEED_MAX", "batch_size", "mu_star", "seed", "open_fraction", "positive_number",
           "non_negative_number", "positive_integer"]

#: Largest accepted μ*: measured values lie around 0.08–0.20, and above 1/ln 10 ≈ 0.43 the
#: Eliashberg solver cannot rescale μ* to its Matsubara cutoff (10 ω_ph).
MU_STAR_MAX = 0.4
#: Largest seed numpy's and Lightning's generators accept (2**32 - 1).
SEED_MAX = 2**32 - 1


def _integer(value, setting: str) -> int:
    """``value`` as an int when it is a whole number (not a bool), else ``InputError``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
        return int(value)
    raise InputError(setting, f"must be a whole number, got {value!r}")


def _number(value, setting: str) -> float:
    """``value`` as a finite float, else ``InputError``."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value)):
        return float(value)
    raise InputError(setting, f"must be a finite number, got {value!r}")


def batch_size(value, setting: str = "batch_size") -> int:
    """Structures per forward pass: a whole number ≥ 1."""
    n = _integer(value, setting)
    if n < 1:
        raise InputError(setting, f"must be at least 1 (structures per batch), got {n}")
    return n


def mu_star(value, setting: str = "mu_star") -> float:
    """The Coulomb pseudopotential μ*: in [0, :data:`MU_STAR_MAX`]."""
    x = _number(value, setting)
    if not 0.0 <= x <= MU_STAR_MAX:
        raise InputError(setting, f"must be in [0, {MU_STAR_MAX:g}] (typical 0.08 to 0.20), got {x:g}")
    return x


def seed(value, setting: str = "seed") -> int:
    """A random seed: a whole number in [0, :data:`SEED_MAX`]."""
    n = _integer(value, setting)
    if not 0 <= n <= SEED_MAX:
        raise InputError(setting, f"must be in [0, {SEED_MAX}], got {n}")
    return n


def open_fraction(value, setting: str) -> float:
    """A share strictly between 0 and 1 (e.g. the test fraction of a split)."""
    x = _number(value, setting)
    if not 0.0 < x < 1.0:
        raise InputError(setting, f"must be between 0 and 1 (exclusive), got {x:g}")
    return x


def positive_number(value, setting: str) -> float:
    """A finite number above 0 (e.g. an upper bound of a label)."""
    x = _number(value, setting)
    if x <= 0:
        raise InputError(setting, f"must be above 0, got {x:g}")
    return x


def non_negative_number(value, setting: str) -> float:
    """A finite number of at least 0 (e.g. a tolerance or a threshold)."""
    x = _number(value, setting)
    if x < 0:
        raise InputError(setting, f"must be at least 0, got {x:g}")
    return x


def positive_integer(value, setting: str) -> int:
    """A whole number of at least 1 (e.g. a count of processes or smearings)."""
    n = _integer(value, setting)
    if n < 1:
        raise InputError(setting, f"must be at least 1, got {n}")
    return n
