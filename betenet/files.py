"""Helpers for the files betenet lists and writes, shared by every layer: the natural order of names,
numpy / OmegaConf values as plain JSON types, files written atomically (:func:`atomic_path`), JSON
among them, and numbers as CSV cells."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from pathlib import Path

import numpy as np

__all__ = ["natural_key", "to_jsonable", "atomic_path", "write_json", "csv_cell", "CSV_SIGNIFICANT_DIGITS", "STDOUT",
           "cache_root"]


def cache_root() -> Path:
    """Where betenet caches what it computes (demo set, graphs, phonons, pretrained features): ``$BETENET_CACHE``
    if set, else ``~/.cache/betenet``. Each kind has its sub-folder, named where it is cached."""
    env = os.environ.get("BETENET_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "betenet"

#: An output path that means stdout (``--out -``).
STDOUT = "-"
#: Significant digits of every number in the prediction, ranking and evaluation CSVs betenet writes.
CSV_SIGNIFICANT_DIGITS = 6


def natural_key(text: str) -> list:
    """Sort key of the natural order: digit runs compare as numbers ("2" before "10")."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(text)) if t]


def to_jsonable(obj, nan_as_null: bool = False):
    """``obj`` in built-in JSON types: OmegaConf containers resolved, mappings with string keys,
    tuples and numpy arrays as lists, numpy scalars as Python numbers, paths as strings.
    ``nan_as_null``: NaN and infinities become None (strict JSON)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(obj, (DictConfig, ListConfig)):
        obj = OmegaConf.to_container(obj, resolve=True)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, nan_as_null) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        if not nan_as_null or (obj.dtype.kind == "f" and np.isfinite(obj).all()):
            return obj.tolist()  # nothing to replace: Python numbers already
        obj = obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, nan_as_null) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if nan_as_null and isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


@contextlib.contextmanager
def atomic_path(path):
    """Write ``path`` through a temporary file beside it: yields the temporary path (``.<name>.tmp<pid>``),
    renamed onto ``path`` when the block ends, removed if it raises; a reader never sees half a file.
    Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path, obj, indent: int | None = None, nan_as_null: bool = False) -> Path:
    """Write ``obj`` (:func:`to_jsonable`) to ``path`` atomically (:func:`atomic_path`); parent folders are
    created. ``nan_as_null``: strict JSON, NaN as null."""
    text = json.dumps(to_jsonable(obj, nan_as_null), indent=indent, allow_nan=not nan_as_null) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def csv_cell(x) -> str:
    """One CSV cell: a number at :data:`CSV_SIGNIFICANT_DIGITS` significant digits (``1.42392e-113``,
    ``0.3``), empty for None, NaN or infinity; text as given. Also pandas' ``to_csv(float_format=csv_cell)``."""
    if x is None or isinstance(x, str):
        return x or ""
    x = float(x)
    return f"{x:.{CSV_SIGNIFICANT_DIGITS}g}" if math.isfinite(x) else ""
