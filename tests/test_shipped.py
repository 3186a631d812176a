"""The ensemble shipped inside the package (betenet/shipped/jarvis_tc, README's model card): found by name,
loaded with weights only, calibrated, and predicting a real crystal from nothing but its structure."""

import csv

import numpy as np
import pytest

from betenet.cli import main
from betenet.inference import load_ensemble
from betenet.inference.inputs import SYNTHETIC_WARNING
from betenet.inference.shipped import SHIPPED, resolve, shipped_dir

pytest.importorskip("sevenn", reason="the shipped ensemble's recipe needs the phonons extra (sevenn, phonopy)")
pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_shipped_name_has_its_files():
    for name, folder in SHIPPED.items():
        root = shipped_dir() / folder
        members = sorted(root.glob("seed_*"))
        assert len(members) >= 8, name
        for m in members:
            assert (m / "checkpoints" / "final.ckpt").is_file() and (m / "config_resolved.yaml").is_file()
        assert (root / "calibration.json").is_file()
        card = (root / "MODEL_CARD.md").read_text()  # written with the ensemble: its top end and elemental λ
        assert "MAE ≥ 5 K" in card and "AP @ 5 K" in card and "Fit of its own training entries" in card
        assert "λ MAE" in card
        size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        assert size < 5e6, f"{name}: {size / 1e6:.1f} MB"


def test_a_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve("jarvis-tc") == shipped_dir() / "jarvis_tc"
    (tmp_path / "jarvis-tc").mkdir()
    assert resolve("jarvis-tc").resolve() == (tmp_path / "jarvis-tc").resolve()
    assert resolve("elsewhere") == tmp_path.joinpath("elsewhere").relative_to(tmp_path)


def test_jarvis_tc_loads_by_name_with_its_calibration():
    ens = load_ensemble("jarvis-tc")
    assert len(ens) >= 8 and ens.calibration is not None and ens.features.model == "sevennet"
    assert ens.site_dos == "coarse" and ens.config["data"]["source"] == "directory"
    coverage, n = ens.element_coverage()
    assert n == len(ens) and {"Nb", "Mg", "B"} <= set(coverage)


def test_jarvis_tc_predicts_a_crystal_from_its_structure(tmp_path, capsys):
    """fcc Al at QE's lattice: the members compute its PhDOS and features with their own recipe and give a
    physical spectrum (lambda and omega_log in the ranges of real metals), no synthetic-data warning."""
    from betenet.dft.settings import qe_example_al

    cif = tmp_path / "Al.cif"
    qe_example_al().to(filename=str(cif))
    out = tmp_path / "pred.csv"
    assert main(["predict", "--ensemble", "jarvis-tc", str(cif), "--out", str(out)]) == 0
    row = next(csv.DictReader(open(out)))
    assert row["status"] == "ok" and SYNTHETIC_WARNING not in row["warnings"]
    assert 0.05 < float(row["lambda"]) < 3 and 30 < float(row["omega_log_K"]) < 800
    assert np.isfinite(float(row["tc_allen_dynes_K"])) and float(row["tc_allen_dynes_K_std"]) > 0
    capsys.readouterr()
