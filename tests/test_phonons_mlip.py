"""Site-projected PhDOS from an ML potential (betenet.phonons): acoustic sum rule, per-atom
normalisation, site DOS against phonopy's own total DOS, the cache, the batch command (failures,
resumption, directory output), training with ``site_dos_source=mlip`` and the provenance warnings.

Physics tests use ASE's EMT (fast, in ASE itself) on small fcc-metal cells; the SevenNet/CHGNet
checks skip when the optional extra (``pip install 'betenet[phonons]'``) is absent, as do all tests
that need phonopy.
"""

import json
import math

import numpy as np
import pytest
from _structures import b2_nial, fcc_al, l12_cu3au
from pymatgen.core import Lattice, Structure

from betenet.errors import InputError
from betenet.phonons import (PhDOSProvider, PhononSettings, fill_site_dos, provenance_from_config,
                             provenance_warning, structure_hash)
from betenet.phonons.dos import SiteDOSAccumulator, gaussian_kernel
from betenet.physics.units import CMM1_TO_MEV, THZ_TO_MEV

EXTRA = "optional extra betenet[phonons] not installed (pip install 'betenet[phonons]')"
EMT = PhononSettings(potential="emt", mesh=8)  # a small mesh: the tests check identities, not convergence


def needs(module):
    return pytest.importorskip(module, reason=EXTRA)


@pytest.fixture(scope="module")
def phonopy():
    return needs("phonopy")


def riemann_tolerance(grid, dos):
    """|trapezoid - 3| allowed per site: the two rules differ by step (dos[0] + dos[-1]) / 2, plus rounding."""
    step = grid[1] - grid[0]
    return step * (dos[:, 0] + dos[:, -1]) / 2 + 1e-9


# --------------------------------------------------------------------------------------------
# The DOS accumulator on modes given directly (no potential needed)
# --------------------------------------------------------------------------------------------
def test_accumulator_matches_gaussians_and_starts_below_an_imaginary_mode():
    rng = np.random.default_rng(3)
    nq, n = 40, 2
    freq = np.sort(rng.uniform(2.0, 30.0, (nq, 3 * n)), axis=1)
    freq[0, 0] = -5.0  # one imaginary mode, beyond the 1 meV tolerance
    proj = rng.random((nq, 3 * n, n))
    proj /= proj.sum(axis=2, keepdims=True)
    w = np.full(nq, 1.0 / nq)
    acc = SiteDOSAccumulator(n, 0.1)
    acc.add(freq[:20], proj[:20], w[:20])  # in two chunks, as the mesh is run
    acc.add(freq[20:], proj[20:], w[20:])
    grid, dos = acc.finish(sigma_meV=1.0)
    assert grid[0] < -5.0 - 5.9 and grid[-1] > 30.0
    # reference: the Gaussians summed exactly at the grid points
    sigma, step = 1.0, 0.1
    g = np.exp(-0.5 * ((grid[None, None, :] - freq[..., None]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    exact = np.einsum("qbs,qbf,q->sf", proj, g, w)
    # linear spreading onto the grid interpolates each Gaussian: error <= 3n step²/8 max|g''|
    bound = 3 * n * step**2 / 8 / (sigma**3 * math.sqrt(2 * math.pi))
    assert np.abs(dos - exact).max() <= bound
    # random projections are not an eigenbasis: only the total (3n modes per q) is fixed here
    assert dos.sum() * step == pytest.approx(3 * n, abs=1e-12)


def test_accumulator_reflects_acoustic_tails_at_zero():
    freq = np.array([[0.0, 0.0, -0.3, 0.2, 0.4, 0.5]])  # noise around 0: within the 1 meV tolerance
    proj = np.full((1, 6, 2), 0.5)
    acc = SiteDOSAccumulator(2, 0.1)
    acc.add(freq, proj, [1.0])
    grid, dos = acc.finish(sigma_meV=1.0)
    assert grid[0] == 0.0 and np.all(dos >= 0)
    assert np.allclose(dos.sum(axis=1) * 0.1, 3.0, atol=1e-12)
    assert gaussian_kernel(1.0, 0.1).sum() * 0.1 == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# Physics with a real potential (EMT; SevenNet / CHGNet where installed)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def calculators():
    """One calculator per potential for the module (SevenNet takes seconds to load)."""
    from betenet.phonons import make_calculator

    made = {}

    def get(name):
        if name in ("sevenn", "chgnet"):
            needs(name)
        if name not in made:
            made[name] = make_calculator(name)
        return made[name]

    return get


@pytest.mark.parametrize("potential,structure", [("emt", b2_nial()), ("emt", l12_cu3au()),
                                                 ("sevenn", b2_nial()), ("chgnet", b2_nial())])
def test_acoustic_sum_rule_three_zero_modes_at_gamma(phonopy, calculators, potential, structure):
    from betenet.phonons import site_phdos

    calculator = calculators(potential)
    result = site_phdos(structure, "coarse", PhononSettings(potential=potential, mesh=4), calculator, name="cell")
    gamma = np.sort(np.abs(result.gamma_meV))
    tol = 1e-3 * gamma.max()  # stated a priori: 0.1 % of the highest Γ mode
    assert gamma.size == 3 * len(structure)
    assert np.all(gamma[:3] <= tol) and np.all(gamma[3:] > tol)


def test_site_dos_integrates_to_three_and_sums_to_phonopy_total(phonopy):
    from betenet.phonons import make_calculator
    from betenet.phonons.harmonic import force_constants, mesh_modes
    from pymatgen.io.ase import AseAtomsAdaptor

    structure, mesh, sigma, step = l12_cu3au(), 8, 1.0, 0.1
    phonon, _ = force_constants(AseAtomsAdaptor.get_atoms(structure), make_calculator("emt"), (2, 2, 2))
    acc = SiteDOSAccumulator(len(structure), step)
    for freq, proj, w in mesh_modes(phonon, mesh, chunk=100):
        acc.add(freq, proj, w)
    grid, dos = acc.finish(sigma)
    integral = np.trapezoid(dos, grid, axis=1)
    assert np.all(np.abs(integral - 3.0) <= riemann_tolerance(grid, dos))
    # phonopy's own total DOS: symmetry-reduced mesh, Gaussians evaluated directly (states/THz)
    phonon.run_mesh([mesh] * 3, is_gamma_center=True)
    phonon.run_total_dos(sigma=sigma / THZ_TO_MEV, freq_min=grid[0] / THZ_TO_MEV, freq_max=grid[-1] / THZ_TO_MEV,
                         freq_pitch=step / THZ_TO_MEV, use_tetrahedron_method=False)
    ref_f = phonon.total_dos.frequency_points * THZ_TO_MEV
    assert ref_f.shape == grid.shape and np.allclose(ref_f, grid, atol=1e-9)
    ref = phonon.total_dos.dos / THZ_TO_MEV
    away = grid > 6 * sigma  # above the reflected acoustic tails (phonopy does not reflect)
    bound = 3 * len(structure) * step**2 / 8 / (sigma**3 * math.sqrt(2 * math.pi))  # linear spreading
    assert np.abs(dos.sum(axis=0)[away] - ref[away]).max() <= bound


def test_sevenn_al_mean_frequency_within_10_percent_of_qe(phonopy, calculators, qe_al_dir):
    from betenet.dft.settings import qe_example_al
    from betenet.phonons import site_phdos

    calculator = calculators("sevenn")
    qe = np.loadtxt(qe_al_dir / "phonon.dos")
    f_qe, g_qe = qe[:, 0] * CMM1_TO_MEV, qe[:, 1]
    mean_qe = np.trapezoid(f_qe * g_qe, f_qe) / np.trapezoid(g_qe, f_qe)
    result = site_phdos(qe_example_al(), "fine", PhononSettings(potential="sevenn"), calculator, name="Al")
    assert result.supercell == (4, 4, 4)  # the q-grid of QE's Al example
    f, g = result.freq_meV, result.total_dos
    mean = np.trapezoid(f * g, f) / np.trapezoid(g, f)
    assert abs(mean - mean_qe) <= 0.10 * mean_qe


# --------------------------------------------------------------------------------------------
# Cache and fill
# --------------------------------------------------------------------------------------------
def test_cache_hit_recomputes_nothing_and_settings_change_the_key(phonopy, tmp_path, monkeypatch):
    import betenet.phonons.fill as fill

    first = PhDOSProvider(EMT, tmp_path)
    a, from_cache = first.get(b2_nial(), "coarse", name="NiAl")
    assert not from_cache and first.computed == 1

    def boom(*args, **kwargs):
        raise AssertionError("recomputed despite a cache hit")

    monkeypatch.setattr(fill, "site_phdos", boom)
    again = PhDOSProvider(EMT, tmp_path)
    b, from_cache = again.get(b2_nial(), "coarse", name="NiAl")
    assert from_cache and again.hits == 1 and again.computed == 0
    assert np.array_equal(a.site_dos, b.site_dos) and np.array_equal(a.freq_meV, b.freq_meV)
    assert b.min_freq_meV == a.min_freq_meV and b.info["potential_version"] == a.info["potential_version"]
    with pytest.raises(AssertionError, match="recomputed"):  # another mesh is another key
        PhDOSProvider(PhononSettings(potential="emt", mesh=6), tmp_path).get(b2_nial(), "coarse")


def test_structure_hash_follows_content_and_site_order():
    s = l12_cu3au()
    moved = s.copy()
    moved.translate_sites([1], [1.0, 0, 0], frac_coords=True, to_unit_cell=False)  # a lattice vector away
    assert structure_hash(moved) == structure_hash(s)
    reordered = Structure(s.lattice, [s[k].specie for k in (1, 0, 2, 3)], [s[k].frac_coords for k in (1, 0, 2, 3)])
    assert structure_hash(reordered) != structure_hash(s)
    strained = Structure(Lattice.cubic(3.76), s.species, s.frac_coords)
    assert structure_hash(strained) != structure_hash(s)


def test_fill_keeps_given_dos_reports_failures_and_replaces_on_request(phonopy, tmp_path):
    from betenet.data.sources.base import build_entry

    given = build_entry("given", fcc_al(), "Al", {"phdos_coarse_freq_meV": [0.0, 10.0, 20.0],
                                                  "phdos_coarse_site": [[0.1, 0.2, 0.0]]})
    missing = build_entry("missing", b2_nial(), "NiAl", {})
    fe = build_entry("fe", Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]]), "Fe", {})
    report = fill_site_dos([given, missing, fe], "coarse", EMT, tmp_path)
    assert report.kept == ["given"] and report.computed == ["missing"]
    assert "does not cover element(s) Fe" in report.failed["fe"] and fe.phdos_coarse_site is None
    assert missing.phdos_coarse_site.shape[0] == 2 and list(given.phdos_coarse_freq_meV) == [0.0, 10.0, 20.0]
    assert report.provenance["given"]["source"] == "dataset" and report.provenance["missing"]["source"] == "mlip"
    replaced = fill_site_dos([given], "coarse", EMT, tmp_path, replace=True)
    assert replaced.computed == ["given"] and given.phdos_coarse_freq_meV[-1] > 20.0


def test_prediction_hook_uses_the_ensembles_recipe_and_warns_on_mixed_origins(phonopy, tmp_path):
    from betenet.data.sources.base import build_entry
    from betenet.phonons import mlip_provenance, site_dos_for_prediction

    trained = mlip_provenance("coarse", EMT)
    dft = {"phdos_coarse_freq_meV": [0.0, 10.0, 20.0], "phdos_coarse_site": [[0.1, 0.2, 0.0]]}
    new, labelled = build_entry("new", b2_nial(), "NiAl", {}), build_entry("lab", fcc_al(), "Al", dft)
    report, warnings = site_dos_for_prediction([new, labelled], "coarse", trained, cache_dir=tmp_path)
    assert report.computed == ["new"] and report.kept == ["lab"]
    assert report.settings.potential == "emt" and report.settings.mesh == EMT.mesh  # the ensemble's recipe
    assert warnings["new"] is None and "origin mismatch" in warnings["lab"]
    # a DFT-trained ensemble computes nothing; PhDOS from a `betenet phonons` folder are flagged
    folder = {"site_dos_provenance": {**trained, "kinds": ["coarse"]}}
    report, warnings = site_dos_for_prediction([labelled], "coarse", {"source": "dataset", "kind": "coarse"},
                                               metadata=folder)
    assert report is None and "ML-potential PhDOS (emt)" in warnings["lab"]


# --------------------------------------------------------------------------------------------
# The batch command
# --------------------------------------------------------------------------------------------
BROKEN_CIF = "data_broken\n_cell_length_a 4.0\nthis is not a CIF loop\n"
PARTIAL_CIF = """data_partial
_symmetry_space_group_name_H-M 'P 1'
_cell_length_a 4.05
_cell_length_b 4.05
_cell_length_c 4.05
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Al1 Al 0 0 0 0.5
Cu1 Cu 0 0 0 0.5
"""
UNKNOWN_CIF = PARTIAL_CIF.replace("partial", "unknown").replace("Al1 Al 0 0 0 0.5\nCu1 Cu 0 0 0 0.5",
                                                                  "Xx1 Xx 0 0 0 1.0")


@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    fcc_al().to(filename=str(d / "al.cif"))
    b2_nial().to(filename=str(d / "nial.cif"))
    (d / "broken.cif").write_text(BROKEN_CIF)
    (d / "partial.cif").write_text(PARTIAL_CIF)
    (d / "unknown.cif").write_text(UNKNOWN_CIF)
    Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(filename=str(d / "fe.cif"))
    return d


def _rows(out):
    return {r["id"]: r for r in json.loads((out / "phonons_report.json").read_text())["rows"]}


def test_batch_reports_failures_goes_on_and_writes_a_loadable_folder(phonopy, inputs, tmp_path):
    from betenet.data.sources.directory import load_directory
    from betenet.phonons.batch import run_batch

    out = tmp_path / "out"
    lines = []
    summary = run_batch([str(inputs), str(tmp_path / "missing.cif")], out, EMT, kinds=("coarse", "fine"),
                        cache_dir=tmp_path / "cache", echo=lines.append)
    rows = _rows(out)
    assert summary["computed"] == 2 and summary["failed"] == 5 and len(lines) == 7
    assert rows["al"]["status"] == rows["nial"]["status"] == "computed"
    assert "cannot read structure" in rows["broken"]["reason"]
    assert "partially occupied" in rows["partial"]["reason"]
    assert "unknown" in rows["unknown"]["reason"] or "Xx" in rows["unknown"]["reason"]
    assert "does not cover element(s) Fe" in rows["fe"]["reason"]
    assert rows[str(tmp_path / "missing.cif")]["reason"] == "file not found"
    data = load_directory(out)
    assert data.rejected == [] and sorted(e.id for e in data.entries) == ["al", "nial"]
    nial = next(e for e in data.entries if e.id == "nial")
    assert nial.phdos_coarse_site.shape[0] == nial.phdos_fine_site.shape[0] == 2
    assert np.isfinite(nial.extra["min_phonon_freq_meV"])
    for kind in ("coarse", "fine"):
        grid, dos = getattr(nial, f"phdos_{kind}_freq_meV"), getattr(nial, f"phdos_{kind}_site")
        # written rounded to 1e-8 states/meV: allow that on each of the grid's values
        tol = riemann_tolerance(grid, dos) + 1e-8 * grid.size * (grid[1] - grid[0])
        assert np.all(np.abs(np.trapezoid(dos, grid, axis=1) - 3.0) <= tol)
    meta = data.metadata["site_dos_provenance"]
    assert meta["source"] == "mlip" and meta["potential"] == "emt" and meta["kinds"] == ["coarse", "fine"]
    state = json.loads((out / "phonons" / "nial.json").read_text())
    assert state["kinds"]["fine"]["supercell"] == [4, 4, 4]  # ceil(10 Å / 2.88 Å)
    # each labels row names the structure its PhDOS belong to: the labels copied beside other structures
    # whose ids collide are refused row by row, not used
    from betenet.data.structures import structure_hash

    labels = {r["id"]: r for r in json.loads((out / "labels.json").read_text())}
    assert labels["nial"]["structure_hash"] == structure_hash(nial.structure)
    swapped = tmp_path / "swapped"
    (swapped / "structures").mkdir(parents=True)
    (swapped / "labels.json").write_text((out / "labels.json").read_text())
    for mine, other in (("al", "nial"), ("nial", "al")):
        src = next((out / "structures").glob(f"{other}.*"))
        (swapped / "structures" / f"{mine}{src.suffix}").write_bytes(src.read_bytes())
    assert sorted(e.id for e in load_directory(swapped).entries) == []


def test_batch_resumes_without_recomputing_and_survives_an_interruption(phonopy, inputs, tmp_path, monkeypatch):
    import betenet.phonons.fill as fill
    from betenet.phonons.batch import run_batch

    out, cache = tmp_path / "out", tmp_path / "cache"
    real = fill.site_phdos
    calls = []

    def interrupted(structure, kind, settings, calculator, name):
        calls.append(name)
        if name == "al":
            raise KeyboardInterrupt
        return real(structure, kind, settings, calculator, name=name)

    monkeypatch.setattr(fill, "site_phdos", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_batch([str(inputs / "al.cif"), str(inputs / "nial.cif")], out, EMT, cache_dir=cache, echo=lambda _: None)
    assert calls == ["nial", "al"]  # largest first (2 atoms, then 1)
    assert [r["id"] for r in json.loads((out / "labels.json").read_text())] == ["nial"]  # kept though interrupted
    monkeypatch.setattr(fill, "site_phdos", real)
    run_batch([str(inputs / "al.cif"), str(inputs / "nial.cif")], out, EMT, cache_dir=cache, echo=lambda _: None)
    assert {k: r["status"] for k, r in _rows(out).items()} == {"al": "computed", "nial": "done"}
    (out / "phonons" / "al.json").unlink()  # state lost: the shared cache still has it
    monkeypatch.setattr(fill, "site_phdos", lambda *a, **k: pytest.fail("recomputed"))
    run_batch([str(inputs / "al.cif"), str(inputs / "nial.cif")], out, EMT, cache_dir=cache, echo=lambda _: None)
    assert {k: r["status"] for k, r in _rows(out).items()} == {"al": "cached", "nial": "done"}
    with pytest.raises(InputError, match="other settings"):
        run_batch([str(inputs / "al.cif")], out, PhononSettings(potential="emt", mesh=6), cache_dir=cache)


def test_batch_carries_dataset_labels(phonopy, tmp_path):
    from betenet.data.sources.directory import load_directory
    from betenet.phonons.batch import run_batch

    data = tmp_path / "data"
    (data / "structures").mkdir(parents=True)
    fcc_al().to(filename=str(data / "structures" / "7.cif"))
    (data / "labels.json").write_text(json.dumps([{"id": 7, "tc_K": 1.2}]))
    run_batch([str(data)], tmp_path / "out", EMT, cache_dir=tmp_path / "cache", echo=lambda _: None)
    (entry,) = load_directory(tmp_path / "out").entries
    assert entry.id == "7" and entry.labels == {"tc_K": 1.2} and entry.phdos_coarse_site.shape[0] == 1
    with pytest.raises(InputError, match="must not be an input folder"):
        run_batch([str(data)], data, EMT, cache_dir=tmp_path / "cache")


def test_relax_moves_atoms_to_the_potentials_minimum_and_writes_that_structure(phonopy, tmp_path):
    from betenet.data.sources.directory import load_directory
    from betenet.phonons.batch import run_batch

    off = l12_cu3au()
    off.translate_sites([0], [0.03, 0.0, 0.0], frac_coords=False)  # Au 0.03 Å off its site
    off.to(filename=str(tmp_path / "off.cif"))
    settings = PhononSettings(potential="emt", mesh=6, relax=True, relax_fmax=0.005)
    run_batch([str(tmp_path / "off.cif")], tmp_path / "out", settings, cache_dir=tmp_path / "cache",
              echo=lambda _: None)
    state = json.loads((tmp_path / "out" / "phonons" / "off.json").read_text())
    info = state["kinds"]["coarse"]["info"]
    assert state["structure_file"] == "structures/off.extxyz"
    assert info["relax_converged"] and info["relax_max_force_eV_A"] <= settings.relax_fmax
    from betenet.data.structures import load_structure

    given = load_structure(tmp_path / "off.cif")  # the CIF writer lists Au last
    (entry,) = load_directory(tmp_path / "out").entries
    shift = entry.structure.cart_coords - given.cart_coords
    assert np.abs(shift).max() > 1e-3  # it moved ...
    assert [s.specie.symbol for s in entry.structure] == [s.specie.symbol for s in given]  # ... in site order
    assert np.allclose(entry.structure.lattice.matrix, given.lattice.matrix)  # cell fixed


def test_cli_exit_status_nonzero_only_when_nothing_succeeded(phonopy, inputs, tmp_path, capsys):
    from betenet.cli import main

    cache = ["--cache-dir", str(tmp_path / "cache"), "--potential", "emt", "--mesh", "6"]
    assert main(["phonons", str(inputs / "broken.cif"), str(inputs / "fe.cif"), "--out", str(tmp_path / "a")]
                + cache) == 2
    assert "no structure succeeded" in capsys.readouterr().err
    assert main(["phonons", str(inputs / "broken.cif"), str(inputs / "al.cif"), "--out", str(tmp_path / "b"),
                 "--json"] + cache) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["computed"] == 1 and summary["failed"] == 1


def test_missing_extra_names_the_install_command(monkeypatch):
    import sys

    from betenet.phonons import PotentialUnavailable, make_calculator

    monkeypatch.setitem(sys.modules, "sevenn", None)  # import sevenn now raises ImportError
    with pytest.raises(PotentialUnavailable, match=r"pip install 'betenet\[phonons\]'"):
        make_calculator("sevenn")


# --------------------------------------------------------------------------------------------
# Training with site_dos_source=mlip
# --------------------------------------------------------------------------------------------
@pytest.fixture
def structures_only(tmp_path):
    """A dataset folder with structures and a tc_K column only: no PhDOS anywhere."""
    from ase.data import atomic_numbers, reference_states

    root = tmp_path / "tiny"
    (root / "structures").mkdir(parents=True)
    rows = []
    metals = ["Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt"]
    for k, el in enumerate(metals):
        fcc_al(reference_states[atomic_numbers[el]]["a"]).replace_species({"Al": el}).to(
            filename=str(root / "structures" / f"{k}.cif"))
        rows.append({"id": k, "tc_K": 0.5 + k})
    for k, (a, b) in enumerate(zip(metals, metals[1:] + metals[:1]), start=len(metals)):
        Structure(Lattice.cubic(3.0), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(
            filename=str(root / "structures" / f"{k}.cif"))
        rows.append({"id": k, "tc_K": 0.2 * k})
    (root / "labels.json").write_text(json.dumps(rows))
    return root


def _compose(overrides):
    from betenet.config import compose

    return compose(overrides)


def test_train_config_with_mlip_source_builds_graphs_and_records_provenance(phonopy, structures_only, tmp_path,
                                                                            monkeypatch):
    import hydra
    from omegaconf import OmegaConf

    import betenet.phonons.fill as fill
    from betenet.training.run import train_member

    cfg = _compose(["experiment=demo_tiny", "data=directory", f"data.root={structures_only}", "variant=cpd",
                    "site_dos_source=mlip", "phonons.potential=emt", "phonons.mesh=6",
                    f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / 'run'}",
                    "logger=none", "trainer.max_epochs=1", "model.loss.mse=0", "model.loss.properties.tc_K=1.0"])
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    assert len(dm.built.graphs) == 14 and dm.built.rejected == []
    assert all(g.attr.shape[1] == 118 + 51 and float(g.attr[:, 118:].sum()) > 0 for g in dm.built.graphs.values())
    prov = dm.site_dos_provenance
    assert prov["source"] == "mlip" and prov["potential"] == "emt" and prov["n_mlip"] == 14
    assert list((tmp_path / "cache" / "phonons").rglob("*.npz"))  # cached under <cache_dir>/phonons

    monkeypatch.setattr(fill, "site_phdos", lambda *a, **k: pytest.fail("recomputed"))  # all cached now
    train_member(cfg)
    recorded = OmegaConf.to_container(OmegaConf.load(tmp_path / "run" / "config_resolved.yaml"))
    trained = provenance_from_config(recorded)
    assert trained["source"] == "mlip" and trained["potential"] == "emt" and trained["mesh"] == 6
    assert provenance_warning(trained, {"source": "dataset", "kind": "coarse"}) is not None


def test_dataset_source_keeps_the_old_behaviour(structures_only, tmp_path):
    from betenet.data.datamodule import BetenetDataModule

    dm = BetenetDataModule(source="directory", root=str(structures_only), site_dos="coarse",
                           cache_dir=str(tmp_path / "c"))
    with pytest.raises(InputError, match="no usable entries"):
        dm.setup("fit")
    assert all("no coarse site-projected phonon DOS" in r for _, r in dm.built.rejected)
    assert "phonons" not in json.dumps(dm.cache_key(structures_only))
    with pytest.raises(InputError, match="site_dos_source"):
        BetenetDataModule(source="directory", root=str(structures_only), site_dos_source="qe")


# --------------------------------------------------------------------------------------------
# Provenance and settings
# --------------------------------------------------------------------------------------------
def test_provenance_warning_cases():
    from betenet.phonons import mlip_provenance

    sevenn, chgnet = PhononSettings(), PhononSettings(potential="chgnet")
    dft = {"source": "dataset", "kind": "coarse"}
    ml = mlip_provenance("coarse", sevenn)
    assert provenance_warning(dft, dft) is None and provenance_warning(ml, ml) is None
    assert "trained on the dataset's own PhDOS" in provenance_warning(dft, ml)
    assert "ML-potential PhDOS (sevenn)" in provenance_warning(ml, dft)
    assert "potential 'sevenn' -> 'chgnet'" in provenance_warning(ml, mlip_provenance("coarse", chgnet))
    assert "mesh 20 -> 10" in provenance_warning(ml, mlip_provenance("coarse", PhononSettings(mesh=10)))
    assert provenance_warning({"source": "none", "kind": "none"}, ml) is None
    assert provenance_warning({**ml, "source": "fill"}, dft) is None
    assert provenance_warning(None, ml) is None


def test_provenance_from_older_configs():
    assert provenance_from_config({"data": {"site_dos": "none"}}) == {"source": "none", "kind": "none"}
    assert provenance_from_config({"data": {"site_dos": "fine"}}) == {"source": "dataset", "kind": "fine"}
    cfg = {"data": {"site_dos": "coarse", "site_dos_source": "mlip", "phonons": {"potential": "chgnet", "mesh": 20}}}
    assert provenance_from_config(cfg) == {"source": "mlip", "kind": "coarse", "potential": "chgnet", "mesh": 20}
    assert provenance_from_config(None) is None


def test_settings_validate_and_size_the_fine_supercell():
    assert PhononSettings().supercell_diag("coarse", np.eye(3) * 3.0) == (2, 2, 2)
    assert PhononSettings().supercell_diag("fine", np.diag([3.0, 3.0, 12.0])) == (4, 4, 2)  # ceil(10/3); floor 2
    with pytest.raises(InputError, match="unknown setting"):
        PhononSettings.from_mapping({"potentail": "sevenn"})
    with pytest.raises(InputError, match="unknown; use one of"):
        PhononSettings(potential="mace")
    with pytest.raises(InputError, match="positive"):
        PhononSettings(mesh=0)
    assert "device" not in PhononSettings(device="cpu").key()
    from betenet.phonons import mlip_provenance

    recipe = mlip_provenance("fine", PhononSettings(potential="chgnet", mesh=12, fine_length_A=8.0))
    assert PhononSettings.from_provenance(recipe) == PhononSettings(potential="chgnet", mesh=12, fine_length_A=8.0)


def test_predict_with_an_mlip_ensemble_computes_phdos_and_flags_other_origins(phonopy, structures_only, tmp_path,
                                                                              capsys):
    """`betenet predict` with an ensemble trained on ML-potential PhDOS: a bare structure gets its
    PhDOS from the members' own potential and recipe (no warning); a labels file of dataset PhDOS is
    used but flagged in the warnings column (another origin than the members')."""
    import csv

    from betenet.cli import main
    from betenet.data.structures import load_structure
    from betenet.training.run import train_member

    cfg = _compose(["experiment=demo_tiny", "data=directory", f"data.root={structures_only}", "variant=cpd",
                    "site_dos_source=mlip", "phonons.potential=emt", "phonons.mesh=6",
                    f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / 'run'}",
                    "logger=none", "trainer.max_epochs=2", "model.loss.mse=0", "model.loss.properties.tc_K=1.0"])
    train_member(cfg)
    new = tmp_path / "new.cif"
    fcc_al(3.52).replace_species({"Al": "Ni"}).to(filename=str(new))
    out = tmp_path / "pred.csv"
    assert main(["predict", "--ensemble", str(tmp_path / "run"), str(new), "--out", str(out)]) == 0
    row = next(csv.DictReader(open(out)))
    assert row["status"] == "ok" and float(row["lambda"]) > 0 and "PhDOS" not in row["warnings"]
    # the same structure with a PhDOS of the dataset's own (DFT) origin: used, and flagged
    result, _ = PhDOSProvider(PhononSettings(potential="emt", mesh=6), tmp_path / "cache" / "phonons").get(
        load_structure(new), "coarse")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([{"id": "new", "phdos_coarse_freq_meV": result.freq_meV.tolist(),
                                   "phdos_coarse_site": result.site_dos.tolist()}]))
    out2 = tmp_path / "pred2.csv"
    assert main(["predict", "--ensemble", str(tmp_path / "run"), str(new), "--labels", str(labels),
                 "--out", str(out2)]) == 0
    row = next(csv.DictReader(open(out2)))
    assert row["status"] == "ok" and "PhDOS" in row["warnings"]
    capsys.readouterr()


def test_two_runs_never_write_one_folder_and_a_bad_out_is_one_line(phonopy, inputs, tmp_path):
    """The second `betenet phonons` into a folder another run holds is refused (the first is unharmed);
    an --out that is a file is refused in one line."""
    from betenet.locks import folder_lock
    from betenet.phonons.batch import LOCK_FILE, run_batch

    out = tmp_path / "out"
    settings = PhononSettings(potential="emt", mesh=6)
    with folder_lock(out, LOCK_FILE, "another `betenet phonons` run"):  # as if a run were working there
        with pytest.raises(InputError, match="another `betenet phonons` run is working on this folder"):
            run_batch([inputs], out, settings)
    assert run_batch([inputs], out, settings)["inputs"] > 0  # free again once that run ends
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        run_batch([inputs], a_file, settings)
