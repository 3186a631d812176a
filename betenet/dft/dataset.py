"""Writers of collected DFT results: the generic directory format and the published release format.

Directory format (read by :func:`betenet.data.sources.directory.load_directory`)::

    root/structures/<id>.cif     the calculation cell (site order = order of every per-site spectrum)
    root/labels.json             one record per id: raw spectra (meV grids) and scalar labels
    root/dft/<id>.json           what labels.json has no column for: per-smearing lambda, QE's
                                 lambda file, Fermi level, band gap, eDOS at E_F, imaginary modes

Release format (read by :func:`betenet.data.sources.release.load_release`): ``root/database.json``
(pandas JSON, "columns" orientation, index = id) and ``root/structures/<id>.cif``. Columns:
``comp``, ``Freq_meV``/``a2F``, ``PhFreq_meV``/``Tot_PhDOS`` (fine total PhDOS),
``Ph_2x2x2_interpolated_Freq_meV``/``Ph_2x2x2_interpolated_Site_Proj_DOS`` (coarse),
``PhFreq_meV_dense``/``Site_Proj_PhDOS_dense`` (fine), ``Site_proj_eDOS_eng_meV``/``Site_proj_eDOS``
(energies relative to E_F). DOS values are per meV (states/meV/cell; per site for projections).

Both writers add to an existing dataset: a record with the same id is replaced.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from betenet.data.sources.directory import COLUMNS
from betenet.data.sources.release import DATABASE_FILE, EXTRA_SPECTRA, SPECTRUM_COLUMNS
from betenet.data.structures import STRUCTURE_SUFFIXES
from betenet.errors import InputError
from betenet.files import to_jsonable, write_json


def _copy_structure(root: Path, item) -> None:
    structures = root / "structures"
    structures.mkdir(parents=True, exist_ok=True)
    clash = [p.name for p in structures.glob(f"{item.id}.*")
             if p.suffix.lower() in STRUCTURE_SUFFIXES and p.suffix.lower() != ".cif"]
    if clash:
        raise InputError(root, f"structures/ already holds {clash} for id {item.id}; remove it first")
    shutil.copyfile(item.structure_path, structures / f"{item.id}.cif")


def write_directory_entries(root, items) -> Path:
    """Add collected materials (:class:`betenet.dft.collect.Collected`) to a generic directory dataset."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if (root / "labels.csv").exists():
        raise InputError(root, "holds labels.csv; DFT results are added to labels.json only")
    labels_path = root / "labels.json"
    records = []
    if labels_path.exists():
        try:
            records = json.loads(labels_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(labels_path, f"not valid JSON ({exc})") from None
        if not isinstance(records, list):
            raise InputError(labels_path, "expected a list of records")
    new_ids = {str(it.id) for it in items}
    records = [r for r in records if str(r.get("id")) not in new_ids]
    (root / "dft").mkdir(exist_ok=True)
    for it in items:
        _copy_structure(root, it)
        records.append({k: to_jsonable(it.record[k]) for k in COLUMNS if it.record.get(k) is not None})
        write_json(root / "dft" / f"{it.id}.json", it.details, indent=1)
    write_json(labels_path, records)
    return root


def release_row(item) -> dict:
    """The release-format columns of one collected material; :class:`InputError` if one is missing."""
    r = item.record
    fields = {field: r.get(field) for field in SPECTRUM_COLUMNS.values()}
    extra = {
        "phdos_total_freq_meV": item.phdos_total_freq_meV,
        "phdos_total": item.phdos_total,
        "edos_freq_meV": item.edos_energy_meV,
        "edos": item.edos_site,
    }
    row = {"comp": r["formula"]}
    for column, field in SPECTRUM_COLUMNS.items():
        row[column] = fields[field]
    for freq_col, val_col, key, _ in EXTRA_SPECTRA:
        row[freq_col], row[val_col] = extra[f"{key}_freq_meV"], extra[key]
    missing = [c for c, v in row.items() if v is None]
    if missing:
        raise InputError(item.id, f"release format needs {missing} (enable coarse_phdos / edos in the profile)")
    return {c: to_jsonable(v) for c, v in row.items()}


def write_release_entries(root, items) -> Path:
    """Add collected materials to a release-format dataset (``database.json`` + ``structures/``).

    The table is written as the JSON that ``DataFrame.to_json()`` gives ({column: {id: value}}),
    with Python's full float precision (pandas would round to at most 15 decimal places).
    """
    root = Path(root)
    rows = {str(it.id): release_row(it) for it in items}
    root.mkdir(parents=True, exist_ok=True)
    db_path = root / DATABASE_FILE
    table: dict = {}
    if db_path.exists():
        try:
            table = json.loads(db_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(db_path, f"not valid JSON ({exc})") from None
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            raise InputError(db_path, "expected a pandas 'columns' table: {column: {id: value}}")
    ids = {str(i) for column in table.values() for i in column} | set(rows)
    for column in {c for row in rows.values() for c in row} - set(table):
        table[column] = {}
    for column, values in table.items():
        for entry_id, row in rows.items():
            values[entry_id] = row.get(column)
        for entry_id in ids - set(values):  # a column this dataset lacked so far: absent (NaN)
            values[entry_id] = None
    for it in items:
        _copy_structure(root, it)
    write_json(db_path, table)
    return root
