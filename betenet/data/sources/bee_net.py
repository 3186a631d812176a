"""Reader for BEE-NET's Alexandria a2F database (henniggroup/BEE-NET, arXiv 2503.20005): 5,241
compounds with DFT a2F, read from ``database.json`` by column name, ``structures/<index>.cif`` and
the index files in ``indices/``.

Layout read::

    root/database.json                     pd.read_json default orientation, one row per compound
    root/structures/<index>.cif            the row's ``index`` column
    root/indices/idx_test_full_cpd_id.txt  the published test split: one Alexandria ID per line
    root/indices/idx_train__cpd_<k>.txt    member k's bootstrap draw: database row labels as floats,
                                           with repeats (BEE-NET's notebooks train on ``df.loc[...]``)
    root/indices/idx_val__cpd_<k>.txt      member k's validation rows (when absent: the out-of-bag
                                           rest of the training split)

Columns (others are ignored): ``index``, ``ID`` (the entry id), ``comp``, the a2F of the chosen
smearing ``a2F_Freq_meV_<s>`` / ``a2F_<s>`` (``s`` = ``sigma_2``, BEE-NET's target and the default,
or ``sigma_5``), the coarse site PhDOS ``Ph_2x2x2_interpolated_Freq_meV`` /
``Ph_2x2x2_interpolated_Site_Proj_DOS`` (CPD), the fine total PhDOS ``PhFreq_meV`` / ``Tot_PhDOS``
(kept in ``Entry.extra``) and the authors' ``phlam``, ``phwlog``, ``phw2``. Rows with any missing
value are dropped (as the notebooks' ``df.dropna()``) and reported in ``SourceData.rejected``.

There is no fine *site-projected* PhDOS, so FPD cannot be trained from this source's own PhDOS
(``metadata["site_dos_missing"]``: the data module refuses ``variant=fpd`` with that reason unless
the PhDOS come from an ML potential, ``site_dos_source=mlip`` or ``fill``).

Units of the reported moments: ``phwlog`` and ``phw2`` are in meV (converted to K here). Evidence:
ω_log ≤ ω_2 in the same unit on every row shown in BEE-NET's notebooks; √``ACH_w_sq_sigma_5``
(⟨ω²⟩ of the σ = 5 a2F, in meV²) lies within 2–9 % of ``phw2`` on those rows; in K, TiZr2Hf's
ω_log would be 11 K at λ 2.03, far below the softest real lattices (~30 K), in meV it is 128 K.
On load, λ, ω_log and ω_2 of each chosen a2F are checked against them
(:func:`check_reported_moments`): one warning counts the entries beyond :data:`MOMENT_RTOL` and
gives the median ratio computed/reported, which would sit near 11.6 or 0.086 were the unit wrong.
They become the entries' reported labels (``lambda``, ``omega_log_K``, ``omega_2_K``); the targets
are the a2F.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from betenet.data.sources.base import Entry, SourceData, build_entry, check_spectrum, fingerprint
from betenet.data.sources.registry import DataSource, register_source
from betenet.data.sources.release import read_table, release_id, structure_with_formula
from betenet.data.splits import read_release_ids
from betenet.errors import InputError
from betenet.physics.properties import MOMENTS, a2f_properties
from betenet.physics.units import MEV_TO_K

log = logging.getLogger(__name__)

DATABASE_FILE = "database.json"
SMEARINGS = ("sigma_2", "sigma_5")
TEST_FILE = "idx_test_full_cpd_id.txt"
TRAIN_MEMBER = "idx_train__cpd_{k}.txt"
VALID_MEMBER = "idx_val__cpd_{k}.txt"
#: Columns every row needs besides the chosen a2F.
BASE_COLUMNS = ("index", "ID", "comp")
COARSE_COLUMNS = ("Ph_2x2x2_interpolated_Freq_meV", "Ph_2x2x2_interpolated_Site_Proj_DOS")
FINE_TOTAL_COLUMNS = ("PhFreq_meV", "Tot_PhDOS")
#: The authors' moments: column → (label, factor from the column's unit to the label's).
REPORTED_COLUMNS = {"phlam": ("lambda", 1.0), "phwlog": ("omega_log_K", MEV_TO_K), "phw2": ("omega_2_K", MEV_TO_K)}
#: Relative difference beyond which a computed moment disagrees with the reported one.
MOMENT_RTOL = 0.10
NO_FINE_SITE_DOS = ("BEE-NET's database.json has only a total fine PhDOS (Tot_PhDOS), no site-projected one: "
                    "use variant=cso or cpd, or site_dos_source=mlip for ML-potential FPD attributes")


def a2f_columns(smearing: str) -> tuple[str, str]:
    """(frequency column, a2F column) of a smearing (``sigma_2`` or ``sigma_5``)."""
    if smearing not in SMEARINGS:
        raise InputError(f"smearing={smearing}", f"use one of {', '.join(SMEARINGS)}")
    return f"a2F_Freq_meV_{smearing}", f"a2F_{smearing}"


def looks_like_bee_net(root: str | Path) -> bool:
    """Whether a folder holding ``database.json`` is BEE-NET's (its test index file, or its a2F
    columns near the start of the file) rather than the BETE-NET release."""
    root = Path(root)
    if (root / "indices" / TEST_FILE).is_file():
        return True
    try:
        with open(root / DATABASE_FILE, "rb") as fh:
            head = fh.read(1 << 22)
    except OSError:
        return False
    return b'"a2F_Freq_meV_sigma_' in head or b'"a2F_sigma_' in head


def _read_database(path: Path, needed: tuple[str, ...]) -> pd.DataFrame:
    df = read_table(path, needed, "BEE-NET's database.json is downloaded separately; see README")
    repeated = sorted(i for i, n in Counter(df["ID"].astype(str)).items() if n > 1)
    if repeated:
        raise InputError(path, f"IDs repeated: {repeated[:10]}")
    df.index = [release_id(i) for i in df.index]  # row labels, as the bootstrap files give them
    return df


def _reported(row: pd.Series) -> dict[str, float]:
    """The authors' λ, ω_log, ω_2 as labels (K), where given and physical."""
    out = {}
    for column, (label, factor) in REPORTED_COLUMNS.items():
        if column in row.index:
            try:
                x = float(row[column]) * factor
            except (TypeError, ValueError):
                continue
            if np.isfinite(x) and (x > 0 or (label == "lambda" and x == 0)):
                out[label] = x
    return out


def _row_to_entry(row: pd.Series, a2f_cols: tuple[str, str], structures_dir: Path) -> Entry:
    entry_id = str(row["ID"])
    comp = str(row["comp"])
    structure = structure_with_formula(entry_id, structures_dir / f"{release_id(row['index'])}.cif", comp)
    values = {"a2f_freq_meV": row[a2f_cols[0]], "a2f": row[a2f_cols[1]], **_reported(row)}
    if all(c in row.index for c in COARSE_COLUMNS):
        values["phdos_coarse_freq_meV"], values["phdos_coarse_site"] = (row[c] for c in COARSE_COLUMNS)
    extra = {"alexandria_index": release_id(row["index"])}
    if all(c in row.index for c in FINE_TOTAL_COLUMNS):
        freq_col, dos_col = FINE_TOTAL_COLUMNS
        f, v = check_spectrum(entry_id, freq_col, row[freq_col], dos_col, row[dos_col])
        extra["phdos_total_freq_meV"], extra["phdos_total"] = f, v
    return build_entry(entry_id, structure, comp, values, extra)


def check_reported_moments(entries: list[Entry], rtol: float = MOMENT_RTOL, source: str = "bee_net") -> dict:
    """λ, ω_log, ω_2 of each entry's raw a2F against its reported labels: ``{n_checked, disagree:
    {property: [ids]}, median_ratio: {property: computed/reported}}``; one warning when any entry
    differs by more than ``rtol`` (relative)."""
    disagree = {k: [] for k in MOMENTS}
    ratios = {k: [] for k in MOMENTS}
    n_checked = 0
    for e in entries:
        given = {k: e.labels[k] for k in MOMENTS if k in e.labels}
        if e.a2f is None or not given:
            continue
        n_checked += 1
        computed = a2f_properties(e.a2f_freq_meV, e.a2f)
        for k, ref in given.items():
            x = computed[k]
            if ref > 0 and np.isfinite(x):
                ratios[k].append(x / ref)
            if not (np.isfinite(x) and abs(x - ref) <= rtol * abs(ref)):
                disagree[k].append(e.id)
    median = {k: float(np.median(r)) if r else float("nan") for k, r in ratios.items()}
    ids = sorted({i for v in disagree.values() for i in v})
    if ids:
        counts = ", ".join(f"{k} {len(v)}" for k, v in disagree.items())
        medians = ", ".join(f"{k} {m:.3g}" for k, m in median.items())
        log.warning("%s: %d of %d entries have lambda, omega_log or omega_2 of their a2F more than %g %% from the "
                    "reported phlam/phwlog/phw2 (%s; median ratio computed/reported: %s), e.g. %s",
                    source, len(ids), n_checked, 100 * rtol, counts, medians, ", ".join(ids[:5]))
    return {"n_checked": n_checked, "rtol": rtol, "disagree": disagree, "median_ratio": median}


def _read_ids(path: Path) -> list[str]:
    try:
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise InputError(path, f"cannot read index file ({exc.strerror or exc})") from exc
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise InputError(path, f"IDs repeated: {repeated[:10]}")
    return ids


def _splits(indices_dir: Path, db_ids: set[str], loaded: list[str], rejected: list, metadata: dict):
    """The published test split; every other loaded entry trains. None without the test file."""
    path = indices_dir / TEST_FILE
    if not path.is_file():
        return None
    test = _read_ids(path)
    absent = [i for i in test if i not in db_ids]
    rejected.extend((i, f"listed in {TEST_FILE} but absent from {DATABASE_FILE}") for i in absent)
    metadata["split_ids_absent"] = {"test": absent}
    if absent:
        log.warning("%d test IDs absent from %s: %s", len(absent), DATABASE_FILE, absent[:10])
    in_test, have = set(test), set(loaded)
    return {"train": [i for i in loaded if i not in in_test], "test": [i for i in test if i in have]}


def _member_ids(path: Path, row_ids: dict[str, str]) -> list[str]:
    labels = [str(i) for i in read_release_ids(path)]
    unknown = sorted({i for i in labels if i not in row_ids}, key=int)
    if unknown:
        log.warning("%s: %d row labels not in %s (e.g. %s)", path, len(unknown), DATABASE_FILE, unknown[:5])
    return [row_ids[i] for i in labels if i in row_ids]


def bee_net_bootstrap(indices_dir: str | Path, k: int, metadata: dict) -> tuple[list[str], list[str] | None]:
    """Member ``k``: its draw as entry IDs (with repeats, file order) and its validation IDs, or
    None when ``idx_val__cpd_<k>.txt`` is absent (then the out-of-bag rest of the training split
    validates). ``metadata`` is the source's (its ``row_ids`` map row labels to IDs)."""
    indices_dir = Path(indices_dir)
    train_path = indices_dir / TRAIN_MEMBER.format(k=k)
    if not train_path.is_file():
        raise InputError(train_path, f"not found: BEE-NET's indices/ has one {TRAIN_MEMBER} per member (seed=k)")
    row_ids = metadata["row_ids"]
    drawn = _member_ids(train_path, row_ids)
    if not drawn:
        raise InputError(train_path, "no IDs of the database")
    valid_path = indices_dir / VALID_MEMBER.format(k=k)
    if not valid_path.is_file():
        return drawn, None
    valid = list(dict.fromkeys(_member_ids(valid_path, row_ids)))
    overlap = sorted(set(drawn) & set(valid))
    if overlap:
        raise InputError(valid_path, f"validation rows also drawn for training: {overlap[:10]}")
    return drawn, valid


def load_bee_net(root: str | Path, smearing: str = "sigma_2") -> SourceData:
    """Read BEE-NET's database under ``root`` with the a2F of ``smearing`` as the target. Bad rows
    are rejected with a reason, the rest load; ``splits`` is the published test split (None
    without ``indices/idx_test_full_cpd_id.txt``)."""
    a2f_cols = a2f_columns(smearing)
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "BEE-NET data folder not found")
    db_path = root / DATABASE_FILE
    df = _read_database(db_path, BASE_COLUMNS + a2f_cols)
    structures_dir = root / "structures"
    if not structures_dir.is_dir():
        raise InputError(root, "no structures/ folder beside database.json")

    rejected: list[tuple[str, str]] = []
    na = df.isna()
    dropped = na.any(axis=1).to_numpy()
    for (_, row), empty in zip(df[dropped].iterrows(), na[dropped].to_numpy()):
        rejected.append((str(row["ID"]), f"missing values in {list(df.columns[empty])} (dropped by dropna, "
                                         "as BEE-NET's notebooks did)"))
    kept = df[~dropped]
    if dropped.any():
        log.info("%s: dropna removed %d of %d rows", db_path, int(dropped.sum()), len(df))

    entries = []
    for _, row in kept.iterrows():
        try:
            entries.append(_row_to_entry(row, a2f_cols, structures_dir))
        except InputError as err:
            entry_id = str(row["ID"])
            rejected.append((entry_id, err.reason if err.subject == entry_id else str(err)))

    metadata = {
        "format": "bee_net",
        "root": str(root),
        "fingerprint": fingerprint(root),
        "smearing": smearing,
        "n_rows": len(df),
        "n_dropped_na": int(dropped.sum()),
        "columns": list(df.columns),
        "row_ids": {label: str(i) for label, i in zip(df.index, df["ID"])},
        "site_dos_missing": {"fine": NO_FINE_SITE_DOS},
        "moment_check": check_reported_moments(entries),
    }
    indices_dir = root / "indices"
    splits = None
    if indices_dir.is_dir():
        splits = _splits(indices_dir, set(df["ID"].astype(str)), [e.id for e in entries], rejected, metadata)
    log.info("%s: %d entries, %d rejected", root, len(entries), len(rejected))
    return SourceData(entries=entries, splits=splits, rejected=rejected, metadata=metadata,
                      bootstrap_dir=indices_dir if indices_dir.is_dir() else None)


def _is_bee_net(root: Path) -> int:
    """2 for a folder with BEE-NET's ``database.json`` (:func:`looks_like_bee_net`): more surely than the
    release's claim on any ``database.json``; else 0."""
    return 2 if (Path(root) / DATABASE_FILE).is_file() and looks_like_bee_net(root) else 0


register_source(DataSource(name="bee_net", read=load_bee_net, detect=_is_bee_net, bootstrap=bee_net_bootstrap,
                           options=("smearing",),
                           description="BEE-NET's Alexandria a2F database: database.json + structures/ + indices/"))
