"""End to end with Quantum ESPRESSO: fcc Al at QE's PHonon example03 settings through the whole
pipeline (inputs → resumable run → parse → collect → datasets), lambda compared for every smearing
with QE's printed reference values. Needs pw.x, ph.x, q2r.x, matdyn.x, projwfc.x and
Al.pz-vbc.UPF (Debian: apt-get install quantum-espresso quantum-espresso-data); marked ``qe``.
A few minutes on 2 cores (mpirun -np 2 when available).
"""

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read, write
from ase.units import Bohr

from betenet.data.sources.directory import load_directory
from betenet.data.sources.release import load_release
from betenet.data.structures import load_structure
from betenet.dft.collect import collect, collect_material
from betenet.dft.inputs import write_inputs
from betenet.dft.parsers import read_a2f_smearings, read_matdyn_dos, read_matdyn_lambda, read_ph_output
from betenet.dft.runners import run_material
from betenet.dft.settings import load_settings
from betenet.dft.state import MaterialState
from betenet.physics.properties import properties
from betenet.physics.grids import commensurate_kq_grids

pytestmark = pytest.mark.qe

PROGRAMS = ("pw.x", "ph.x", "q2r.x", "matdyn.x", "projwfc.x")
PSEUDO = Path(os.environ.get("ESPRESSO_PSEUDO", "/usr/share/espresso/pseudo")) / "Al.pz-vbc.UPF"
#: lambda tolerance against QE's reference: the reference prints 4 decimals, QE's two reference
#: runs (lambda, lambda.example03) differ by up to 6e-4, and our cell is given as ibrav=0 vectors
#: (not ibrav=2), which moves the real-space grid and changes lambda by up to ~1e-3.
LAMBDA_ABS_TOL = 2e-3


def _missing() -> str | None:
    absent = [p for p in PROGRAMS if shutil.which(p) is None]
    if absent:
        return f"Quantum ESPRESSO not installed ({', '.join(absent)} not on PATH)"
    if not PSEUDO.is_file():
        return f"{PSEUDO} not found (Debian package quantum-espresso-data)"
    return None


if _missing():
    pytest.skip(_missing(), allow_module_level=True)


def _ranks() -> int:
    return 2 if shutil.which("mpirun") and (os.cpu_count() or 1) >= 2 else 1


@pytest.fixture(scope="module")
def mpi_env():
    mp = pytest.MonkeyPatch()
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # Open MPI refuses root without these
        mp.setenv("OMPI_ALLOW_RUN_AS_ROOT", "1")
        mp.setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    yield
    mp.undo()


@pytest.fixture(scope="module")
def al_run(tmp_path_factory, mpi_env):
    """The whole qe_example chain for fcc Al (celldm(1) = 7.5 bohr), run once for this module."""
    root = tmp_path_factory.mktemp("qe_al")
    write(root / "Al.cif", bulk("Al", "fcc", a=7.5 * Bohr))
    folder = root / "Al"
    write_inputs(root / "Al.cif", folder, load_settings("qe_example"))
    t0 = time.monotonic()
    result = run_material(folder, np=_ranks())
    result["wall_s"] = time.monotonic() - t0
    print(f"\nQE chain for fcc Al: {result['wall_s']:.0f} s wall on {_ranks()} rank(s); steps {result['seconds']}")
    return folder, result


def test_lambda_for_every_smearing_matches_qe_reference(al_run, qe_al_dir):
    folder, _ = al_run
    reference = {round(line.sigma_Ry, 4): line.lam for line in read_matdyn_lambda(qe_al_dir / "lambda")}
    spectra = read_a2f_smearings(folder, 0.005, 10)
    assert len(spectra) == len(reference) == 10
    for sigma, spec in spectra.items():
        lam = properties(spec.omega_meV, spec.a2f)["lambda"]
        assert lam == pytest.approx(reference[round(sigma, 4)], abs=LAMBDA_ABS_TOL), sigma
        assert lam == pytest.approx(spec.lambda_reported, rel=1e-4)  # QE's own sum in the file
    lam_0015 = properties(spectra[0.015].omega_meV, spectra[0.015].a2f)["lambda"]
    assert lam_0015 == pytest.approx(0.4114, abs=LAMBDA_ABS_TOL)


def test_outputs_parse(al_run):
    folder, _ = al_run
    ph = read_ph_output(folder / "ph.out")
    assert ph.job_done and len(ph.frequencies_meV) == 8  # irreducible q of the 4x4x4 fcc grid
    assert all(f.shape == (3,) for f in ph.frequencies_meV)
    assert ph.imaginary_modes(1.0) == []
    for name in ("phonon.dos", "phonon_coarse.dos"):
        dos = read_matdyn_dos(folder / name, n_sites=1)
        assert dos.site.shape == (1, 50)
        # 3 modes per atom; the 50-point rule across van Hove peaks is good to a few 0.1 %
        assert np.trapezoid(dos.total, dos.freq_meV) == pytest.approx(3.0, abs=0.02)
    c = collect_material(folder)
    assert c.band_gap_eV == 0.0 and c.details["fermi_energy_eV"] > 0
    assert c.record["lambda"] == pytest.approx(c.details["lambda_by_smearing"]["0.02"])


def test_finished_steps_are_not_rerun(al_run):
    folder, first = al_run
    assert first["skipped"] == [] and len(first["ran"]) == 11
    again = run_material(folder, np=_ranks())
    assert again["ran"] == [] and again["skipped"] == first["ran"]
    assert all(MaterialState(folder).steps[s]["attempt"] == 1 for s in first["ran"])


def test_collect_into_both_dataset_formats(al_run, tmp_path):
    folder, _ = al_run
    out = collect([folder], tmp_path / "dir", keep_rejected=True)
    assert out["written"] == ["Al"] and len(out["filters"]) == 4
    data = load_directory(tmp_path / "dir")
    assert [e.id for e in data.entries] == ["Al"] and data.rejected == []
    assert data.entries[0].labels["lambda"] == pytest.approx(out["lambda"]["Al"])
    collect([folder], tmp_path / "release", format="release", keep_rejected=True)
    rel = load_release(tmp_path / "release")
    assert [e.id for e in rel.entries] == ["Al"] and rel.entries[0].extra["edos"].shape[0] == 1


def test_relax_then_prepare_writes_decks_from_the_relaxed_cell(tmp_path, mpi_env):
    """vc-relax of a compressed Al cell; `prepare` takes the relaxed cell and its grids from it."""
    write(tmp_path / "Al.cif", bulk("Al", "fcc", a=7.2 * Bohr))
    overrides = ["relax.enabled=true", "relax.k_density=8.0", "grids.k_grid=null", "grids.q_grid=null",
                 "grids.phonon_k_grid=null", "grids.k_density=10.0", "grids.q_density=4.0"]
    folder = tmp_path / "Al"
    write_inputs(tmp_path / "Al.cif", folder, load_settings("qe_example", overrides))
    out = run_material(folder, np=_ranks(), until="prepare")
    assert out["ran"] == ["relax", "prepare"]
    final = read(folder / "relax.out", format="espresso-out", index=-1)
    relaxed = load_structure(folder / "structure.cif")
    initial = load_structure(folder / "structure_initial.cif")
    assert relaxed.volume == pytest.approx(final.get_volume(), rel=1e-6)
    assert abs(relaxed.volume - initial.volume) / initial.volume > 0.01  # the cell did relax
    k_grid, q_grid = commensurate_kq_grids(relaxed, 10.0, 4.0)
    deck = (folder / "scf_la2f.in").read_text().splitlines()
    assert deck[deck.index("K_POINTS automatic") + 1].split()[:3] == [str(n) for n in k_grid]
    assert f"nq1 = {q_grid[0]}" in (folder / "ph.in").read_text()
    assert read(folder / "scf_la2f.in", format="espresso-in").get_volume() == pytest.approx(relaxed.volume)
