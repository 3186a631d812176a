"""The ``bee_net`` source (BEE-NET's Alexandria a2F database) on a five-row synthetic database.json
written in BEE-NET's schema: loading, the index files, the smearing switch, a missing column, a NaN
row, the check of the reported moments, and one very short ``experiment=bee_net`` training run."""

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from betenet.config import compose
from betenet.data.datamodule import BetenetDataModule
from betenet.data.sources import load_bee_net
from betenet.data.sources.bee_net import a2f_columns, bee_net_bootstrap, looks_like_bee_net
from betenet.errors import InputError
from betenet.inference import detect_source
from betenet.physics.properties import a2f_properties
from betenet.physics.units import MEV_TO_K

pytestmark = pytest.mark.usefixtures("one_thread")

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "bee_net.py"

A2F_FREQ = 0.30996 + 0.12398 * np.arange(480)  # BEE-NET's a2F grid starts near 0.31 meV
PH_FREQ = -2.9e-7 + 0.1 * np.arange(600)  # the coarse PhDOS grid starts at about 0


def _structures() -> dict[str, Structure]:
    fcc = lambda a, el: Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [el], [[0, 0, 0]])  # noqa: E731
    bcc = lambda a, el: Structure.from_spacegroup("Im-3m", Lattice.cubic(a), [el], [[0, 0, 0]])  # noqa: E731
    salt = lambda a, a_, b_: Structure.from_spacegroup(  # noqa: E731
        "Fm-3m", Lattice.cubic(a), [a_, b_], [[0, 0, 0], [0.5, 0.5, 0.5]])
    made = {"Al": fcc(4.05, "Al"), "Nb": bcc(3.30, "Nb"), "NaCl": salt(5.64, "Na", "Cl"),
            "Pb": fcc(4.95, "Pb"), "NbC": salt(4.47, "Nb", "C")}
    return {k: s.get_primitive_structure() for k, s in made.items()}


def _peak(x, centre, width, height=1.0):
    return height * np.exp(-0.5 * ((x - centre) / width) ** 2)


def _row(i: int, comp: str, structure: Structure) -> dict:
    centre = 8.0 + 6.0 * i
    a2f_2 = _peak(A2F_FREQ, centre, 2.5, 0.4)
    a2f_5 = _peak(A2F_FREQ, centre + 3.0, 4.0, 0.4)  # a visibly different spectrum at the other smearing
    props = a2f_properties(A2F_FREQ, a2f_2)
    site = np.stack([_peak(PH_FREQ, centre + 2.0 * k, 3.0) for k in range(len(structure))])
    return {
        "index": i, "comp": comp, "ID": f"agm00000{i:04d}", "dir_name": f"batch-a/{comp}_agm00000{i:04d}",
        "a2F_Freq_meV_sigma_5": A2F_FREQ.tolist(), "a2F_sigma_5": a2f_5.tolist(),
        "a2F_Freq_meV_sigma_2": A2F_FREQ.tolist(), "a2F_sigma_2": a2f_2.tolist(),
        "PhFreq_meV": A2F_FREQ.tolist(), "Tot_PhDOS": _peak(A2F_FREQ, centre, 3.0).tolist(),
        "ACH_w_sq_sigma_5": 100.0,
        "Ph_2x2x2_interpolated_Freq_meV": PH_FREQ.tolist(),
        "Ph_2x2x2_interpolated_Tot_DOS": site.sum(axis=0).tolist(),
        "Ph_2x2x2_interpolated_Site_Proj_DOS": site.tolist(),
        "AW": [float(sp.atomic_mass) for sp in structure.species], "unitcell_vol": structure.volume,
        # the authors' moments: lambda and omega_log / omega_2 in meV
        "phlam": props["lambda"], "phwlog": props["omega_log_K"] / MEV_TO_K, "phw2": props["omega_2_K"] / MEV_TO_K,
    }


def write_database(root, edit=None):
    """database.json (pandas' default orientation), structures/<index>.cif and indices/ under ``root``:
    the test split is the last row; member 0 draws rows 0, 1, 1, 2 and validates on 3; member 1 has
    no validation file. ``edit(rows)`` changes the rows before writing."""
    (root / "structures").mkdir(parents=True)
    rows = {}
    for i, (comp, s) in enumerate(_structures().items()):
        CifWriter(s).write_file(root / "structures" / f"{i}.cif")
        rows[i] = _row(i, comp, s)
    if edit:
        edit(rows)
    pd.DataFrame.from_dict(rows, orient="index").to_json(root / "database.json")
    (root / "indices").mkdir()
    (root / "indices" / "idx_test_full_cpd_id.txt").write_text("agm000000004\n")
    np.savetxt(root / "indices" / "idx_train__cpd_0.txt", [0, 1, 1, 2])  # "%.18e" floats, as BEE-NET's
    np.savetxt(root / "indices" / "idx_val__cpd_0.txt", [3])
    np.savetxt(root / "indices" / "idx_train__cpd_1.txt", [2, 3, 3, 3])
    return root


@pytest.fixture()
def bee(tmp_path):
    return write_database(tmp_path / "bee")


def test_load(bee):
    data = load_bee_net(bee)
    ids = [e.id for e in data.entries]
    assert ids == [f"agm00000{i:04d}" for i in range(5)] and data.rejected == []
    nacl = data.entries[2]
    assert nacl.formula == "NaCl" and len(nacl.structure) == 2
    assert nacl.phdos_coarse_site.shape == (2, PH_FREQ.size)  # coarse site PhDOS, one row per site (CPD)
    assert nacl.phdos_fine_site is None and nacl.extra["phdos_total"].size == A2F_FREQ.size  # total only
    assert nacl.extra["alexandria_index"] == "2"
    expected = a2f_properties(A2F_FREQ, nacl.a2f)
    assert nacl.labels["lambda"] == pytest.approx(expected["lambda"])
    assert nacl.labels["omega_log_K"] == pytest.approx(expected["omega_log_K"])  # phwlog (meV) → K
    assert data.metadata["moment_check"]["disagree"] == {"lambda": [], "omega_log_K": [], "omega_2_K": []}
    assert data.metadata["smearing"] == "sigma_2" and "fine" in data.metadata["site_dos_missing"]
    assert detect_source(bee) == "bee_net" and looks_like_bee_net(bee)
    (bee / "indices" / "idx_test_full_cpd_id.txt").unlink()
    assert detect_source(bee) == "bee_net"  # told from the release by its a2F columns
    assert load_bee_net(bee).splits is None  # no published test split: the data module draws one


def test_index_files(bee):
    data = load_bee_net(bee)
    assert data.splits == {"train": [f"agm00000{i:04d}" for i in range(4)], "test": ["agm000000004"]}
    drawn, val = bee_net_bootstrap(data.bootstrap_dir, 0, data.metadata)
    assert drawn == ["agm000000000", "agm000000001", "agm000000001", "agm000000002"]  # repeats kept
    assert val == ["agm000000003"]
    assert bee_net_bootstrap(data.bootstrap_dir, 1, data.metadata)[1] is None  # no idx_val__cpd_1.txt
    with pytest.raises(InputError, match="idx_train__cpd_7.txt"):
        bee_net_bootstrap(data.bootstrap_dir, 7, data.metadata)


def test_bootstrap_members_in_the_datamodule(bee, tmp_path):
    def member(seed):
        dm = BetenetDataModule(source="bee_net", root=str(bee), seed=seed, bootstrap="release",
                               cache_dir=str(tmp_path / "cache"), allow_isolated=True)
        dm.setup()
        return dm

    dm = member(0)
    assert dm.split_ids["test"] == ["agm000000004"] and dm.split_ids["val"] == ["agm000000003"]
    assert dict(zip(dm.member.train_ids, dm.member.weights)) == {"agm000000000": 1, "agm000000001": 2,
                                                                  "agm000000002": 1}
    dm = member(1)  # without a validation file: the out-of-bag rest of the training split
    assert dm.member.train_ids == ["agm000000002", "agm000000003"]
    assert dm.split_ids["val"] == ["agm000000000", "agm000000001"]


def test_smearing_switch(bee):
    two, five = load_bee_net(bee), load_bee_net(bee, smearing="sigma_5")
    assert not np.allclose(two.entries[0].a2f, five.entries[0].a2f)
    raw = json.loads((bee / "database.json").read_text())
    assert five.entries[0].a2f.tolist() == pytest.approx(raw["a2F_sigma_5"]["0"])
    with pytest.raises(InputError, match="sigma_2, sigma_5"):
        a2f_columns("sigma_3")


def test_missing_column(tmp_path):
    def drop(rows):
        for row in rows.values():
            del row["a2F_sigma_2"]
            row["unknown_extra"] = 1.0  # unknown columns are ignored

    root = write_database(tmp_path / "bee", drop)
    with pytest.raises(InputError, match="missing column 'a2F_sigma_2'") as err:
        load_bee_net(root)
    assert "\n" not in str(err.value)
    assert len(load_bee_net(root, smearing="sigma_5").entries) == 5  # that column is only needed for sigma_2


def test_nan_row_dropped_and_reported(tmp_path):
    root = write_database(tmp_path / "bee", lambda rows: rows[1].update(phw2=None))
    data = load_bee_net(root)
    assert [e.id for e in data.entries] == ["agm000000000", "agm000000002", "agm000000003", "agm000000004"]
    assert data.metadata["n_dropped_na"] == 1
    (entry_id, reason), = data.rejected
    assert entry_id == "agm000000001" and "phw2" in reason and "dropna" in reason


def test_moment_check_warns_once_with_the_count(tmp_path, caplog):
    def off(rows):
        rows[0]["phlam"] *= 1.5
        rows[3]["phwlog"] *= MEV_TO_K  # as if given in K

    root = write_database(tmp_path / "bee", off)
    with caplog.at_level(logging.WARNING, logger="betenet.data.sources.bee_net"):
        data = load_bee_net(root)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 of 5 entries" in warnings[0]
    check = data.metadata["moment_check"]
    assert check["disagree"]["lambda"] == ["agm000000000"] and check["disagree"]["omega_log_K"] == ["agm000000003"]
    assert len(data.entries) == 5  # the targets are the a2F: nothing is rejected for it


def test_fpd_is_refused_with_the_reason(bee, tmp_path):
    dm = BetenetDataModule(source="bee_net", root=str(bee), site_dos="fine", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(InputError, match="only a total fine PhDOS"):
        dm.setup()


def test_experiment_trains_a_member(bee, tmp_path):
    from betenet.training.run import train_member

    run = tmp_path / "run"
    cfg = compose(["experiment=bee_net", f"data.root={bee}", "variant=cpd", "seed=0", "logger=none",
                   f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={run}",
                   "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "callbacks.tempering.patience=1",
                   "model.net.em_dim=16", "model.net.mul=8", "model.net.radial_neurons=16"])
    assert cfg.data.source == "bee_net" and cfg.data.source_options.smearing == "sigma_2"
    assert cfg.model.mu_star == 0.09 and cfg.data.bootstrap == "release"
    train_member(cfg)
    assert (run / "checkpoints" / "final.ckpt").is_file()
    member = json.loads((run / "member.json").read_text())["fingerprint"]
    assert member["data"]["source_options"] == {"smearing": "sigma_2"}  # the smearing is part of the member
    boot = json.loads((run / "bootstrap.json").read_text())
    assert boot["train_ids"] == ["agm000000000", "agm000000001", "agm000000002"]  # idx_train__cpd_0.txt
    assert boot["train_weights"] == [1.0, 2.0, 1.0] and boot["test_ids"] == ["agm000000004"]

    # experiments/bee_net.py turns the run into BEE-NET's table, their figures beside ours
    spec = importlib.util.spec_from_file_location("bee_net_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    summary = script.main(["--sweep", f"CPD={run}", "--top-k", "1", "--out", str(tmp_path / "table")])
    assert summary["n"] == 1 and summary["models"]["CPD"]["mu_star"] == pytest.approx(0.09)
    table = (tmp_path / "table" / "table.md").read_text()
    assert "| CPD (ours) | 1 |" in table and "| CPD (BEE-NET) | 1049 | – / – / – | – / – / – | – / – / – | " \
        "0.79 / 0.87 / – |" in table and "| 0.86 |" in table
    assert (tmp_path / "table" / "models" / "CPD" / "evaluation.json").is_file()  # the `betenet evaluate` report
