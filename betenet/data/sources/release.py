"""Reader for the published BETE-NET release: ``database.json`` (a pandas table, one row per
structure id), ``structures/<id>.cif`` and the index files in ``indices/``.

Layout read::

    root/database.json                    pd.read_json default ("columns") orientation, index = id
    root/structures/<id>.cif
    root/indices/idx_train_full.txt       ids as floats ("7.1e+01"), one per line
    root/indices/idx_test_full.txt
    root/indices/idx_train_V2_k.txt ...   bootstrap members (read later by betenet.data.splits)

Rows with any missing value are dropped, as the release's ``df.dropna()`` did; each dropped id is
reported in ``SourceData.rejected`` with the empty columns. The release gives no scalar labels:
lambda, omega_log, omega_2 and Tc are computed later from the binned a2F.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd
from pymatgen.core import Composition

from betenet.data.sources.base import Entry, SourceData, build_entry, check_spectrum, fingerprint
from betenet.data.sources.registry import DataSource, register_source
from betenet.data.splits import RELEASE_TEST_FULL, RELEASE_TRAIN_FULL, release_split
from betenet.data.structures import load_structure
from betenet.errors import InputError

log = logging.getLogger(__name__)

DATABASE_FILE = "database.json"
#: Release column → Entry field, for the spectra the models use.
SPECTRUM_COLUMNS = {
    "Freq_meV": "a2f_freq_meV",
    "a2F": "a2f",
    "Ph_2x2x2_interpolated_Freq_meV": "phdos_coarse_freq_meV",
    "Ph_2x2x2_interpolated_Site_Proj_DOS": "phdos_coarse_site",
    "PhFreq_meV_dense": "phdos_fine_freq_meV",
    "Site_Proj_PhDOS_dense": "phdos_fine_site",
}
#: Release columns kept in ``Entry.extra``: (frequency column, values column, extra key prefix,
#: values are one row per projection).
EXTRA_SPECTRA = (
    ("PhFreq_meV", "Tot_PhDOS", "phdos_total", False),  # fine total phonon DOS
    ("Site_proj_eDOS_eng_meV", "Site_proj_eDOS", "edos", True),  # electronic DOS around E_F
)
REQUIRED_COLUMNS = ("comp", "Freq_meV", "a2F")


def release_id(label) -> str:
    """A release id as a string: integral numbers (71, 71.0, "71") → "71"; anything else as is."""
    try:
        x = float(label)
    except (TypeError, ValueError):
        return str(label)
    return str(int(x)) if x.is_integer() else str(label)


def read_table(path: Path, needed, not_found: str) -> pd.DataFrame:
    """A ``database.json`` as pandas reads it (default orientation), with every ``needed`` column; a missing
    file (``not_found`` says what was expected), a file pandas cannot read or a missing column is an
    ``InputError`` naming the file and the column(s). Shared by the release and BEE-NET sources."""
    if not path.is_file():
        raise InputError(path, f"not found ({not_found})")
    try:
        df = pd.read_json(path)
    except ValueError as exc:
        raise InputError(path, f"not a pandas JSON table: {exc}") from exc
    missing = [c for c in needed if c not in df.columns]
    if missing:
        what = f"column {missing[0]!r}" if len(missing) == 1 else f"columns {missing}"
        raise InputError(path, f"missing {what}; found {list(df.columns)}")
    return df


def _read_database(path: Path) -> pd.DataFrame:
    df = read_table(path, REQUIRED_COLUMNS, "expected the release's database.json")
    ids = [release_id(i) for i in df.index]
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise InputError(path, f"ids repeated: {repeated[:10]}")
    df.index = ids
    return df


def structure_with_formula(entry_id: str, cif: Path, comp: str):
    """The structure of ``structures/<cif>``, checked against the database row's stated formula ``comp``
    (a missing file, a formula that does not parse or disagrees is an ``InputError`` naming the entry)."""
    if not cif.is_file():
        raise InputError(entry_id, f"no structure file structures/{cif.name}")
    structure = load_structure(cif, name=f"structures/{cif.name}")
    try:
        stated = Composition(comp)
    except ValueError as exc:
        raise InputError(entry_id, f"comp {comp!r} is not a formula ({exc})") from None
    if not stated.reduced_composition.almost_equals(structure.composition.reduced_composition):
        raise InputError(
            entry_id, f"comp {comp!r} disagrees with {cif.name} ({structure.composition.reduced_formula})"
        )
    return structure


def _row_to_entry(entry_id: str, row: pd.Series, structures_dir: Path) -> Entry:
    comp = str(row["comp"])
    structure = structure_with_formula(entry_id, structures_dir / f"{entry_id}.cif", comp)
    values = {field: row[col] for col, field in SPECTRUM_COLUMNS.items() if col in row.index}
    extra = {}
    for freq_col, val_col, key, per_row in EXTRA_SPECTRA:
        if freq_col in row.index and val_col in row.index:
            f, v = check_spectrum(entry_id, freq_col, row[freq_col], val_col, row[val_col], per_site=per_row)
            extra[f"{key}_freq_meV"], extra[key] = f, v
    return build_entry(entry_id, structure, comp, values, extra)


def _splits(indices_dir: Path, db_ids: set[str], loaded: set[str], rejected: list, metadata: dict):
    if not ((indices_dir / RELEASE_TRAIN_FULL).is_file() and (indices_dir / RELEASE_TEST_FULL).is_file()):
        return None
    train, test = release_split(indices_dir)
    splits, absent = {}, {}
    for part, fname, ids in (("train", RELEASE_TRAIN_FULL, train), ("test", RELEASE_TEST_FULL, test)):
        ids = [str(i) for i in ids]
        absent[part] = [i for i in ids if i not in db_ids]
        for i in absent[part]:
            rejected.append((i, f"listed in {fname} but absent from {DATABASE_FILE}"))
        splits[part] = [i for i in ids if i in loaded]
    metadata["split_ids_absent"] = absent
    if any(absent.values()):
        log.warning("split ids absent from %s: %s", DATABASE_FILE, absent)
    return splits


def load_release(root: str | Path) -> SourceData:
    """Read the published release under ``root`` into entries, its train/test split and the
    bootstrap index folder. Bad rows are rejected with a reason; the rest load.

    ``splits`` holds only ids that loaded (ids of the index files that are absent from the
    database are reported in ``rejected`` and ``metadata["split_ids_absent"]``); it is None when
    ``indices/`` lacks the two ``*_full.txt`` files.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "release folder not found")
    db_path = root / DATABASE_FILE
    df = _read_database(db_path)
    structures_dir = root / "structures"
    if not structures_dir.is_dir():
        raise InputError(root, "no structures/ folder beside database.json")

    rejected: list[tuple[str, str]] = []
    na = df.isna()
    dropped = na.any(axis=1)
    for entry_id in df.index[dropped]:
        cols = list(df.columns[na.loc[entry_id].to_numpy()])
        rejected.append((entry_id, f"missing values in {cols} (dropped by dropna, as the release did)"))
    kept = df.dropna()
    n_dropped = len(df) - len(kept)
    if n_dropped:
        log.info("%s: dropna removed %d of %d rows", db_path, n_dropped, len(df))

    entries = []
    for entry_id, row in kept.iterrows():
        try:
            entries.append(_row_to_entry(entry_id, row, structures_dir))
        except InputError as err:
            reason = err.reason if err.subject == entry_id else str(err)
            rejected.append((entry_id, reason))

    metadata = {
        "format": "betenet_release",
        "root": str(root),
        "fingerprint": fingerprint(root),
        "n_rows": len(df),
        "n_dropped_na": n_dropped,
        "columns": list(df.columns),
    }
    indices_dir = root / "indices"
    splits = None
    if indices_dir.is_dir():
        splits = _splits(indices_dir, set(df.index), {e.id for e in entries}, rejected, metadata)
    log.info("%s: %d entries, %d rejected", root, len(entries), len(rejected))
    return SourceData(
        entries=entries,
        splits=splits,
        rejected=rejected,
        metadata=metadata,
        bootstrap_dir=indices_dir if indices_dir.is_dir() else None,
    )


def _has_database(root: Path) -> bool:
    """A folder with ``database.json`` (BEE-NET's layout, which has one too, claims its folders more surely)."""
    return (Path(root) / DATABASE_FILE).is_file()


register_source(DataSource(name="release", read=load_release, detect=_has_database, config="betenet_release",
                           description="the published BETE-NET release: database.json + structures/ + indices/"))
