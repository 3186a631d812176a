"""Spring-model phonons and prototypes of the demo dataset: units, analytic dispersion, sum rule,
hermiticity, positivity, the 2×2×2 folding and DOS normalisation."""

import math

import numpy as np
import pytest
from ase import units as ase_units

from betenet.data.element_tables import MASS_AMU
from betenet.data.phonons import (
    HBAR_OMEGA_UNIT_MEV,
    fold_to_supercell,
    force_constants_from_springs,
    frequencies_meV,
    gamma_mesh,
    periodic_pairs,
    phonon_modes,
    site_projected_dos,
    spring_model,
)
from betenet.data.prototypes import PROTOTYPES, check_geometry, decorate
from betenet.physics.units import THZ_TO_MEV

PROTO = {p.name: p for p in PROTOTYPES}
RNG_Q = np.random.default_rng(7).random((5, 3))


def _model(name, elements):
    s = decorate(PROTO[name], elements)
    lattice, frac = s.lattice.matrix, s.frac_coords % 1.0
    fc = spring_model(lattice, frac, [site.specie.symbol for site in s])
    return s, fc, fold_to_supercell(fc, lattice, frac)


CASES = [
    ("A1 (fcc)", ["Al"]),
    ("A3 (hcp)", ["Mg"]),
    ("C32 (AlB2)", ["Mg", "B"]),
    ("A15 (Cr3Si)", ["Nb", "Sn"]),
    ("L2_1 (Heusler)", ["Cu", "Ti", "Al"]),
    ("E2_1 (cubic perovskite)", ["Mg", "C", "Ni"]),
]


def test_frequency_unit_against_terahertz_route():
    # hbar*w for w = sqrt(1 eV / (1 Å² · 1 amu)), via nu = w / 2π in THz and E = h nu
    # (THZ_TO_MEV), with ASE's CODATA constants rather than scipy's.
    omega = math.sqrt(ase_units._e / (1e-20 * ase_units._amu))  # rad/s
    assert HBAR_OMEGA_UNIT_MEV == pytest.approx(omega / (2 * math.pi) / 1e12 * THZ_TO_MEV, rel=1e-6)


def test_fcc_nearest_neighbour_zone_boundary_analytic():
    # Monatomic fcc, cubic constant a, 12 nearest-neighbour springs k, mass m:
    #   D(q) = (k/m) Σ_δ (1 - cos q·δ) ê ê^T,  δ = (a/2)(±1, ±1, 0) and permutations.
    # X = (2π/a)(1,0,0): q·δ = ±π for the 8 δ with δ_x ≠ 0, 0 for the 4 in the yz plane, so
    #   D = (2k/m) Σ_{8 δ} ê ê^T = (2k/m) diag(4, 2, 2)  →  w_T = 2 sqrt(k/m) (twice), w_L = 2 sqrt(2k/m).
    # L = (π/a)(1,1,1): q·δ = ±π only for δ ∥ ±(1,1,0), ±(1,0,1), ±(0,1,1), so
    #   D = (2k/m) [[2,1,1],[1,2,1],[1,1,2]], eigenvalues (2k/m){1, 1, 4}
    #   →  w_T = sqrt(2k/m) (twice), w_L = 2 sqrt(2k/m).
    # Fractional coordinates on the primitive reciprocal basis (q_i = q·a_i / 2π, a_1 = (0,½,½)a, ...):
    #   X = (0, ½, ½), L = (½, ½, ½).
    a, k, m = 3.9, 1.7, MASS_AMU["Cu"]
    lattice = 0.5 * a * np.array([[0.0, 1, 1], [1, 0, 1], [1, 1, 0]])
    frac = np.zeros((1, 3))
    pairs = periodic_pairs(lattice, frac, 1.01 * a / math.sqrt(2))
    assert len(pairs.i) == 12
    fc = force_constants_from_springs([m], pairs.i, pairs.j, pairs.shift, pairs.vec, np.full(12, k))
    f, _ = phonon_modes(fc, [[0, 0.5, 0.5], [0.5, 0.5, 0.5]])
    u = HBAR_OMEGA_UNIT_MEV * math.sqrt(k / m)
    np.testing.assert_allclose(f[0], [2 * u, 2 * u, 2 * math.sqrt(2) * u], rtol=1e-12)
    np.testing.assert_allclose(f[1], [math.sqrt(2) * u, math.sqrt(2) * u, 2 * math.sqrt(2) * u], rtol=1e-12)


@pytest.mark.parametrize("name,elements", CASES)
def test_hermitian_sum_rule_and_positive(name, elements):
    s, fine, coarse = _model(name, elements)
    n = len(s)
    q, _ = gamma_mesh((4, 4, 4), time_reversal=False)
    for fc in (fine, coarse):
        d = fc.dynamical_matrices(np.vstack([q, RNG_Q]))
        scale = fc.eigenvalue_bound()
        assert np.abs(np.linalg.eigvalsh(d)).max() <= scale
        assert np.abs(d - d.conj().transpose(0, 2, 1)).max() <= 1e-13 * scale
        w2 = np.linalg.eigvalsh(d)
        assert w2.min() >= -1e-10 * scale  # positive springs: positive semi-definite everywhere
        gamma = np.linalg.eigvalsh(fc.dynamical_matrices([[0.0, 0.0, 0.0]]))[0]
        assert np.sum(np.abs(gamma) <= 1e-10 * scale) == 3  # exactly the three translations
        f, proj = phonon_modes(fc, [[0.0, 0.0, 0.0]])
        assert np.all(f[0, :3] == 0.0) and np.all(f[0, 3:] > 0)
        np.testing.assert_allclose(proj.sum(axis=-1), 1.0, atol=1e-12)
        # a zero mode is a rigid translation: each site's share equals its mass fraction
        masses = fc.masses
        np.testing.assert_allclose(proj[0, :3].sum(axis=0), 3 * masses / masses.sum(), atol=1e-8)
        assert proj.shape == (1, 3 * n, n)


def test_coarse_folding_exact_on_2x2x2_grid_only():
    s, fine, coarse = _model("A1 (fcc)", ["Al"])
    q2, _ = gamma_mesh((2, 2, 2), time_reversal=False)
    np.testing.assert_allclose(coarse.dynamical_matrices(q2), fine.dynamical_matrices(q2), atol=1e-12)
    # between the grid points the springs beyond half the 2×2×2 supercell are aliased
    diff = np.abs(coarse.dynamical_matrices(RNG_Q) - fine.dynamical_matrices(RNG_Q)).max()
    assert diff > 1e-3 * np.abs(fine.dynamical_matrices(RNG_Q)).max()


@pytest.mark.parametrize("name,elements", CASES[2:4])
def test_site_mean_square_frequency_equals_onsite_trace(name, elements):
    # Σ_ν p_s(ν) w_ν² = Tr D_ss(q); its mesh average keeps only the on-site block (all spring
    # images are shorter than 8 cells), i.e. K_s / M_s with K_s the sum of the site's springs.
    s, fine, _ = _model(name, elements)
    q, wq = gamma_mesh((8, 8, 8))
    f, proj = phonon_modes(fine, q)
    mean_w2 = np.einsum("q,qm,qms->s", wq, f**2, proj)
    np.testing.assert_allclose(mean_w2, fine.onsite_trace() / fine.masses * HBAR_OMEGA_UNIT_MEV**2, rtol=1e-9)


def test_frequencies_signed_and_never_nan():
    out = frequencies_meV(np.array([-1e-15, 0.0, 4.0, -2.0]))
    np.testing.assert_allclose(out, [0.0, 0.0, 2 * HBAR_OMEGA_UNIT_MEV, -math.sqrt(2) * HBAR_OMEGA_UNIT_MEV])
    assert np.all(np.isfinite(out))


def test_dos_single_mode_is_normalised_gaussian_and_reflects_at_zero():
    sigma = 1.0
    grid, dos = site_projected_dos(np.array([[10.0, 0.0]]), np.array([[[1.0], [1.0]]]), np.array([1.0]), 20.0,
                                   sigma_meV=sigma)
    gauss = lambda x: np.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))  # noqa: E731
    # a mode at 10 meV gives the Gaussian; a mode at 0 gives it twice on w ≥ 0 (reflected tail);
    # the kernel stops at 6 sigma, where the (reflected, doubled) Gaussian is 2 gauss(6) ≈ 1.2e-8 /meV
    np.testing.assert_allclose(dos[0], gauss(grid - 10.0) + 2 * gauss(grid), rtol=1e-9, atol=2 * gauss(6.0))
    assert np.trapezoid(dos[0], grid) == pytest.approx(2.0, abs=1e-7)


@pytest.mark.parametrize("name,elements", CASES[2:5])
def test_site_dos_integrates_to_three_per_site(name, elements):
    s, fine, coarse = _model(name, elements)
    q, wq = gamma_mesh((6, 6, 6))
    for fc in (fine, coarse):
        f, proj = phonon_modes(fc, q)
        grid, dos = site_projected_dos(f, proj, wq, f.max() + 8.0)
        assert dos.shape == (len(s), grid.size) and dos.min() >= 0
        np.testing.assert_allclose(np.trapezoid(dos, grid, axis=1), 3.0, atol=1e-6)


# Primitive-cell sizes: conventional atoms / lattice points per conventional cell (F: 4, I: 2).
EXPECTED_SITES = {
    "A1 (fcc)": 1, "A2 (bcc)": 1, "A3 (hcp)": 2, "B1 (rocksalt)": 2, "B2 (CsCl)": 2, "L1_2 (Cu3Au)": 4,
    "L1_0 (CuAu)": 2, "A15 (Cr3Si)": 8, "C15 (MgCu2 Laves)": 24 // 4, "L2_1 (Heusler)": 16 // 4,
    "C1_b (half-Heusler)": 12 // 4, "D0_3 (BiF3)": 16 // 4, "C1 (CaF2)": 12 // 4, "C32 (AlB2)": 3,
    "E2_1 (cubic perovskite)": 5, "B8_1 (NiAs)": 4,
}  # fmt: skip


def test_prototypes_sizes_and_geometry():
    assert set(EXPECTED_SITES) == set(PROTO)
    for name, proto in PROTO.items():
        assert len(proto) == EXPECTED_SITES[name], name
        elements = [pool[0] for pool in proto.pools]
        for r, pool in enumerate(proto.pools):  # distinct elements for the roles
            elements[r] = next(e for e in pool if e not in elements[:r])
        assert check_geometry(decorate(proto, elements)) is None, (name, elements)


def test_c15_nearest_distances():
    # C15 (MgCu2): B-B (16d) nearest distance sqrt(2)/4 a; A-B sqrt(11)/8 a; A-A sqrt(3)/4 a.
    proto = PROTO["C15 (MgCu2 Laves)"]
    pairs = periodic_pairs(proto.lattice, proto.frac, 0.45)
    roles = np.array(proto.roles)
    for ri, rj, d in [(1, 1, math.sqrt(2) / 4), (0, 1, math.sqrt(11) / 8), (0, 0, math.sqrt(3) / 4)]:
        sel = (roles[pairs.i] == ri) & (roles[pairs.j] == rj)
        assert pairs.dist[sel].min() == pytest.approx(d, rel=1e-9)
