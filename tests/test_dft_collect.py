"""collect → filters → generic directory / release datasets, read back by the project's own loaders.

The finished material folder is assembled from real fcc-Al outputs at QE example03's settings: the
a2F.dosN and lambda files of QE's reference run (shared data), and QE 6.7 outputs generated for this
project (tests/data/qe): fine and coarse site-projected PhDOS, a ph.x output (its 2x2x2 run), and a
tetrahedra nscf + projwfc eDOS (8x8x8 k).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write
from ase.units import Bohr

from betenet.data.sources.directory import load_directory
from betenet.data.sources.release import load_release
from betenet.dft.collect import collect, collect_material
from betenet.dft.filters import apply_dft_filters, metals_with_gap
from betenet.dft.inputs import write_inputs
from betenet.dft.parsers import read_matdyn_lambda, read_ph_output, read_pw_output
from betenet.dft.settings import load_settings
from betenet.dft.state import MaterialState
from betenet.dft.workflow import read_workflow
from betenet.physics.a2f_files import read_qe_a2f
from betenet.physics.properties import a2f_properties

DATA = Path(__file__).parent / "data" / "qe"


def finish(folder: Path) -> None:
    """Record every step done, as `betenet dft run` does after its checks."""
    state = MaterialState(folder)
    for step in read_workflow(folder).steps:
        state.started(step.name, "test")
        state.done(step.name, 0.0, step.products)


@pytest.fixture
def al_folder(tmp_path, qe_al_dir):
    write(tmp_path / "Al.cif", bulk("Al", "fcc", a=7.5 * Bohr))
    folder = tmp_path / "Al"
    write_inputs(tmp_path / "Al.cif", folder, load_settings("qe_example"))
    for n in range(1, 11):
        shutil.copy(qe_al_dir / f"a2F.dos{n}", folder)
    shutil.copy(qe_al_dir / "lambda", folder)
    shutil.copy(DATA / "al_phonon.dos", folder / "phonon.dos")
    shutil.copy(DATA / "al_phonon_coarse.dos", folder / "phonon_coarse.dos")
    shutil.copy(DATA / "al_ph_coarse.out", folder / "ph.out")
    shutil.copy(DATA / "al_edos" / "edos_nscf_excerpt.out", folder / "edos_nscf.out")
    for p in (DATA / "al_edos").glob("edos.pdos_atm*"):
        shutil.copy(p, folder)
    return folder


def test_collect_material_record(al_folder, qe_al_dir):
    finish(al_folder)
    c = collect_material(al_folder)
    ref = read_qe_a2f(qe_al_dir / "a2F.dos4")  # 4 x 0.005 Ry = the paper's 0.02 Ry
    np.testing.assert_array_equal(c.record["a2f"], ref.a2f)
    expected = a2f_properties(ref.omega_meV, ref.a2f)
    assert c.record["lambda"] == expected["lambda"] and c.record["tc_K"] == expected["tc_K"]
    assert c.record["omega_log_K"] == expected["omega_log_K"] and c.record["omega_2_K"] == expected["omega_2_K"]
    assert c.record["min_phonon_freq_meV"] == read_ph_output(DATA / "al_ph_coarse.out").min_frequency_meV
    assert c.record["phdos_fine_site"].shape == (1, 50) and c.record["phdos_coarse_site"].shape == (1, 50)
    # per-smearing lambda of every a2F.dosN against QE's lambda file (4 decimals)
    table = {f"{line.sigma_Ry:g}": line.lam for line in read_matdyn_lambda(qe_al_dir / "lambda")}
    assert set(c.details["lambda_by_smearing"]) == set(table)
    for sigma, lam in c.details["lambda_by_smearing"].items():
        assert lam == pytest.approx(table[sigma], abs=6e-5)
    nscf = read_pw_output(DATA / "al_edos" / "edos_nscf_excerpt.out")
    assert c.details["fermi_energy_eV"] == nscf.fermi_energy_eV and c.band_gap_eV == 0.0
    assert np.all(np.abs(c.edos_energy_meV) <= 1000.0) and c.edos_site.shape == (1, c.edos_energy_meV.size)
    # mean eDOS over E_F +- 50 meV, by hand from the interpolated total of the projwfc files
    e, pdos = np.loadtxt(next(al_folder.glob("edos.pdos_atm#1(Al)_wfc#1(s)")), usecols=(0, 1), unpack=True)
    e_p, pdos_p = np.loadtxt(next(al_folder.glob("edos.pdos_atm#1(Al)_wfc#2(p)")), usecols=(0, 1), unpack=True)
    ef = nscf.fermi_energy_eV
    window = np.linspace(ef - 0.05, ef + 0.05, 2001)
    by_hand = np.interp(window, e, pdos + pdos_p).mean()
    assert c.details["edos_at_fermi_states_per_eV"] == pytest.approx(by_hand, rel=1e-3)


def test_collect_filters_and_directory_round_trip(al_folder, tmp_path):
    finish(al_folder)
    root = tmp_path / "dataset"
    c = collect_material(al_folder)
    a2f = c.record["a2f"]
    negative = a2f.min() < -1e-3 * np.abs(a2f).max()  # the profile's negative_a2f_tol
    out = collect([al_folder], root)
    assert len(out["filters"]) == 4 and out["unreadable"] == {}
    assert (out["written"] == []) == negative and ("Al" in out["rejected"]) == negative
    if negative:
        assert out["rejected"]["Al"].startswith("negative_a2f")
    out = collect([al_folder], root, keep_rejected=True)
    assert out["written"] == ["Al"]
    data = load_directory(root)
    assert data.rejected == [] and [e.id for e in data.entries] == ["Al"]
    e = data.entries[0]
    np.testing.assert_allclose(e.a2f, c.record["a2f"])
    np.testing.assert_allclose(e.phdos_fine_site, c.record["phdos_fine_site"])
    assert e.labels["lambda"] == pytest.approx(c.record["lambda"], rel=1e-12)
    assert e.extra["min_phonon_freq_meV"] == pytest.approx(c.record["min_phonon_freq_meV"])
    assert "ignored_columns" not in data.metadata
    details = json.loads((root / "dft" / "Al.json").read_text())
    assert details["band_gap_eV"] == 0.0 and details["a2f_smearing_Ry"] == 0.02
    collect([al_folder], root, keep_rejected=True)  # collecting again replaces the record
    assert [r["id"] for r in json.loads((root / "labels.json").read_text())] == ["Al"]


def test_release_format_round_trip(al_folder, tmp_path):
    finish(al_folder)
    root = tmp_path / "release"
    collect([al_folder], root, format="release", keep_rejected=True)
    data = load_release(root)
    assert data.rejected == [] and len(data.entries) == 1
    e = data.entries[0]
    c = collect_material(al_folder)
    # written at full precision; pandas' JSON reader (precise_float=False) parses to ~1e-12
    np.testing.assert_allclose(e.a2f, c.record["a2f"], rtol=1e-10)
    np.testing.assert_allclose(e.phdos_coarse_site, c.record["phdos_coarse_site"], rtol=1e-10)
    # fine total PhDOS per meV still integrates to 3 modes per atom
    assert np.trapezoid(e.extra["phdos_total"], e.extra["phdos_total_freq_meV"]) == pytest.approx(3.0, abs=0.01)
    assert e.extra["edos"].shape == (1, e.extra["edos_freq_meV"].size)


def test_unfinished_folder_is_reported(al_folder, tmp_path):
    out = collect([al_folder], tmp_path / "dataset")
    assert out["written"] == [] and "steps not finished" in out["unreadable"][str(al_folder)]


def test_gap_filter_on_real_band_structures():
    al_gap = read_pw_output(DATA / "al_edos" / "edos_nscf_excerpt.out").band_gap_eV
    si_gap = read_pw_output(DATA / "si_nscf_tetra_excerpt.out").band_gap_eV
    records = [{"id": "Al", "band_gap_eV": al_gap}, {"id": "Si", "band_gap_eV": si_gap}, {"id": "no_edos"}]
    kept, step = metals_with_gap(records)
    assert kept == ["Al", "no_edos"] and step.not_applicable == ["no_edos"]
    assert f"{si_gap:.3g} eV" in step.rejected["Si"]
    kept, _ = metals_with_gap(records, threshold_eV=1.0)  # Si's LDA gap is below 1 eV
    assert kept == ["Al", "Si", "no_edos"]


def test_filter_chain_reports_each_reason():
    rng_free = np.linspace(0.0, 1.0, 11)
    records = [
        {"id": "ok", "a2f": rng_free, "min_phonon_freq_meV": 0.5, "band_gap_eV": 0.0},
        {"id": "nan", "a2f": np.where(rng_free > 0.5, np.nan, rng_free)},
        {"id": "soft", "a2f": rng_free, "min_phonon_freq_meV": -2.0},
        {"id": "neg", "a2f": rng_free - 0.1},
        {"id": "gap", "a2f": rng_free, "band_gap_eV": 0.3},
    ]
    kept, report = apply_dft_filters(records)
    assert [r["id"] for r in kept] == ["ok"]
    assert {i: name for i, (name, _) in report.rejected.items()} == {
        "nan": "nan_spectra", "soft": "unstable", "neg": "negative_a2f", "gap": "metals_with_gap"}
