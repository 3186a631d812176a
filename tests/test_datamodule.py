"""BetenetDataModule on the demo set: splits, bootstrap weights, caching, variants, statistics."""

import numpy as np
import pytest
import torch

from betenet.data.datamodule import BetenetDataModule, reported_values
from betenet.data.sources.base import Entry
from betenet.data.spectra import bin_spectrum
from betenet.physics.properties import PROPERTIES
from betenet.physics.units import BinGrid


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def make(cache, **kw):
    dm = BetenetDataModule(source="demo", demo_size=40, cache_dir=str(cache), **kw)
    dm.setup()
    return dm


def test_bootstrap_member_splits(cache):
    dm = make(cache, seed=3)
    ids = dm.split_ids
    n_train_pool = len(ids["train"]) + len(ids["val"])
    assert set(ids["train"]).isdisjoint(ids["val"])
    assert set(ids["test"]).isdisjoint(set(ids["train"]) | set(ids["val"]))
    assert n_train_pool + len(ids["test"]) == len(dm.built.graphs)
    weights = np.asarray(dm.member.weights)
    assert weights.sum() == n_train_pool  # a resample of equal size, duplicates as weights
    batch = next(iter(dm.train_dataloader()))
    assert batch.num_graphs == len(ids["train"])  # full batch
    assert torch.allclose(batch.weight.double(), torch.as_tensor(weights, dtype=torch.float64))
    assert next(iter(dm.val_dataloader())).weight.eq(1).all()
    other = make(cache, seed=4)
    assert other.split_ids["test"] == ids["test"] and other.split_ids["train"] != ids["train"]


def test_unique_mode_and_minibatches(cache):
    dm = make(cache, seed=3, bootstrap="unique", batch_size=5)
    assert np.all(np.asarray(dm.member.weights) == 1)
    sizes = [b.num_graphs for b in dm.train_dataloader()]
    assert sum(sizes) == len(dm.split_ids["train"]) and max(sizes) == 5


def test_cache_reused_and_keyed_on_settings(cache):
    make(cache)
    files = sorted((cache / "graphs").glob("*.pt"))
    make(cache)
    assert sorted((cache / "graphs").glob("*.pt")) == files
    make(cache, r_max=3.5)
    assert len(list((cache / "graphs").glob("*.pt"))) == len(files) + 1


def test_filters_are_part_of_the_graph_cache_key(cache, tmp_path):
    """A dataset built with the duplicates filter must not be served to a run without it: the same
    crystal twice (a supercell of the first) is rejected in one, kept in the other."""
    ids, _ = small_directory(cache, tmp_path / "data", n=6)
    from betenet.data.structures import load_structure

    load_structure(tmp_path / "data" / "structures" / f"{ids[0]}.cif").make_supercell([1, 1, 2]).to(
        filename=str(tmp_path / "data" / "structures" / "twin.cif"))
    kw = dict(source="directory", root=str(tmp_path / "data"), cache_dir=str(tmp_path / "c"))
    with_filter = BetenetDataModule(**kw, filters=["duplicates"])
    with_filter.setup()
    assert "twin" not in with_filter.built.graphs
    without = BetenetDataModule(**kw, filters=[])
    without.setup()
    assert "twin" in without.built.graphs


def test_cpd_attributes_carry_site_phdos(cache):
    dm = make(cache, site_dos="coarse")
    g = next(iter(dm.built.graphs.values()))
    assert g.attr.shape[1] == 118 + 51 and g.x.shape[1] == 118 + 51
    assert torch.all(g.attr[:, 118:] >= 0) and g.attr[:, 118:].sum() > 0
    fine = make(cache, site_dos="fine")
    gf = fine.built.graphs[g.id]
    assert not torch.allclose(gf.attr[:, 118:], g.attr[:, 118:])


def test_graph_carries_binned_target_and_reported_values_apart(cache):
    dm = make(cache)
    g = next(iter(dm.built.graphs.values()))
    from betenet.data.sources.demo import load_demo_dataset
    from betenet.data.sources.directory import load_directory

    entry = next(e for e in load_directory(load_demo_dataset(cache, n=40)).entries if e.id == g.id)
    # y is the binned raw a2F; reported holds exactly the scalars the source ships, untouched
    np.testing.assert_allclose(g.y[0].double().numpy(), bin_spectrum(entry.a2f_freq_meV, entry.a2f), rtol=1e-6)
    np.testing.assert_allclose(g.reported[0].double().numpy(), [entry.labels[k] for k in PROPERTIES], rtol=1e-6)
    stats = dm.statistics()
    assert stats["graphs"] == 40 and stats["with_a2f"] == 40 and stats["num_neighbors"] > 1
    assert stats["reported_tc_K"] == 40


def test_reported_values_missing_stay_nan():
    entry = Entry(id="a", structure=None, formula="X", labels={"tc_K": 7.0})
    lab = reported_values(entry)
    assert lab[PROPERTIES.index("tc_K")] == 7.0
    assert np.isnan(lab[[i for i, n in enumerate(PROPERTIES) if n != "tc_K"]]).all()


def test_wider_spectrum_grid_sets_target_and_attribute_widths(cache):
    dm = make(cache, site_dos="coarse", spectrum={"n_bins": 61, "recipe": "physical"})
    g = next(iter(dm.built.graphs.values()))
    assert dm.grid == BinGrid(n_bins=61)
    assert g.y.shape == (1, 61) and g.attr.shape[1] == 118 + 61
    paper = make(cache, spectrum={"recipe": "paper"})
    physical = make(cache)
    assert not torch.equal(paper.built.graphs[g.id].y, physical.built.graphs[g.id].y)
    with pytest.raises(Exception, match="recipe"):
        make(cache, spectrum={"recipe": "smooth"})


def test_filters_reject_with_reasons_and_counts(cache, tmp_path):
    """A directory dataset with a duplicate (supercell), an unstable entry and a negative a2F."""
    import json
    import shutil

    from betenet.data.sources.demo import load_demo_dataset
    from betenet.data.structures import load_structure

    demo = load_demo_dataset(cache, n=40)
    records = json.loads((demo / "labels.json").read_text())[:12]
    root = tmp_path / "data"
    (root / "structures").mkdir(parents=True)
    for r in records:
        shutil.copy(demo / "structures" / f"{r['id']}.cif", root / "structures" / f"{r['id']}.cif")
    dup = dict(records[0], id="dup")
    for key in ("phdos_coarse_freq_meV", "phdos_coarse_site", "phdos_fine_freq_meV", "phdos_fine_site"):
        dup.pop(key)  # per-site spectra would not match the supercell's atom count
    load_structure(demo / "structures" / f"{records[0]['id']}.cif").make_supercell([2, 1, 1]).to(
        filename=str(root / "structures" / "dup.cif"))
    records[1]["min_phonon_freq_meV"] = -3.0
    records[2]["a2f"] = [v - 0.2 * max(records[2]["a2f"]) for v in records[2]["a2f"]]
    (root / "labels.json").write_text(json.dumps(records + [dup]))
    dm = BetenetDataModule(source="directory", root=str(root), cache_dir=str(tmp_path / "c"), test_fraction=0.25)
    dm.setup()
    reasons = dict(dm.built.rejected)
    assert set(reasons) == {"dup", records[1]["id"], records[2]["id"]}
    assert reasons["dup"].startswith("filter duplicates")
    assert reasons[records[1]["id"]].startswith("filter unstable")
    assert reasons[records[2]["id"]].startswith("filter negative_a2f")
    counts = {s.name: s.count for s in dm.filter_report.steps}
    assert counts == {"nan_spectra": 0, "unstable": 1, "negative_a2f": 1, "duplicates": 1}
    assert len(dm.built.graphs) == 10


def test_weight_above_the_window_is_warned_with_its_share(tmp_path, caplog):
    """An entry whose raw a2F has a high-frequency peak above 100.95 meV: the data module names it and
    the share of lambda the binned representation drops (computed here by the rectangle rule)."""
    import json
    import logging

    from pymatgen.core import Lattice, Structure

    from betenet.physics.properties import lambda_weights

    root = tmp_path / "data"
    (root / "structures").mkdir(parents=True)
    Structure(Lattice.cubic(3.3), ["Nb", "H"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(  # H: modes up to 150 meV are real
        filename=str(root / "structures" / "hydride.cif"))
    Structure(Lattice.cubic(4.05), ["Al"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]).to(
        filename=str(root / "structures" / "plain.cif"))
    w = np.arange(0.1, 200.0, 0.1)
    low = np.exp(-(((w - 20) / 4) ** 2))
    high = low + 2.0 * np.exp(-(((w - 150) / 8) ** 2))
    records = [{"id": "hydride", "a2f_freq_meV": w.tolist(), "a2f": high.tolist()},
               {"id": "plain", "a2f_freq_meV": w.tolist(), "a2f": low.tolist()}]
    (root / "labels.json").write_text(json.dumps(records))
    contrib = lambda_weights(w) * high
    share = contrib[w > 100.95].sum() / contrib.sum()
    with caplog.at_level(logging.WARNING, logger="betenet.data.datamodule"):
        dm = BetenetDataModule(source="directory", root=str(root), cache_dir=str(tmp_path / "c"), filters=[])
        dm.build_graphs()
    lines = [r.getMessage() for r in caplog.records if "above the" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("hydride:") and f"{100 * share:.1f} %" in lines[0]
    # a window reaching 200 meV keeps it: no warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="betenet.data.datamodule"):
        wide = BetenetDataModule(source="directory", root=str(root), cache_dir=str(tmp_path / "c"), filters=[],
                                 spectrum={"n_bins": 101})
        wide.build_graphs()
    assert not [r for r in caplog.records if "above the" in r.getMessage()]


# --------------------------------------------------------------------------------------------
# A directory dataset: the user's split, repeated labels rows, rejections on every setup
# --------------------------------------------------------------------------------------------
def small_directory(cache, root, n=12, split=None):
    """``n`` demo entries as a directory-format dataset (structures/ + labels.json [+ splits.json])."""
    import json
    import shutil

    from betenet.data.sources.demo import load_demo_dataset

    demo = load_demo_dataset(cache, n=40)
    records = json.loads((demo / "labels.json").read_text())[:n]
    (root / "structures").mkdir(parents=True)
    for r in records:
        shutil.copy(demo / "structures" / f"{r['id']}.cif", root / "structures")
    (root / "labels.json").write_text(json.dumps(records))
    if split is not None:
        (root / "splits.json").write_text(json.dumps(split))
    return [r["id"] for r in records], records


def test_given_split_without_test_is_kept(cache, tmp_path, caplog):
    ids, _ = small_directory(cache, tmp_path / "data", split=None)
    import json

    (tmp_path / "data" / "splits.json").write_text(json.dumps({"train": ids[:8], "test": []}))
    with caplog.at_level("WARNING"):
        dm = BetenetDataModule(source="directory", root=str(tmp_path / "data"), cache_dir=str(cache))
        dm.setup()
    # no test set is a valid choice: the training ids stay training ids (no 80/20 split replaces it)
    assert dm.split_ids["test"] == []
    assert set(dm.split_ids["train"]) | set(dm.split_ids["val"]) == set(ids[:8])
    assert "4 entries are in no split" in caplog.text


def test_repeated_labels_row_is_rejected_for_real(cache, tmp_path):
    import json

    from betenet.data.sources.directory import load_directory

    ids, records = small_directory(cache, tmp_path / "data")
    (tmp_path / "data" / "labels.json").write_text(json.dumps(records + [records[3]]))
    data = load_directory(tmp_path / "data")
    assert ids[3] in dict(data.rejected) and "appears 2 times" in dict(data.rejected)[ids[3]]
    assert ids[3] not in [e.id for e in data.entries]  # not loaded unlabelled either
    assert len(data.entries) == len(ids) - 1


def test_rejections_are_logged_on_every_setup(cache, tmp_path, caplog):
    small_directory(cache, tmp_path / "data", n=6)
    (tmp_path / "data" / "structures" / "broken.cif").write_text("")
    for attempt in range(2):  # the second setup reads the graph cache
        caplog.clear()
        with caplog.at_level("INFO"):
            dm = BetenetDataModule(source="directory", root=str(tmp_path / "data"), cache_dir=str(cache))
            dm.setup()
        assert ("graphs loaded from cache" in caplog.text) == (attempt == 1)
        assert "rejected broken: structures/broken.cif: file is empty" in caplog.text
        assert dm.built.rejected == [("broken", "structures/broken.cif: file is empty")]


def test_splits_file_replaces_the_sources_split(cache, tmp_path):
    """A cross-validation fold written outside the dataset: its train/test replace splits.json."""
    import json

    ids, _ = small_directory(cache, tmp_path / "data")
    (tmp_path / "data" / "splits.json").write_text(json.dumps({"train": ids[:10], "val": ids[10:]}))
    fold = tmp_path / "fold.json"
    fold.write_text(json.dumps({"train": ids[3:], "test": ids[:3]}))
    dm = BetenetDataModule(source="directory", root=str(tmp_path / "data"), cache_dir=str(cache),
                           splits_file=str(fold))
    dm.setup()
    assert dm.split_ids["test"] == ids[:3]
    assert set(dm.split_ids["train"]) | set(dm.split_ids["val"]) == set(ids[3:])
    own = BetenetDataModule(source="directory", root=str(tmp_path / "data"), cache_dir=str(cache))
    own.setup()  # the dataset's own train/val file: no test set, val as given
    assert own.split_ids["test"] == [] and sorted(own.split_ids["val"]) == sorted(ids[10:])
