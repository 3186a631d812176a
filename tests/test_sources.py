"""Dataset sources: the release format (database.json + structures + indices) and the generic
directory format (structures + labels.csv/json + splits.json + metadata.json), read back from
fixtures built here from real shared CIFs and clearly synthetic spectra."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase.io import write as ase_write
from pymatgen.io.ase import AseAtomsAdaptor

from betenet.data.sources import fingerprint, load_directory, load_release
from betenet.data.sources.base import LABEL_KEYS
from betenet.data.structures import load_structure
from betenet.errors import InputError

N_IDS = 13
# to_json rounds floats to 10 decimal places by default (double_precision=10): |error| <= 0.5e-10.
ATOL_JSON = 0.5e-10 * (1 + 1e-6)


# ---------------------------------------------------------------------------------------------
# Synthetic spectra (Gaussian bumps on arbitrary grids; not physical data)
# ---------------------------------------------------------------------------------------------


def _gauss(w, centre, width, height):
    return height * np.exp(-0.5 * ((w - centre) / width) ** 2)


def synthetic_spectra(n_sites: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Raw a2F on a 0.1 meV grid and coarse/fine site-projected PhDOS, one bump per site."""
    a2f_w = np.round(np.arange(0.1, 40.0, 0.1), 1)
    ph_coarse_w = np.linspace(0.0, 50.0, 101)
    ph_fine_w = np.linspace(0.0, 50.0, 251)
    centres = rng.uniform(5.0, 35.0, size=n_sites)
    return {
        "a2f_freq_meV": a2f_w,
        "a2f": _gauss(a2f_w, rng.uniform(8, 30), 4.0, rng.uniform(0.2, 1.0)),
        "phdos_coarse_freq_meV": ph_coarse_w,
        "phdos_coarse_site": np.stack([_gauss(ph_coarse_w, c, 5.0, 0.1) for c in centres]),
        "phdos_fine_freq_meV": ph_fine_w,
        "phdos_fine_site": np.stack([_gauss(ph_fine_w, c, 3.0, 0.1) for c in centres]),
    }


@pytest.fixture(scope="module")
def cif_ids(structures_dir) -> list[str]:
    ids = sorted((p.stem for p in structures_dir.glob("*.cif") if p.stem.isdigit()), key=int)
    assert len(ids) >= N_IDS
    return ids[:N_IDS]


@pytest.fixture(scope="module")
def n_sites(structures_dir, cif_ids) -> dict[str, int]:
    return {i: len(load_structure(structures_dir / f"{i}.cif")) for i in cif_ids}


def _link_structures(dest: Path, structures_dir: Path, ids, suffix=".cif"):
    dest.mkdir(parents=True, exist_ok=True)
    for i in ids:
        (dest / f"{i}{suffix}").symlink_to(structures_dir / f"{i}.cif")


# ---------------------------------------------------------------------------------------------
# Release format
# ---------------------------------------------------------------------------------------------

RELEASE_COLUMNS = {  # release column -> synthetic_spectra key
    "Freq_meV": "a2f_freq_meV",
    "a2F": "a2f",
    "Ph_2x2x2_interpolated_Freq_meV": "phdos_coarse_freq_meV",
    "Ph_2x2x2_interpolated_Site_Proj_DOS": "phdos_coarse_site",
    "PhFreq_meV_dense": "phdos_fine_freq_meV",
    "Site_Proj_PhDOS_dense": "phdos_fine_site",
}
ABSENT_TEST_ID = 99999  # in idx_test_full.txt, not in database.json (as 3 test ids are in the release)
NO_CIF_ID = 88888  # a database row whose structures/<id>.cif is missing


@pytest.fixture()
def release(tmp_path, structures_dir, cif_ids, n_sites):
    """A miniature release: rows for the 13 CIFs plus one without a CIF; row cif_ids[3] has a
    missing a2F (dropna), row cif_ids[5] a coarse site PhDOS with one site row too many."""
    rng = np.random.default_rng(7)
    root = tmp_path / "release"
    _link_structures(root / "structures", structures_dir, cif_ids)
    rows, spectra = {}, {}
    for i in cif_ids + [str(NO_CIF_ID)]:
        k = n_sites.get(i, 1)
        s = synthetic_spectra(k, rng)
        spectra[i] = s
        row = {col: s[key].tolist() for col, key in RELEASE_COLUMNS.items()}
        comp = load_structure(structures_dir / f"{i}.cif").composition if i in n_sites else None
        row["comp"] = comp.formula.replace(" ", "") if comp else "Cs1"
        row["PhFreq_meV"] = s["phdos_fine_freq_meV"].tolist()
        row["Tot_PhDOS"] = s["phdos_fine_site"].sum(axis=0).tolist()
        row["Site_proj_eDOS_eng_meV"] = np.arange(-50.0, 50.0, 1.0).tolist()
        row["Site_proj_eDOS"] = np.ones((k, 100)).tolist()
        rows[int(i)] = row
    rows[int(cif_ids[3])]["a2F"] = None
    bad = spectra[cif_ids[5]]["phdos_coarse_site"]
    rows[int(cif_ids[5])]["Ph_2x2x2_interpolated_Site_Proj_DOS"] = np.vstack([bad, bad[:1]]).tolist()
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.to_json(root / "database.json")  # pandas' default orient for a DataFrame: "columns"

    train = [int(i) for i in cif_ids[:9]] + [NO_CIF_ID]
    test = [int(i) for i in cif_ids[9:]] + [ABSENT_TEST_ID]
    (root / "indices").mkdir()
    np.savetxt(root / "indices" / "idx_train_full.txt", train)  # "%.18e", as in the release
    np.savetxt(root / "indices" / "idx_test_full.txt", test)
    return root, spectra


def test_release_fixture_is_columns_oriented_with_float_ids(release):
    root, _ = release
    raw = json.loads((root / "database.json").read_text())
    assert "comp" in raw and "a2F" in raw  # top-level keys are the columns
    first = (root / "indices" / "idx_test_full.txt").read_text().splitlines()[0]
    assert "e+" in first and float(first) == int(float(first))


def test_load_release(release, cif_ids, n_sites, structures_dir):
    root, spectra = release
    data = load_release(root)
    rejected = dict(data.rejected)
    dropped, bad_sites = cif_ids[3], cif_ids[5]

    expected_ids = [i for i in cif_ids if i not in (dropped, bad_sites)]
    assert [e.id for e in data.entries] == expected_ids
    assert "a2F" in rejected[dropped] and "dropna" in rejected[dropped]
    assert f"{n_sites[bad_sites] + 1} site rows" in rejected[bad_sites]
    assert "no structure file" in rejected[str(NO_CIF_ID)]
    assert "absent from database.json" in rejected[str(ABSENT_TEST_ID)]
    assert len(data.rejected) == 4
    assert data.metadata["n_dropped_na"] == 1 and data.metadata["n_rows"] == N_IDS + 1
    assert data.metadata["split_ids_absent"] == {"train": [], "test": [str(ABSENT_TEST_ID)]}
    assert data.metadata["fingerprint"] == fingerprint(root)

    assert data.splits == {
        "train": [i for i in cif_ids[:9] if i in expected_ids],
        "test": list(cif_ids[9:]),
    }
    assert data.bootstrap_dir == root / "indices"

    for e in data.entries:
        s = spectra[e.id]
        ref = load_structure(structures_dir / f"{e.id}.cif")
        assert e.formula == ref.composition.formula.replace(" ", "")
        assert [x.symbol for x in e.structure.species] == [x.symbol for x in ref.species]
        for key, value in s.items():
            np.testing.assert_allclose(getattr(e, key), value, rtol=0, atol=ATOL_JSON, err_msg=key)
        assert e.phdos_coarse_site.shape == (n_sites[e.id], s["phdos_coarse_freq_meV"].size)
        np.testing.assert_allclose(e.extra["phdos_total"], s["phdos_fine_site"].sum(axis=0), rtol=0,
                                   atol=ATOL_JSON)
        assert e.extra["edos"].shape == (n_sites[e.id], 100)
        assert e.labels == {}  # the release gives spectra only; labels are computed downstream


def test_release_errors(tmp_path, release):
    with pytest.raises(InputError, match="not found"):
        load_release(tmp_path / "nowhere")
    root, _ = release
    (root / "database.json").write_text('{"comp": {"1": "Cs"}}')
    with pytest.raises(InputError, match=r"missing columns \['Freq_meV', 'a2F'\]"):
        load_release(root)


# ---------------------------------------------------------------------------------------------
# Directory format
# ---------------------------------------------------------------------------------------------


def _record(entry_id: str, spectra: dict | None = None, **scalars) -> dict:
    rec = {"id": entry_id}
    for key, value in (spectra or {}).items():
        rec[key] = np.asarray(value).tolist()
    rec.update(scalars)
    return rec


def write_labels(root: Path, records: list[dict], fmt: str) -> None:
    """labels.json: the records; labels.csv: one row per record, lists JSON-encoded in the cell,
    absent values as empty cells."""
    if fmt == "json":
        (root / "labels.json").write_text(json.dumps(records))
        return
    columns = list(dict.fromkeys(k for r in records for k in r))
    with (root / "labels.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in records:
            cells = []
            for c in columns:
                v = r.get(c)
                cells.append("" if v is None else json.dumps(v) if isinstance(v, list) else v)
            w.writerow(cells)


@pytest.fixture()
def dataset(tmp_path, structures_dir, cif_ids, n_sites):
    """ids[0:4] full spectra + labels, ids[4:6] tc_K only, ids[6] no labels row; the same
    structures as .cif, except ids[1] as POSCAR (.vasp) and ids[2] as extended XYZ."""
    rng = np.random.default_rng(11)
    ids = cif_ids[:7]
    root = tmp_path / "dataset"
    sdir = root / "structures"
    _link_structures(sdir, structures_dir, [i for i in ids if i not in (ids[1], ids[2])])
    load_structure(structures_dir / f"{ids[1]}.cif").to(filename=str(sdir / f"{ids[1]}.vasp"), fmt="poscar")
    atoms = AseAtomsAdaptor.get_atoms(load_structure(structures_dir / f"{ids[2]}.cif"))
    ase_write(sdir / f"{ids[2]}.extxyz", atoms, format="extxyz")
    records, expected = [], {}
    for k, i in enumerate(ids[:4]):
        s = synthetic_spectra(n_sites[i], rng)
        scalars = {"lambda": 0.3 + 0.1 * k, "omega_log_K": 100.0 + k, "omega_2_K": 150.0 + k,
                   "tc_K": 1.5 * k, "min_phonon_freq_meV": -0.5 * k}
        records.append(_record(i, s, **scalars))
        expected[i] = (s, scalars)
    for k, i in enumerate(ids[4:6]):
        records.append(_record(i, tc_K=2.0 + k))
        expected[i] = ({}, {"tc_K": 2.0 + k})
    records[0]["formula"] = load_structure(structures_dir / f"{ids[0]}.cif").composition.reduced_formula
    return root, ids, records, expected


def _check_entries(entries, ids, expected, structures_dir):
    assert [e.id for e in entries] == list(ids)  # natural id order
    for e in entries:
        ref = load_structure(structures_dir / f"{e.id}.cif")
        given = ref.composition.reduced_formula if e.id == ids[0] else None  # "formula" column
        assert e.formula == (given or ref.composition.formula.replace(" ", ""))
        np.testing.assert_allclose(e.structure.lattice.matrix, ref.lattice.matrix, atol=1e-5)
        np.testing.assert_allclose(e.structure.cart_coords, ref.cart_coords, atol=1e-5)
        spectra, scalars = expected.get(e.id, ({}, {}))
        for key in ("a2f_freq_meV", "a2f", "phdos_coarse_freq_meV", "phdos_coarse_site",
                    "phdos_fine_freq_meV", "phdos_fine_site"):
            if key in spectra:
                np.testing.assert_array_equal(getattr(e, key), spectra[key], err_msg=key)
            else:
                assert getattr(e, key) is None
        assert e.labels == {k: v for k, v in scalars.items() if k in LABEL_KEYS}
        if "min_phonon_freq_meV" in scalars:
            assert e.extra["min_phonon_freq_meV"] == scalars["min_phonon_freq_meV"]


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_directory_roundtrip(dataset, structures_dir, fmt):
    root, ids, records, expected = dataset
    write_labels(root, records, fmt)
    (root / "metadata.json").write_text(json.dumps({"synthetic": True, "note": "test"}))
    data = load_directory(root)
    assert data.rejected == []
    _check_entries(data.entries, ids, expected, structures_dir)
    assert data.splits is None and data.bootstrap_dir is None
    assert data.metadata["synthetic"] is True and data.metadata["format"] == "directory"
    assert data.metadata["fingerprint"] == fingerprint(root)
    unlabelled = data.entries[-1]
    assert unlabelled.id == ids[6] and unlabelled.labels == {} and unlabelled.a2f is None


def test_partial_labels_only_tc(tmp_path, structures_dir, cif_ids):
    """The README example: two CIFs, a labels.csv with only tc_K."""
    root = tmp_path / "tc_only"
    _link_structures(root / "structures", structures_dir, cif_ids[:2])
    (root / "labels.csv").write_text(f"id,tc_K\n{cif_ids[0]},9.2\n{cif_ids[1]},\n")
    data = load_directory(root)
    assert data.rejected == []
    first, second = data.entries
    assert first.labels == {"tc_K": 9.2}  # lambda, omega_log_K, omega_2_K absent, not invented
    assert second.labels == {}  # empty cell = absent
    assert all(e.a2f is None and e.phdos_coarse_site is None for e in data.entries)


def test_bad_entries_rejected_rest_load(dataset, structures_dir, cif_ids, n_sites):
    root, ids, records, expected = dataset
    sdir = root / "structures"
    good = records[0]
    extra_ids = cif_ids[7:12]
    _link_structures(sdir, structures_dir, extra_ids)
    nan_id, short_id, sites_id, half_id, neg_id = extra_ids
    s = {k: np.asarray(v) for k, v in good.items() if k != "id" and isinstance(v, list)}
    nan_a2f = s["a2f"].copy()
    nan_a2f[10] = np.nan
    bad_records = [
        _record(nan_id, {"a2f_freq_meV": s["a2f_freq_meV"], "a2f": nan_a2f}),
        _record(short_id, {"a2f_freq_meV": s["a2f_freq_meV"], "a2f": s["a2f"][:-3]}),
        _record(sites_id, {
            "phdos_coarse_freq_meV": s["phdos_coarse_freq_meV"],
            "phdos_coarse_site": np.ones((n_sites[sites_id] + 2, s["phdos_coarse_freq_meV"].size)),
        }),
        _record(half_id, {"a2f": s["a2f"]}),
        _record(neg_id, **{"lambda": -0.2}),
        _record("ghost", tc_K=3.0),
        {"id": cif_ids[12], "formula": "NaCl"},
    ]
    _link_structures(sdir, structures_dir, [cif_ids[12]])
    wrong = load_structure(structures_dir / f"{cif_ids[12]}.cif").composition.formula.replace(" ", "")
    (sdir / "broken.cif").write_text("data_broken\n_cell_length_a 3.0\nthis is not a CIF\n")
    (sdir / "notes.txt").write_text("not a structure")
    write_labels(root, records + bad_records, "json")  # json.dumps writes NaN, as Python does
    data = load_directory(root)

    rejected = dict(data.rejected)
    assert "NaN" in rejected[nan_id]
    assert f"{s['a2f'].size - 3} values per spectrum" in rejected[short_id]
    k = n_sites[sites_id]
    assert f"{k + 2} site rows but the structure has {k} sites" in rejected[sites_id]
    assert "a2f given without a2f_freq_meV" in rejected[half_id]
    assert "lambda: must be ≥ 0" in rejected[neg_id]
    assert "no structure file" in rejected["ghost"]
    assert rejected[cif_ids[12]] == f"formula 'NaCl' disagrees with the structure ({wrong})"
    assert rejected["broken"].startswith("structures/broken.cif: cannot read structure")
    assert "unsupported structure file type" in rejected["structures/notes.txt"]
    assert len(data.rejected) == 9
    _check_entries(data.entries, ids, expected, structures_dir)  # the good ones all load


def test_csv_cell_not_json_list_rejected(tmp_path, structures_dir, cif_ids):
    root = tmp_path / "csvbad"
    _link_structures(root / "structures", structures_dir, cif_ids[:2])
    (root / "labels.csv").write_text(
        f'id,a2f_freq_meV,a2f\n{cif_ids[0]},"[1.0, 2.0]","[0.1, 0.2]"\n{cif_ids[1]},1.0;2.0,0.1;0.2\n'
    )
    data = load_directory(root)
    assert [e.id for e in data.entries] == [cif_ids[0]]
    np.testing.assert_array_equal(data.entries[0].a2f, [0.1, 0.2])
    assert data.rejected == [(cif_ids[1], "a2f_freq_meV: cell is not a JSON-encoded list")]


def test_splits_json(dataset, cif_ids):
    root, ids, records, _ = dataset
    write_labels(root, records, "json")
    (root / "splits.json").write_text(json.dumps(
        {"train": [int(ids[0]), ids[1], ids[2]], "val": [ids[3]], "test": [ids[4], "ghost"]}))
    data = load_directory(root)
    assert data.splits == {"train": list(ids[:3]), "val": [ids[3]], "test": [ids[4]]}
    assert data.rejected == [("ghost", 'listed in splits.json ("test") but has no structure file')]


def test_directory_errors(tmp_path, dataset):
    with pytest.raises(InputError, match="dataset folder not found"):
        load_directory(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no structures/ folder"):
        load_directory(tmp_path / "empty")
    (tmp_path / "empty" / "structures").mkdir()
    with pytest.raises(InputError, match="no structure files"):
        load_directory(tmp_path / "empty")
    root, _, records, _ = dataset
    write_labels(root, records, "json")
    write_labels(root, records, "csv")
    with pytest.raises(InputError, match="both labels.csv and labels.json"):
        load_directory(root)


# ---------------------------------------------------------------------------------------------
# Fingerprint
# ---------------------------------------------------------------------------------------------


def test_fingerprint_tracks_files(tmp_path):
    root = tmp_path / "fp"
    (root / "structures").mkdir(parents=True)
    f = root / "structures" / "1.cif"
    f.write_text("abc")
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    base = fingerprint(root)
    assert fingerprint(root) == base  # nothing changed

    os.utime(f, ns=(2_000_000_000, 2_000_000_000))
    assert fingerprint(root) == base  # touched, same content (a copy without -p, an rsync)

    f.write_text("abd")  # same size, new content
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    assert fingerprint(root) != base

    f.write_text("abc")
    (root / "labels.csv").write_text("id\n")
    assert fingerprint(root) != base  # file added
    (root / "labels.csv").unlink()
    assert fingerprint(root) == base
    f.rename(root / "structures" / "2.cif")
    assert fingerprint(root) != base  # file renamed


def test_a_copied_dataset_has_the_same_fingerprint(tmp_path):
    """Members trained on a dataset stay its members after the folder is copied (new mtimes)."""
    import shutil

    root = tmp_path / "ds"
    (root / "structures").mkdir(parents=True)
    (root / "structures" / "1.cif").write_text("abc")
    (root / "labels.csv").write_text("id,tc_K\n1,2.0\n")
    os.utime(root / "labels.csv", ns=(1_000_000_000, 1_000_000_000))
    copy = tmp_path / "scratch" / "ds"
    shutil.copytree(root, copy, copy_function=shutil.copy)  # contents only, fresh modification times
    assert (copy / "labels.csv").stat().st_mtime_ns != (root / "labels.csv").stat().st_mtime_ns
    assert fingerprint(copy) == fingerprint(root)


def test_fingerprint_follows_linked_folders(tmp_path):
    """A dataset whose structures/ is a link to a shared folder still hashes the linked files."""
    target = tmp_path / "shared_structures"
    target.mkdir()
    f = target / "1.cif"
    f.write_text("abc")
    root = tmp_path / "ds"
    root.mkdir()
    empty = fingerprint(root)
    (root / "structures").symlink_to(target, target_is_directory=True)
    linked = fingerprint(root)
    assert linked != empty
    f.write_text("abcd")
    assert fingerprint(root) != linked


def test_reads_the_demo_cache(tmp_path):
    """The demo set is cached in the directory format; reading it back gives the generated values."""
    demo = pytest.importorskip("betenet.data.sources.demo")
    root = demo.load_demo_dataset(cache_dir=tmp_path, n=4, seed=0)
    data = load_directory(root)
    assert data.rejected == [] and data.metadata["synthetic"] is True
    for e, ref in zip(data.entries, demo.build_demo_dataset(4, 0), strict=True):
        assert (e.id, e.formula, e.labels) == (ref.id, ref.formula, ref.labels)
        for key in ("a2f_freq_meV", "a2f", "phdos_coarse_site", "phdos_fine_site"):
            np.testing.assert_array_equal(getattr(e, key), getattr(ref, key), err_msg=key)
        assert e.extra["min_phonon_freq_meV"] == ref.min_phonon_freq_meV
