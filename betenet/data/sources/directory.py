"""Reader for the generic dataset folder: structure files plus an optional table of spectra and
labels keyed by id (also the format the demo set is cached in).

Layout::

    root/structures/<id>.cif | <id>.vasp | <id>.poscar | <id>.extxyz | <id>.xyz
    root/labels.csv  or  root/labels.json      optional; one row/record per id, column "id"
    root/splits.json                           optional; {"train": [...], "val": [...], "test": [...]}
    root/metadata.json                         optional; a JSON object copied into the metadata

Label columns (every one optional, per row; an empty CSV cell or JSON null = absent):

- spectra, frequencies in meV: ``a2f_freq_meV`` + ``a2f``; ``phdos_coarse_freq_meV`` +
  ``phdos_coarse_site`` (one list per site, in the structure file's site order);
  ``phdos_fine_freq_meV`` + ``phdos_fine_site``. In labels.json they are JSON lists; in
  labels.csv each cell holds the same list JSON-encoded, e.g. ``"[0.25, 0.35, 0.45]"``
  (and ``"[[...], [...]]"`` for the per-site columns).
- scalars: ``lambda``, ``omega_log_K``, ``omega_2_K``, ``tc_K``, ``min_phonon_freq_meV``.
- ``formula``: shown instead of the structure's own formula; must agree with the structure.
- ``structure_hash``: :func:`betenet.data.structures.structure_hash` of the structure the row's spectra
  were computed for; a row whose structure file has another hash is rejected (a labels file of another
  dataset whose ids collide with these).

Every spectrum must be physically possible for its structure (meV, a site PhDOS that is not negative
and integrates to about 3 per site: :mod:`betenet.data.plausibility`).

A structure without a labels row loads unlabelled (for prediction). A labels row without a
structure, an unreadable structure, or a bad row (NaN in a spectrum, lengths that disagree, a
per-site spectrum whose row count differs from the number of atoms, ...) goes to
``SourceData.rejected`` with the reason; the rest load. Columns outside this list are ignored,
with a warning and ``metadata["ignored_columns"]``.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path

from pymatgen.core import Composition

from betenet.data.sources.base import (
    EXTRA_SCALAR_KEYS,
    IDENTITY_KEYS,
    LABEL_KEYS,
    SPECTRUM_KEYS,
    SourceData,
    build_entry,
    fingerprint,
)
from betenet.data.sources.registry import DataSource, register_source
from betenet.data.splits import SPLIT_KEYS, given_split
from betenet.data.structures import STRUCTURE_SUFFIXES, load_structure, structure_mismatch
from betenet.errors import InputError
from betenet.files import natural_key

log = logging.getLogger(__name__)

#: Every column a labels table may have.
COLUMNS = ("id", "formula") + SPECTRUM_KEYS + LABEL_KEYS + EXTRA_SCALAR_KEYS + IDENTITY_KEYS


def _scan_structures(structures_dir: Path, rejected: list) -> dict[str, Path]:
    """id → structure file; unsupported or repeated files are rejected."""
    by_id: dict[str, list[Path]] = {}
    for p in sorted(structures_dir.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix.lower() not in STRUCTURE_SUFFIXES:
            reason = f"unsupported structure file type; use {', '.join(STRUCTURE_SUFFIXES)}"
            rejected.append((f"structures/{p.name}", reason))
            continue
        by_id.setdefault(p.stem, []).append(p)
    files = {}
    for entry_id, paths in by_id.items():
        if len(paths) > 1:
            rejected.append((entry_id, f"several structure files: {', '.join(q.name for q in paths)}"))
        else:
            files[entry_id] = paths[0]
    return files


def _csv_records(path: Path) -> list[dict]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: tolerate a spreadsheet BOM
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                raise InputError(path, "empty file (need a header with an 'id' column)")
            records = []
            for lineno, row in enumerate(reader, start=2):
                if None in row:
                    raise InputError(path, f"line {lineno}: more cells than header columns")
                records.append({k.strip(): (v.strip() if v is not None else "") for k, v in row.items()})
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"cannot read CSV ({exc})") from exc
    if "id" not in [f.strip() for f in reader.fieldnames]:
        raise InputError(path, f"no 'id' column; header is {reader.fieldnames}")
    return records


def _json_records(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise InputError(path, "expected a list of records [{\"id\": ..., ...}, ...]")
    return data


def record_id(raw) -> str | None:
    """The id of a labels row as a string (JSON numbers 7 and 7.0 → "7"); None when missing."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = str(raw).strip()
    return text or None


def _decode_csv_cell(entry_id: str, key: str, cell: str):
    """A CSV cell → Python value: "" → None; spectrum columns hold JSON-encoded lists."""
    if cell == "":
        return None
    if key in SPECTRUM_KEYS:
        try:
            value = json.loads(cell)
        except json.JSONDecodeError:
            raise InputError(entry_id, f"{key}: cell is not a JSON-encoded list") from None
        if not isinstance(value, list):
            raise InputError(entry_id, f"{key}: cell is not a JSON-encoded list")
        return value
    return cell


def read_label_records(path: Path) -> list[dict]:
    """The raw records of a labels file: ``.csv`` (spectrum cells still JSON text, see
    :func:`decode_csv_record`) or ``.json`` (a list of records)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return _csv_records(path)
    if path.suffix.lower() == ".json":
        return _json_records(path)
    raise InputError(path, "labels file must be .csv or .json")


def decode_csv_record(entry_id: str, record: dict) -> dict:
    """A labels.csv record with its JSON-encoded spectrum cells decoded (errors name the entry)."""
    return {k: _decode_csv_cell(entry_id, k, v) for k, v in record.items()}


def _read_labels(root: Path, rejected: list, metadata: dict) -> tuple[dict[str, dict], Path | None]:
    """id → labels record (raw values, "id" removed), None for an id whose rows are repeated (it is
    rejected, and its structure with it); rows without an id are rejected."""
    csv_path, json_path = root / "labels.csv", root / "labels.json"
    if csv_path.exists() and json_path.exists():
        raise InputError(root, "both labels.csv and labels.json present; keep one")
    path = csv_path if csv_path.exists() else json_path if json_path.exists() else None
    if path is None:
        return {}, None
    records = read_label_records(path)

    ignored = sorted({k for r in records for k in r} - set(COLUMNS))
    if ignored:
        log.warning("%s: ignoring unknown columns %s (known: %s)", path, ignored, list(COLUMNS))
        metadata["ignored_columns"] = ignored

    ids = [record_id(rec.get("id")) for rec in records]
    counts = Counter(i for i in ids if i is not None)
    table = {}
    for k, (entry_id, rec) in enumerate(zip(ids, records)):
        if entry_id is None:
            rejected.append((f"{path.name} row {k + 1}", "no id"))
        elif counts[entry_id] > 1:
            if entry_id not in table:
                rejected.append((entry_id, f"appears {counts[entry_id]} times in {path.name} (which row holds "
                                           "its labels is ambiguous: the entry is left out)"))
                table[entry_id] = None
        else:
            table[entry_id] = {key: v for key, v in rec.items() if key in COLUMNS and key != "id"}
    return table, path


def _read_metadata(root: Path) -> dict:
    path = root / "metadata.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object")
    return data


def _read_splits(root: Path, loaded: set[str], rejected: list) -> dict[str, list[str]] | None:
    path = root / "splits.json"
    if not path.exists():
        return None
    split = given_split(path)
    parts = {key: [str(i) for i in getattr(split, key)] for key in SPLIT_KEYS}
    seen: dict[str, str] = {}
    for key, ids in parts.items():
        for i in ids:
            if seen.get(i, key) != key:
                raise InputError(path, f'id {i!r} in both "{seen[i]}" and "{key}"')
            seen[i] = key
    already = {i for i, _ in rejected}
    for key, ids in parts.items():
        for i in ids:
            if i not in loaded and i not in already:
                rejected.append((i, f'listed in splits.json ("{key}") but has no structure file'))
    return {key: [i for i in ids if i in loaded] for key, ids in parts.items()}


def _formula(entry_id: str, stated, structure) -> str:
    """The given formula if it matches the structure's composition, else the structure's own."""
    own = structure.composition.formula.replace(" ", "")
    if stated is None or str(stated).strip() == "":
        return own
    try:
        comp = Composition(str(stated))
    except ValueError as exc:
        raise InputError(entry_id, f"formula {stated!r} is not a formula ({exc})") from None
    if not comp.reduced_composition.almost_equals(structure.composition.reduced_composition):
        raise InputError(entry_id, f"formula {stated!r} disagrees with the structure ({own})")
    return str(stated).strip()


def load_directory(root: str | Path) -> SourceData:
    """Read a generic dataset folder (layout in the module docstring) into a :class:`SourceData`.

    Entries come in natural id order. ``splits`` keeps only ids that loaded; ``metadata`` is
    ``metadata.json`` plus ``format``, ``root``, ``fingerprint`` (these three win on a clash).
    Raises :class:`InputError` for a missing root or ``structures/`` folder, no structure files,
    or an unreadable labels/splits/metadata file; bad entries are rejected, not raised.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "dataset folder not found")
    structures_dir = root / "structures"
    if not structures_dir.is_dir():
        raise InputError(root, "no structures/ folder")

    rejected: list[tuple[str, str]] = []
    metadata = _read_metadata(root)
    files = _scan_structures(structures_dir, rejected)
    if not files and not any(i for i, _ in rejected if not i.startswith("structures/")):
        raise InputError(structures_dir, f"no structure files ({', '.join(STRUCTURE_SUFFIXES)})")
    labels, labels_path = _read_labels(root, rejected, metadata)
    for entry_id in sorted(set(labels) - set(files), key=natural_key):
        if labels[entry_id] is not None:
            rejected.append((entry_id, f"row in {labels_path.name} but no structure file in structures/"))

    entries = []
    for entry_id in sorted(files, key=natural_key):
        if entry_id in labels and labels[entry_id] is None:
            continue  # repeated labels rows: already rejected
        path = files[entry_id]
        try:
            structure = load_structure(path, name=f"structures/{path.name}")
            record = dict(labels.get(entry_id, {}))
            if labels_path is not None and labels_path.suffix == ".csv":
                record = decode_csv_record(entry_id, record)
            formula = _formula(entry_id, record.pop("formula", None), structure)
            entries.append(build_entry(entry_id, structure, formula, record))
        except InputError as err:
            rejected.append((entry_id, err.reason if err.subject == entry_id else str(err)))

    splits = _read_splits(root, {e.id for e in entries}, rejected)
    metadata.update(format="directory", root=str(root), fingerprint=fingerprint(root))
    n_labelled = sum(1 for e in entries if e.labels or e.a2f is not None)
    log.info("%s: %d entries (%d labelled), %d rejected", root, len(entries), n_labelled, len(rejected))
    return SourceData(entries=entries, splits=splits, rejected=rejected, metadata=metadata)


def read_labels_table(path) -> dict[str, dict]:
    """id → record of a directory-format labels file (``labels.csv`` with JSON-encoded spectrum
    cells, or ``labels.json``, a list of records); module docstring."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "labels file not found")
    table = {}
    for rec in read_label_records(path):
        ident = record_id(rec.get("id"))
        if ident is None:
            continue
        rec = {k: v for k, v in rec.items() if k != "id"}
        if path.suffix.lower() == ".csv":
            rec = decode_csv_record(ident, rec)
        table[ident] = rec
    return table


def labelled_structure(labels_path, entry_id: str) -> Path | None:
    """The structure file that the row ``entry_id`` of a dataset folder's labels file belongs to
    (``structures/<id>.<suffix>`` beside it); None when the folder holds none."""
    folder = Path(labels_path).parent / "structures"
    return next((folder / f"{entry_id}{suffix}" for suffix in STRUCTURE_SUFFIXES
                 if (folder / f"{entry_id}{suffix}").is_file()), None)


def check_labels_structure(entry_id: str, structure, labels_path, source=None) -> None:
    """Refuse to give ``structure`` (read from ``source``, if a file) the row ``entry_id`` of
    ``labels_path`` when the labels' own dataset folder holds another structure under that id
    (:func:`~betenet.data.structures.structure_mismatch`): its spectra belong to that one, and
    per-site rows of a same-sized cell would otherwise be taken silently."""
    own = labelled_structure(labels_path, entry_id)
    if own is None or (isinstance(source, (str, Path)) and Path(source).resolve() == own.resolve()):
        return
    why = structure_mismatch(structure, load_structure(own, name=str(own)))
    if why:
        raise InputError(entry_id, f"its row in {labels_path} belongs to {own}, another structure ({why}); "
                                   "ids of two datasets collide: give the labels of these structures")


def _no_database(root: Path) -> bool:
    """A folder without ``database.json`` (the release's and BEE-NET's file) is read as a directory dataset."""
    return not (Path(root) / "database.json").is_file()


register_source(DataSource(name="directory", read=load_directory, detect=_no_database, fallback=True,
                           description="structures/ + labels.csv|json (+ splits.json, metadata.json)"))
