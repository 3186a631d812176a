"""Types shared by every dataset source (one :class:`Entry` per material, one :class:`SourceData`
per source), the checks that turn raw spectra and labels into a valid entry, and the source
fingerprint used as a cache key.

Spectra are kept raw here (any frequency grid, meV); binning onto the 51 a2F bins happens later in
``betenet.data.spectra``. A check that fails raises :class:`~betenet.errors.InputError` naming the
entry, so a source can put the entry in ``SourceData.rejected`` and carry on with the rest.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from betenet import validation
from betenet.data.plausibility import check_spectrum_values
from betenet.data.structures import structure_hash
from betenet.errors import InputError
from betenet.physics.properties import PROPERTIES, lambda_weights

#: Scalar labels a source may give (missing = absent, never invented): the physical properties.
LABEL_KEYS = PROPERTIES
#: Scalar per-entry values that are not training labels (kept in ``Entry.extra``).
EXTRA_SCALAR_KEYS = ("min_phonon_freq_meV",)
#: Spectra as (frequency field, values field, values are one row per site).
SPECTRUM_FIELDS = (
    ("a2f_freq_meV", "a2f", False),
    ("phdos_coarse_freq_meV", "phdos_coarse_site", True),
    ("phdos_fine_freq_meV", "phdos_fine_site", True),
)
SPECTRUM_KEYS = tuple(k for f, v, _ in SPECTRUM_FIELDS for k in (f, v))
#: A labels row may record which structure its spectra were computed for (see :func:`check_recorded_hash`).
IDENTITY_KEYS = ("structure_hash",)
#: Upper bounds of the scalar labels (``data.label_bounds``; K, dimensionless): an entry above one is
#: rejected, since a typo or a unit slip would otherwise train (one Tc of 1e9 K gives a loss of 1e9).
#: Raise a bound for data beyond it, or set it to null to lift it.
LABEL_BOUNDS = {"tc_K": 300.0, "lambda": 10.0, "omega_log_K": 5000.0, "omega_2_K": 5000.0}


@dataclass
class Entry:
    """One material: its structure, raw spectra (meV grids) and whatever labels the source gives."""

    id: str
    structure: Structure
    formula: str
    a2f_freq_meV: np.ndarray | None = None
    a2f: np.ndarray | None = None
    phdos_coarse_freq_meV: np.ndarray | None = None
    phdos_coarse_site: np.ndarray | None = None  # [n_sites, n_freq]
    phdos_fine_freq_meV: np.ndarray | None = None
    phdos_fine_site: np.ndarray | None = None  # [n_sites, n_freq]
    labels: dict[str, float] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@dataclass
class SourceData:
    """What a source yields: usable entries, the split it prescribes (if any), the entries it could
    not use with the reason, and free-form metadata (source path, counts, ``metadata.json``)."""

    entries: list[Entry]
    splits: dict[str, list[str]] | None
    rejected: list[tuple[str, str]]
    metadata: dict
    bootstrap_dir: Path | None = None


def fingerprint(root: str | Path) -> str:
    """SHA-256 over the relative names and the contents of every file under ``root`` (or of ``root``
    itself when it is a file): changes whenever a source file is added, removed, renamed or edited,
    and stays the same when the dataset is copied or moved (modification times do not count, so
    ``cp -r`` or an rsync to cluster scratch keeps the members that were trained on it)."""
    root = Path(root)
    if not root.exists():
        raise InputError(root, "does not exist")
    h = hashlib.sha256()
    for rel, p in _walk_files(root):
        content = hashlib.sha256()
        with open(p, "rb") as fh:  # follows symbolic links: a linked file counts with its target's content
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                content.update(chunk)
        h.update(f"{rel}\0{content.hexdigest()}\n".encode())
    return h.hexdigest()


def _walk_files(root: Path) -> list[tuple[str, Path]]:
    """(relative name, path) of every file under ``root``, sorted, following linked folders
    (each real folder visited once, so link cycles end)."""
    if root.is_file():
        return [(root.name, root)]
    out, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_file():
                out.append((p.relative_to(root).as_posix(), p))
    return sorted(out)


def _float_array(entry_id: str, name: str, value, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        shape = "a list of per-site lists of equal length" if ndim == 2 else "a list of numbers"
        raise InputError(entry_id, f"{name}: expected {shape}") from None
    if arr.ndim != ndim:
        raise InputError(entry_id, f"{name}: expected {ndim}-D values, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(entry_id, f"{name}: empty")
    if not np.all(np.isfinite(arr)):
        raise InputError(entry_id, f"{name}: contains NaN or infinite values")
    return arr


def check_spectrum(
    entry_id: str,
    freq_name: str,
    freq,
    values_name: str,
    values,
    per_site: bool = False,
    n_sites: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one spectrum and return ``(freq, values)`` as float arrays.

    ``freq``: 1-D, finite, ≥ 2 distinct points (meV); any order, returned sorted with the values.
    ``values``: finite; 1-D of the same length, or with ``per_site`` ``[n_rows, len(freq)]`` where
    ``n_rows`` must equal ``n_sites`` when given (one row per site of the structure). Negative
    values are allowed (they are clipped when binned).
    """
    f = _float_array(entry_id, freq_name, freq, 1)
    if f.size < 2:
        raise InputError(entry_id, f"{freq_name}: needs at least 2 frequency points, got {f.size}")
    order = np.argsort(f, kind="stable")
    f = f[order]
    repeated = np.flatnonzero(np.diff(f) == 0)
    if repeated.size:
        raise InputError(entry_id, f"{freq_name}: frequency {f[repeated[0]]:g} meV appears twice")
    v = _float_array(entry_id, values_name, values, 2 if per_site else 1)
    if n_sites is not None and v.shape[0] != n_sites:
        raise InputError(
            entry_id, f"{values_name}: {v.shape[0]} site rows but the structure has {n_sites} sites"
        )
    if v.shape[-1] != f.size:
        raise InputError(
            entry_id, f"{values_name}: {v.shape[-1]} values per spectrum but {freq_name} has {f.size}"
        )
    return f, v[..., order]


def check_scalar(entry_id: str, name: str, value) -> float | None:
    """A scalar label as ``float``; ``None``/NaN (an empty cell) means absent and gives ``None``.
    Physical bounds: ``lambda ≥ 0``, ``tc_K ≥ 0``, ``omega_log_K > 0``, ``omega_2_K > 0``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise InputError(entry_id, f"{name}: expected a number, got {value!r}")
    try:
        x = float(value)
    except ValueError:
        raise InputError(entry_id, f"{name}: expected a number, got {value!r}") from None
    if math.isnan(x):
        return None
    if math.isinf(x):
        raise InputError(entry_id, f"{name}: infinite")
    if name in ("lambda", "tc_K") and x < 0:
        raise InputError(entry_id, f"{name}: must be ≥ 0, got {x}")
    if name in ("omega_log_K", "omega_2_K") and x <= 0:
        raise InputError(entry_id, f"{name}: must be > 0, got {x}")
    return x


def label_bounds(bounds=None, setting: str = "label_bounds") -> dict[str, float | None]:
    """:data:`LABEL_BOUNDS` with ``bounds`` (label → upper bound, None: no bound) over them;
    ``InputError`` naming ``setting`` for an unknown label or a bound that is not a number above 0."""
    out = dict(LABEL_BOUNDS)
    for key, bound in dict(bounds or {}).items():
        if key not in LABEL_BOUNDS:
            raise InputError(f"{setting}.{key}", f"not a label; bounds exist for {', '.join(LABEL_BOUNDS)}")
        out[key] = None if bound is None else validation.positive_number(bound, f"{setting}.{key}")
    return out


def beyond_bounds(entry: Entry, bounds: dict[str, float | None], setting: str = "label_bounds") -> str | None:
    """Why ``entry`` is rejected: its first label above its bound in ``bounds`` (see
    :func:`label_bounds`), naming the setting that raises it; None when every label is within. An entry
    with an a2F but no ``lambda`` label has its λ bounded all the same (the a2F's, as given), since that
    is the λ it trains to (an a2F scaled by 1e6 is a λ of millions)."""
    for key, bound in bounds.items():
        value, origin = entry.labels.get(key), ""
        if key == "lambda" and value is None and entry.a2f is not None:
            value, origin = a2f_lambda(entry), " (of its a2F)"
        if bound is not None and value is not None and value > bound:
            return f"{key} {value:g}{origin} above the bound {bound:g} (raise {setting}.{key} if it is real)"
    return None


def a2f_lambda(entry: Entry) -> float:
    """λ = 2 ∫ a2F(ω)/ω dω of an entry's raw a2F as given (over ω > 0)."""
    return float(lambda_weights(entry.a2f_freq_meV) @ entry.a2f)


def check_recorded_hash(entry_id: str, structure: Structure, recorded) -> None:
    """Refuse a labels row whose recorded ``structure_hash`` is not ``structure``'s: its spectra were
    computed for another structure (a labels file of another dataset whose ids collide with these)."""
    if recorded is None or str(recorded).strip() == "":
        return
    own = structure_hash(structure)
    if str(recorded).strip().lower() != own:
        raise InputError(entry_id, f"structure_hash {str(recorded)[:12]}... of its labels row is not that of its "
                                   f"structure ({own[:12]}...): the spectra were computed for another structure "
                                   "(a labels file of another dataset?)")


def build_entry(
    entry_id: str,
    structure: Structure,
    formula: str,
    values: dict,
    extra: dict | None = None,
) -> Entry:
    """Make a checked :class:`Entry` from a dict holding any of :data:`SPECTRUM_KEYS`,
    :data:`LABEL_KEYS` and :data:`EXTRA_SCALAR_KEYS` (``None`` = absent). A spectrum needs both its
    frequency and its values; site-projected spectra need one row per site of ``structure``, and every
    spectrum must be physically possible for it (:func:`~betenet.data.plausibility.check_spectrum_values`:
    meV, a site PhDOS not negative and of a sane normalisation). A ``structure_hash`` in ``values``
    (:func:`~betenet.data.structures.structure_hash` of the structure the spectra were computed for)
    must be ``structure``'s."""
    check_recorded_hash(entry_id, structure, values.get("structure_hash"))
    entry = Entry(id=entry_id, structure=structure, formula=formula, extra=dict(extra or {}))
    for freq_key, val_key, per_site in SPECTRUM_FIELDS:
        freq, vals = values.get(freq_key), values.get(val_key)
        if freq is None and vals is None:
            continue
        if freq is None or vals is None:
            given, missing = (freq_key, val_key) if vals is None else (val_key, freq_key)
            raise InputError(entry_id, f"{given} given without {missing}")
        f, v = check_spectrum(
            entry_id, freq_key, freq, val_key, vals, per_site=per_site,
            n_sites=len(structure) if per_site else None,
        )
        check_spectrum_values(entry_id, freq_key, f, val_key, v, structure, per_site)
        setattr(entry, freq_key, f)
        setattr(entry, val_key, v)
    for key in LABEL_KEYS:
        x = check_scalar(entry_id, key, values.get(key))
        if x is not None:
            entry.labels[key] = x
    for key in EXTRA_SCALAR_KEYS:
        x = check_scalar(entry_id, key, values.get(key))
        if x is not None:
            entry.extra[key] = x
    return entry
