"""Parsers of QE outputs (betenet.dft.parsers) on QE's Al reference files and on outputs generated
with Debian's QE 6.7 (tests/data/qe, provenance in its README)."""

import math
import re
from pathlib import Path

import numpy as np
import pytest

from betenet.dft.parsers import (
    band_gap,
    read_a2f_smearings,
    read_matdyn_dos,
    read_matdyn_lambda,
    read_ph_output,
    read_projwfc_pdos,
    read_pw_output,
)
from betenet.errors import InputError
from betenet.physics.a2f_files import read_qe_a2f
from betenet.physics.properties import properties
from betenet.physics.units import CMM1_TO_MEV, RY_TO_MEV

DATA = Path(__file__).parent / "data" / "qe"


# ------------------------------------------------------------------------------------------
# a2F.dosN (both QE layouts) and matdyn's lambda file
# ------------------------------------------------------------------------------------------
def test_a2f_one_line_layout_of_qe_6():
    """QE 6.7 writes 'omega a2F_total a2F_mode1..3' per line; the file's own lambda is the check."""
    spec = read_qe_a2f(DATA / "al_a2F.dos4")
    first = open(DATA / "al_a2F.dos4").read().split("\n")[5].split()  # first data line of the file
    assert spec.omega_meV[0] == pytest.approx(float(first[0]) * RY_TO_MEV, rel=1e-12)
    assert spec.a2f[0] == float(first[1]) and spec.per_mode.shape == (len(spec.a2f), 3)
    # total = sum over the 3 modes, up to the 6 printed significant digits
    np.testing.assert_allclose(spec.per_mode.sum(axis=1), spec.a2f, atol=2e-6 * np.abs(spec.a2f).max())
    # QE's own sum (rectangle rule) printed as 'lambda =' equals the betenet integral
    assert properties(spec.omega_meV, spec.a2f)["lambda"] == pytest.approx(spec.lambda_reported, rel=1e-4)


def test_read_all_smearings_of_the_reference(qe_al_dir):
    """File N holds smearing N * 0.005 Ry (QE example03: el_ph_sigma 0.005, el_ph_nsigma 10)."""
    spectra = read_a2f_smearings(qe_al_dir, 0.005, 10)
    assert sorted(spectra) == pytest.approx([0.005 * n for n in range(1, 11)])
    table = {round(line.sigma_Ry, 4): line.lam for line in read_matdyn_lambda(qe_al_dir / "lambda")}
    for sigma, spec in spectra.items():  # the 4-decimal lambda file vs each file's integral
        assert properties(spec.omega_meV, spec.a2f)["lambda"] == pytest.approx(table[round(sigma, 4)], abs=6e-5)


def test_matdyn_lambda_file_both_versions(qe_al_dir):
    old = read_matdyn_lambda(qe_al_dir / "lambda")
    assert len(old) == 10 and old[2].sigma_Ry == 0.015 and old[2].lam == 0.4114 and old[2].omega_ln_K is None
    new = read_matdyn_lambda(DATA / "al_lambda")  # QE 6.7 adds omega_ln [K]
    assert [ln.sigma_Ry for ln in new] == pytest.approx([0.005 * n for n in range(1, 11)])
    assert new[2].omega_ln_K == 374.1215 and new[2].dos_ef == old[2].dos_ef == 2.1232
    with pytest.raises(InputError, match="Broadening"):
        read_matdyn_lambda(DATA / "al_phonon.dos")


# ------------------------------------------------------------------------------------------
# matdyn phonon DOS
# ------------------------------------------------------------------------------------------
def test_matdyn_dos_reference_without_projections(qe_al_dir):
    dos = read_matdyn_dos(qe_al_dir / "phonon.dos", n_sites=1)
    assert dos.site is None and dos.freq_meV.shape == (50,)
    raw = np.loadtxt(qe_al_dir / "phonon.dos")
    np.testing.assert_allclose(dos.freq_meV, raw[:, 0] * CMM1_TO_MEV)
    # matdyn normalises the DOS to 3 modes per atom; the per-meV DOS keeps that integral (fcc Al: 3)
    assert np.trapezoid(dos.total, dos.freq_meV) == pytest.approx(3.0, abs=0.01)


def test_matdyn_dos_with_site_projections():
    dos = read_matdyn_dos(DATA / "al_phonon.dos", n_sites=1)
    assert dos.site.shape == (1, 50)
    assert np.trapezoid(dos.total, dos.freq_meV) == pytest.approx(3.0, abs=0.01)
    # the one-atom PDOS is the total DOS, printed with 5 significant digits
    np.testing.assert_allclose(dos.site[0], dos.total, rtol=5e-5, atol=1e-9)
    with pytest.raises(InputError, match="1 projected DOS columns for 2 sites"):
        read_matdyn_dos(DATA / "al_phonon.dos", n_sites=2)


def test_matdyn_dos_rejects_ragged_and_keeps_nan(tmp_path):
    bad = tmp_path / "ragged.dos"
    bad.write_text("# Frequency[cm^-1] DOS PDOS\n 0.0 0.0 0.0\n 1.0 0.5\n")
    with pytest.raises(InputError, match="line 3: 2 columns"):
        read_matdyn_dos(bad)
    nan = tmp_path / "nan.dos"
    nan.write_text("# Frequency[cm^-1] DOS PDOS\n 0.0 0.0 0.0\n 1.0 NaN NaN\n")
    dos = read_matdyn_dos(nan, n_sites=1)
    assert math.isnan(dos.total[1]) and math.isnan(dos.site[0, 1])


# ------------------------------------------------------------------------------------------
# ph.x
# ------------------------------------------------------------------------------------------
def test_ph_output_frequencies():
    ph = read_ph_output(DATA / "al_ph_coarse.out")
    text = (DATA / "al_ph_coarse.out").read_text()
    assert ph.job_done and ph.q_points.shape == (3, 3)
    # the printed cm^-1 values, in order, converted to meV
    printed = [float(x) for x in re.findall(r"freq \(\s*\d+\) =\s*\S+ \[THz\] =\s*(\S+) \[cm-1\]", text)]
    np.testing.assert_allclose(np.concatenate(ph.frequencies_meV), np.array(printed) * CMM1_TO_MEV)
    # THz column agrees: 1 THz = 4.135667696 meV, within the 6 printed decimals
    thz = [float(x) for x in re.findall(r"freq \(\s*\d+\) =\s*(\S+) \[THz\]", text)]
    np.testing.assert_allclose(np.concatenate(ph.frequencies_meV), np.array(thz) * 4.135667696, atol=1e-5)
    np.testing.assert_allclose(ph.q_points[1], [-0.353553391, -0.353553391, 0.353553391])
    assert ph.min_frequency_meV == pytest.approx(min(printed) * CMM1_TO_MEV)
    assert ph.imaginary_modes(0.0) == []


def test_ph_output_imaginary_mode(tmp_path):
    """A negative frequency (how ph.x prints an imaginary mode) at Gamma, edited into the real output."""
    text = (DATA / "al_ph_coarse.out").read_text()
    gamma_line = re.search(r"     freq \(    1\) =.*\n", text).group(0)
    edited = text.replace(gamma_line, "     freq (    1) =      -0.500000 [THz] =     -16.678205 [cm-1]\n", 1)
    path = tmp_path / "ph.out"
    path.write_text(edited)
    ph = read_ph_output(path)
    w = -16.678205 * 0.12398419843320026  # cm^-1 -> meV by hand (h c / e, exact in SI since 2019): -2.067834 meV
    assert ph.min_frequency_meV == pytest.approx(w, rel=1e-12)
    assert ph.imaginary_modes(1.0) == [(0, 0, pytest.approx(w))]
    assert ph.imaginary_modes(3.0) == []


def test_ph_output_without_blocks(tmp_path):
    path = tmp_path / "ph.out"
    path.write_text("     Program PHONON v.6.7MaX starts on 25Nov2026\n")
    with pytest.raises(InputError, match="Diagonalizing"):
        read_ph_output(path)


# ------------------------------------------------------------------------------------------
# pw.x
# ------------------------------------------------------------------------------------------
def test_pw_output_metal():
    """Al, tetrahedra nscf (verbosity='high'; excerpt from the band listing to the end)."""
    path = DATA / "al_edos" / "edos_nscf_excerpt.out"
    pw = read_pw_output(path)
    text = path.read_text()
    assert pw.fermi_energy_eV == float(re.search(r"the Fermi energy is\s+(\S+)", text).group(1))
    n_k = text.count("bands (ev)")
    assert n_k == 29 and pw.k_points.shape == (n_k, 3)  # 8x8x8 grid, 29 irreducible points of fcc
    assert pw.eigenvalues_eV[0].shape[0] == n_k
    first = re.search(r"bands \(ev\):\s*\n\s*\n(.*)\n", text).group(1).split()
    assert pw.eigenvalues_eV[0][0].tolist() == [float(x) for x in first]
    assert pw.converged and pw.job_done
    assert pw.band_gap_eV == 0.0  # aluminium: the lowest band crosses E_F


def test_pw_output_insulator_gap_matches_qe():
    """Si with fixed occupations: QE prints HOMO and LUMO; the gap from the bands must be their difference."""
    pw = read_pw_output(DATA / "si_fixed.out")
    text = (DATA / "si_fixed.out").read_text()
    assert pw.total_energy_Ry == float(re.search(r"!\s+total energy\s+=\s+(\S+)", text).group(1))
    assert pw.converged and pw.job_done
    assert pw.fermi_energy_eV is None and pw.eigenvalues_eV[0].shape == (8, 8)
    assert pw.band_gap_eV == pytest.approx(pw.lowest_unoccupied_eV - pw.highest_occupied_eV, abs=1e-9)
    assert pw.highest_occupied_eV == pw.eigenvalues_eV[0][:, :4].max()
    assert pw.lowest_unoccupied_eV == pw.eigenvalues_eV[0][:, 4:].min()


def test_pw_output_tetrahedra_nscf_skips_occupations():
    """verbosity='high' prints occupation numbers after every k; they must not be read as bands."""
    pw = read_pw_output(DATA / "si_nscf_tetra_excerpt.out")
    eig = pw.eigenvalues_eV[0]
    assert eig.shape == (8, 8) and pw.fermi_energy_eV == 6.5966
    assert eig[0].tolist() == [-5.7622, 6.1363, 6.1363, 6.1363, 8.7012, 8.7012, 8.7012, 9.5205]
    # E_F lies in the gap: 4 bands below, 4 above
    assert pw.band_gap_eV == pytest.approx(eig[:, 4:].min() - eig[:, :4].max())
    assert pw.band_gap_eV > 0


def test_band_gap_by_hand():
    bands = np.array([[-1.0, 2.0, 5.0], [-0.5, 2.5, 4.0]])  # 2 k-points, 3 bands
    assert band_gap([bands], fermi_eV=3.0) == pytest.approx(4.0 - 2.5)  # band 2 top 2.5, band 3 bottom 4.0
    assert band_gap([bands], fermi_eV=2.2) == 0.0  # band 2 spans 2.0..2.5: crosses E_F
    assert band_gap([bands], fermi_eV=6.0) is None  # no band above E_F
    spin_dw = np.array([[-1.0, 2.8, 5.0], [-0.5, 3.6, 4.5]])
    assert band_gap([bands, spin_dw], fermi_eV=3.0) == 0.0  # minority band 2 (2.8..3.6) crosses
    shifted = spin_dw + [0.0, -1.2, 0.0]  # its band 2 now 1.6..2.4: both channels insulating
    assert band_gap([bands, shifted], fermi_eV=3.0) == pytest.approx(4.0 - 2.5)


# ------------------------------------------------------------------------------------------
# projwfc.x
# ------------------------------------------------------------------------------------------
def test_projwfc_site_dos_sums_to_total():
    d = DATA / "si_pdos"
    dos = read_projwfc_pdos(d, "edos", n_sites=2)
    tot = np.loadtxt(d / "edos.pdos_tot")  # E, dos(E), pdos(E) = sum of all projections
    assert dos.site.shape == (2, len(tot))
    np.testing.assert_array_equal(dos.energy_eV, tot[:, 0])
    # 4 files summed, each printed to 3 significant digits: at most 4 half-units of the last digit
    tol = 4 * 0.5e-3 * 10 ** math.ceil(math.log10(tot[:, 2].max()))
    np.testing.assert_allclose(dos.site.sum(axis=0), tot[:, 2], atol=tol)
    # the two Si atoms of the diamond cell are equivalent
    np.testing.assert_allclose(dos.site[0], dos.site[1], atol=tol)


def test_projwfc_site_count_checked():
    with pytest.raises(InputError, match="atoms \\[3\\]"):
        read_projwfc_pdos(DATA / "si_pdos", "edos", n_sites=3)
    with pytest.raises(InputError, match="structure has 1 sites"):
        read_projwfc_pdos(DATA / "si_pdos", "edos", n_sites=1)
