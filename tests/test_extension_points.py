"""The extension points of README's Contributing, proved from this file alone: a toy data source and a toy
node attribute are registered here (no package file edited) and go through the normal configuration, data
module, training and prediction; the registries refuse what they do not know, with the known names."""

import json

import hydra
import numpy as np
import pytest
import torch
from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor

from betenet.config import compose, node_dim
from betenet.data.attributes import (NodeAttribute, NodeSettings, block_slice, get_attribute, node_width,
                                     register_attribute, unregister_attribute)
from betenet.data.datamodule import BetenetDataModule
from betenet.data.sources import (DataSource, SourceData, detect_source, get_source, register_source, source_names,
                                  unregister_source)
from betenet.data.sources.base import build_entry
from betenet.data.structures import MAX_Z
from betenet.errors import InputError

TOY_FILE = "toy.json"
TOY_ELEMENTS = ["Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt", "Pb", "V", "Nb", "Ta", "Mo", "W", "Cr"]
FREQ = np.arange(0.0, 100.0, 0.5)


# --------------------------------------------------------------------------------------------
# a toy source: one JSON file listing elements; each becomes its bulk crystal with an Einstein-like
# a2F and coarse site PhDOS around a frequency that falls with the atomic mass
# --------------------------------------------------------------------------------------------
def _gaussian(centre, width, area):
    g = np.exp(-0.5 * ((FREQ - centre) / width) ** 2)
    return area * g / np.trapezoid(g, FREQ)


def read_toy(root, strength: float = 0.5) -> SourceData:
    rows = json.loads((root / TOY_FILE).read_text())
    entries, rejected = [], []
    for row in rows:
        structure = AseAtomsAdaptor.get_structure(bulk(row["element"]))
        mass = float(structure[0].specie.atomic_mass)
        w_e = float(np.clip(30.0 * np.sqrt(27.0 / mass), 8.0, 45.0))
        values = {"a2f_freq_meV": FREQ, "a2f": _gaussian(w_e, 3.0, strength * w_e / 2),
                  "phdos_coarse_freq_meV": FREQ,
                  "phdos_coarse_site": np.stack([_gaussian(w_e, 4.0, 3.0)] * len(structure))}
        try:
            entries.append(build_entry(row["id"], structure, structure.composition.reduced_formula, values))
        except InputError as err:
            rejected.append((row["id"], err.reason))
    return SourceData(entries=entries, splits=None, rejected=rejected, metadata={"format": "toy"})


def is_toy(root) -> bool:
    return (root / TOY_FILE).is_file()


def electronegativity(entry, settings):
    """[n_atoms, 1]: each atom's Pauling electronegativity."""
    return np.array([[float(site.specie.X)] for site in entry.structure])


@pytest.fixture
def toy(tmp_path):
    """The toy source and the toy attribute, registered for one test and removed after it."""
    register_source(DataSource(name="toy", read=read_toy, detect=is_toy, options=("strength",)))
    register_attribute(NodeAttribute(name="toy_x", width=lambda settings: 1, from_entry=electronegativity))
    root = tmp_path / "toy_data"
    root.mkdir()
    (root / TOY_FILE).write_text(json.dumps([{"id": f"t{k}", "element": el} for k, el in enumerate(TOY_ELEMENTS)]))
    yield root
    unregister_source("toy")
    unregister_attribute("toy_x")


def toy_config(root, tmp_path, *overrides):
    return compose(["data=directory", "data.source=toy", f"data.root={root}", "data.node_attributes=[toy_x]",
                    f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / 'run'}", "logger=none",
                    "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "test_after_fit=false",
                    "model.net.em_dim=16", "model.net.mul=8", "model.net.radial_neurons=16", *overrides])


def test_a_toy_source_and_attribute_build_graphs_through_the_data_module(toy, tmp_path):
    cfg = toy_config(toy, tmp_path, "variant=cpd")
    assert cfg.model.net.in_dim == MAX_Z + 1 + 51  # the config's width reads the attribute registry
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup()
    assert len(dm.built.graphs) == len(TOY_ELEMENTS) and not dm.built.rejected
    settings = dm.node_settings
    toy_cols, dos_cols = block_slice("toy_x", settings), block_slice("site_dos", settings)
    assert (toy_cols.start, toy_cols.stop, dos_cols.stop) == (MAX_Z, MAX_Z + 1, MAX_Z + 1 + 51)
    plain = BetenetDataModule(source="toy", root=str(toy), site_dos="coarse", cache_dir=str(tmp_path / "c2"))
    plain.setup()
    for entry_id, g in dm.built.graphs.items():
        assert g.attr.shape[1] == g.x.shape[1] == cfg.model.net.in_dim
        element = AseAtomsAdaptor.get_structure(bulk(TOY_ELEMENTS[int(entry_id[1:])]))[0].specie
        assert torch.allclose(g.attr[:, toy_cols], torch.tensor(float(element.X)))
        assert torch.equal(g.x[:, toy_cols], g.attr[:, toy_cols])  # the default: the values as inputs too
        other = plain.built.graphs[entry_id]  # without the toy block, every other column is unchanged
        assert torch.equal(torch.cat([g.attr[:, :MAX_Z], g.attr[:, MAX_Z + 1:]], 1), other.attr)
        assert torch.equal(torch.cat([g.x[:, :MAX_Z], g.x[:, MAX_Z + 1:]], 1), other.x)
    assert dm.cache_key(dm.source_root()) != plain.cache_key(plain.source_root())  # the attribute is in the key


def test_a_member_trains_on_the_toy_source_and_predicts_with_the_toy_attribute(toy, tmp_path):
    from betenet.inference import load_ensemble
    from betenet.training.run import train_member

    cfg = toy_config(toy, tmp_path, "variant=cso")
    train_member(cfg)
    run = tmp_path / "run"
    assert (run / "checkpoints" / "final.ckpt").is_file()
    fingerprint = json.loads((run / "member.json").read_text())["fingerprint"]
    assert fingerprint["data"]["source"] == "toy" and fingerprint["data"]["node_attributes"] == ["toy_x"]
    ensemble = load_ensemble(run)
    assert ensemble.graph_settings["node_attributes"] == ("toy_x",)
    table = ensemble.predict_structures({"Rh": AseAtomsAdaptor.get_structure(bulk("Rh"))})
    assert table["status"].tolist() == ["ok"] and np.isfinite(table["lambda"]).all()


def test_the_toy_source_is_detected_chosen_on_the_command_line_and_takes_its_options(toy, tmp_path):
    from betenet.cli import build_parser

    assert detect_source(toy) == "toy"
    plain = tmp_path / "plain"
    plain.mkdir()
    assert detect_source(plain) == "directory"  # the fallback for a folder nobody else claims
    args = build_parser().parse_args(["evaluate", "--ensemble", "x", "--data", str(toy), "--data-source", "toy",
                                       "--out", str(tmp_path / "eval")])
    assert args.data_source == "toy"
    weak = BetenetDataModule(source="toy", root=str(toy), source_options={"strength": 0.1},
                             cache_dir=str(tmp_path / "c"))
    weak.setup()
    strong = BetenetDataModule(source="toy", root=str(toy), cache_dir=str(tmp_path / "c"))
    strong.setup()
    assert float(weak.built.graphs["t0"].y.sum()) < float(strong.built.graphs["t0"].y.sum())
    with pytest.raises(InputError, match=r"source_options.smearing: source toy takes no such option \(it takes: "
                                         r"strength\)"):
        BetenetDataModule(source="toy", root=str(toy), source_options={"smearing": "sigma_2"})


def test_unknown_names_are_refused_with_the_known_ones(toy, tmp_path):
    with pytest.raises(InputError, match="unknown data source; use one of bee_net, demo, directory, release, toy"):
        BetenetDataModule(source="nope", root=str(toy))
    with pytest.raises(InputError, match="unknown data source; use one of"):
        get_source("nope")
    with pytest.raises(InputError, match="nope: unknown node attribute; use one of element, features, toy_x, site_dos"):
        BetenetDataModule(source="toy", root=str(toy), node_attributes=["nope"])
    with pytest.raises(InputError, match="switched on by its own setting"):
        BetenetDataModule(source="toy", root=str(toy), node_attributes=["site_dos"])
    with pytest.raises(InputError, match="takes no such option"):
        BetenetDataModule(source="directory", root=str(toy), source_options={"smearing": "sigma_2"})
    with pytest.raises(ValueError, match="registered already"):
        register_source(DataSource(name="toy", read=lambda root: None))


def test_every_registered_source_has_its_config_and_the_widths_one_home():
    for name in source_names():
        source = get_source(name)
        assert compose([f"data={source.config_name}"]).data.source == name
    assert node_width() == MAX_Z == get_attribute("element").width(NodeSettings())
    for variant, site_dos in (("cso", "none"), ("cpd", "coarse"), ("fpd", "fine")):
        cfg = compose([f"variant={variant}"])
        settings = NodeSettings(site_dos=site_dos, n_bins=cfg.data.spectrum.n_bins)
        assert cfg.model.net.in_dim == node_width(settings) == node_dim(site_dos, cfg.data.spectrum.n_bins)
    from betenet.models.network import BeteNet

    assert BeteNet(em_dim=8, mul=4, radial_neurons=8).in_dim == node_width()
