"""Pretrained site features (betenet/pretrained): the numbers are the potential's own, the cache serves
them, an element the potential does not cover is a one-line reason, the widths in the registry are the
loaded models', and the features travel through training, the readout network and prediction."""

import json

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from betenet.errors import InputError

pytest.importorskip("sevenn", reason="the pretrained features need the phonons extra (sevenn)")


def fcc(element="Al", a=4.05):
    return Structure(Lattice.cubic(a), [element] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def nial():
    return Structure(Lattice.cubic(2.88), ["Ni", "Al"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture(scope="module")
def sevennet():
    from betenet.pretrained import FeatureProvider, FeatureSettings

    return FeatureProvider(FeatureSettings(model="sevennet"), cache_dir=False)


def test_features_are_the_potentials_own_last_block_output(sevennet):
    """A direct call of SevenNet-0 through its ASE calculator, with a hook on the last interaction
    block's gate, gives the same per-atom numbers; the energy the same call returns is a real one."""
    import torch

    s = nial()
    ours = sevennet.compute(s, "NiAl")
    calc = sevennet.extractor.calc
    captured = {}

    def keep(module, inputs, output):  # returns None: the output is left as it is
        captured["x"] = output["x"].detach().clone()

    hook = calc.model._modules["4_equivariant_gate"].register_forward_hook(keep)
    try:
        from pymatgen.io.ase import AseAtomsAdaptor

        atoms = AseAtomsAdaptor.get_atoms(s)
        atoms.calc = calc
        energy = atoms.get_potential_energy()
    finally:
        hook.remove()
    assert ours.shape == (2, 128)
    np.testing.assert_allclose(ours, captured["x"].double().numpy(), rtol=1e-5, atol=1e-6)
    assert -20 < energy / 2 < 0  # eV per atom: a bound crystal
    assert not np.allclose(ours[0], ours[1])  # Ni and Al differ
    assert torch.is_grad_enabled()


def test_norms_add_one_invariant_per_l_channel_and_are_rotation_invariant(sevennet):
    from betenet.pretrained import FeatureProvider, FeatureSettings

    settings = FeatureSettings(model="sevennet", layers=(3, -1), norms=True)
    assert settings.blocks == (3, 4) and settings.dim == 128 + 64 + 32 + 128
    provider = FeatureProvider(settings, cache_dir=False)
    provider._extractor = sevennet.extractor
    s = nial()
    s.perturb(0.05, min_distance=0.01)  # break the symmetry so that the l > 0 parts are not zero
    a = provider.compute(s)
    rotated = Structure(Lattice(s.lattice.matrix @ _rotation().T), s.species, s.frac_coords)
    np.testing.assert_allclose(provider.compute(rotated), a, rtol=1e-4, atol=1e-5)
    assert a.shape == (2, settings.dim) and np.abs(a[:, 128:224]).max() > 1e-4


def _rotation():
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("zyx", [0.3, -0.7, 1.1]).as_matrix()


def test_cache_serves_the_second_call_and_keys_on_the_settings(tmp_path, sevennet):
    from betenet.pretrained import FeatureProvider, FeatureSettings, feature_key

    provider = FeatureProvider(FeatureSettings(model="sevennet"), cache_dir=tmp_path)
    provider._extractor = sevennet.extractor
    first, hit1 = provider.get(fcc())
    second, hit2 = provider.get(fcc())
    assert (hit1, hit2) == (False, True) and provider.computed == 1 and provider.hits == 1
    np.testing.assert_array_equal(first, second)
    assert len(list(tmp_path.rglob("*.npy"))) == 1
    assert feature_key(fcc(), FeatureSettings(model="sevennet")) != feature_key(
        fcc(), FeatureSettings(model="sevennet", layers=(2,)))
    assert feature_key(fcc(), FeatureSettings(model="sevennet")) != feature_key(fcc(a=4.1), FeatureSettings(
        model="sevennet"))


def test_an_uncovered_element_is_one_line_and_the_rest_go_on(tmp_path, sevennet):
    from ase.data import chemical_symbols

    from betenet.data.sources.base import build_entry
    from betenet.pretrained import FeatureProvider, FeatureSettings, features_for_entries

    missing = next(e for e in chemical_symbols[1:95] if e not in sevennet.extractor.elements)
    provider = FeatureProvider(FeatureSettings(model="sevennet"), cache_dir=tmp_path)
    provider._extractor = sevennet.extractor
    entries = [build_entry("good", fcc(), "Al", {}), build_entry("bad", fcc(missing, 4.5), missing, {})]
    report = features_for_entries(entries, provider.settings, provider=provider)
    assert list(report.features) == ["good"] and list(report.failed) == ["bad"]
    assert report.failed["bad"] == f"element {missing} not covered by SevenNet-0 (11Jul2024)"
    assert "\n" not in report.failed["bad"]


@pytest.mark.parametrize("name", ["sevennet", "sevennet_l3i5"])
def test_registered_widths_are_the_loaded_models(name):
    from betenet.pretrained import get_feature_model

    model = get_feature_model(name)
    extractor = model.load()
    gates = [m for k, m in extractor.model._modules.items() if k.endswith("_equivariant_gate")]
    assert [str(g.gate.irreps_out) for g in gates] == list(model.block_irreps)


def test_settings_refuse_what_cannot_be_and_compose_with_every_variant():
    from betenet.config import compose
    from betenet.pretrained import FeatureSettings

    with pytest.raises(InputError, match="blocks 0..4"):
        FeatureSettings(model="sevennet", layers=(7,))
    with pytest.raises(InputError, match="unknown; use one of"):
        FeatureSettings(model="mace")
    assert FeatureSettings().dim == 0 and not FeatureSettings().enabled
    for variant, phdos in (("cso", 0), ("cpd", 51), ("fpd", 51)):
        assert compose([f"variant={variant}"]).model.net.in_dim == 118 + phdos
        assert compose([f"variant={variant}", "features=sevennet"]).model.net.in_dim == 118 + 128 + phdos
        assert compose([f"variant={variant}", "features=chgnet"]).model.net.in_dim == 118 + 64 + phdos
    cfg = compose(["variant=cpd", "features=sevennet", "features.layers=[3,4]", "features.norms=true"])
    assert cfg.model.net.in_dim == 118 + 352 + 51


def test_gbm_rows_carry_the_pretrained_mean_and_std():
    from betenet.models.gbm_baseline import FEATURE_NAMES, feature_names, features

    f = np.linspace(0.5, 40, 80)
    g = np.exp(-((f - 20) / 8) ** 2)
    site = np.arange(8.0).reshape(2, 4)
    row = features(nial(), f, g, site_features=site)
    assert len(row) == len(feature_names(4)) == len(FEATURE_NAMES) + 8
    np.testing.assert_allclose(row[-8:], [2, 3, 4, 5, 2, 2, 2, 2])


def test_readout_member_trains_on_features_and_predicts_a_new_structure(tmp_path, capsys):
    """A CPD member with SevenNet-0 features and the readout network, trained on a tiny folder whose
    PhDOS come from EMT; `betenet predict` on a bare new structure computes its PhDOS and features
    with the members' recipe and returns a physical spectrum."""
    import csv

    pytest.importorskip("phonopy")
    from ase.data import atomic_numbers, reference_states

    from betenet.cli import main
    from betenet.config import compose
    from betenet.training.run import train_member

    root = tmp_path / "tiny"
    (root / "structures").mkdir(parents=True)
    rows = []
    for k, el in enumerate(["Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt"]):
        fcc(el, reference_states[atomic_numbers[el]]["a"]).to(filename=str(root / "structures" / f"{k}.cif"))
        rows.append({"id": k, "tc_K": 0.5 + k})
    (root / "labels.json").write_text(json.dumps(rows))
    cfg = compose(["data=directory", f"data.root={root}", "variant=cpd", "features=sevennet", "model/net=readout",
                   "site_dos_source=mlip", "phonons.potential=emt", "phonons.mesh=6", "data.filters=[]",
                   f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / 'run'}",
                   "logger=none", "trainer.max_epochs=3", "trainer.enable_progress_bar=false", "test_after_fit=false",
                   "model.loss.mse=0", "model.loss.properties.tc_K=1.0"])
    train_member(cfg)
    recorded = json.dumps(json.loads(json.dumps(
        __import__("omegaconf").OmegaConf.to_container(__import__("omegaconf").OmegaConf.load(
            tmp_path / "run" / "config_resolved.yaml")))))
    assert '"model": "sevennet"' in recorded and '"arch": "readout"' in recorded
    assert list((tmp_path / "cache" / "features").rglob("*.npy"))
    new = tmp_path / "new.cif"
    nial().to(filename=str(new))
    out = tmp_path / "pred.csv"
    assert main(["predict", "--ensemble", str(tmp_path / "run"), str(new), "--out", str(out)]) == 0
    row = next(csv.DictReader(open(out)))
    assert row["status"] == "ok" and float(row["lambda"]) > 0
    capsys.readouterr()


@pytest.mark.parametrize("head", ["spectrum", "coupling"])
def test_the_equivariant_network_trains_on_features_with_either_head(head, tmp_path):
    """features compose with the paper's network: the demo set's CPD variant with SevenNet-0 features, one
    epoch, either head; the node attributes carry [one-hot, 128 features, 51 PhDOS bins]."""
    import hydra

    from betenet.config import compose
    from betenet.training.run import train_member

    cfg = compose(["experiment=demo_tiny", "variant=cpd", "features=sevennet", f"model.net.head={head}",
                   "data.demo_size=12", f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / 'run'}",
                   "logger=none", "trainer.max_epochs=1"])
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    graph = next(iter(dm.built.graphs.values()))
    assert graph.attr.shape[1] == cfg.model.net.in_dim == 118 + 128 + 51
    assert dm.built.metadata["features_provenance"]["model"] == "sevennet"
    train_member(cfg)
    assert (tmp_path / "run" / "checkpoints" / "final.ckpt").is_file()


def test_a_feature_setting_out_of_range_stops_training_in_one_line(tmp_path):
    """features.layers names a block the model does not have: train.py says so in one line, exit 2, and
    writes no run folder."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, str(root / "train.py"), "experiment=demo_tiny", "features=sevennet",
                          "features.layers=[7]", "logger=none", f"hydra.run.dir={tmp_path / 'run'}"],
                         capture_output=True, text=True, cwd=root, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert lines[-1] == "train.py: error: features.layers=[7]: sevennet has blocks 0..4 (or -5..-1)"
    assert "Traceback" not in res.stderr and not (tmp_path / "run" / "checkpoints").exists()
