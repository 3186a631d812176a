"""Tests for the isotropic Eliashberg Tc solver: kernel, eigenvalue problem, limits, Allen–Dynes agreement."""

import math

from pathlib import Path

import numpy as np
import pytest

from betenet.data.spectra import bin_spectrum
from betenet.errors import InputError
from betenet.physics.a2f_files import read_a2f
from betenet.physics.eliashberg_solver import (_Problem, eliashberg_tc, gap_eigenvalue, matsubara_lambda,
                                              phonon_scale_meV)
from betenet.physics.properties import a2f_properties, lambda_weights, properties
from betenet.physics.units import BIN_CENTRES_MEV, MEV_TO_K

DATA = Path(__file__).parent / "data" / "qe"
W = BIN_CENTRES_MEV  # the 51 network bins, 2 meV apart: the grid the solver is fed in practice
E_BIN = 10  # Einstein mode in one bin, at W[10] = 20.25 meV


def _gauss(centre, width):
    return np.exp(-0.5 * ((W - centre) / width) ** 2)


def _einstein():
    a = np.zeros_like(W)
    a[E_BIN] = 1.0
    return a


SHAPES = {
    "einstein": _einstein(),
    "debye": np.where(W < 30.0, W**2, 0.0),  # a2F ∝ ω² up to a 30 meV Debye cutoff
    "two_peak": _gauss(15.0, 3.0) + 0.6 * _gauss(45.0, 5.0),
}


def _scaled(shape, lam):
    """The spectrum ``shape`` rescaled so that its lambda is ``lam``."""
    return shape * (lam / properties(W, shape)["lambda"])


# ---------------------------------------------------------------------------------------------
# the Matsubara kernel
# ---------------------------------------------------------------------------------------------
def test_kernel_at_zero_is_the_moments_lambda():
    a = _scaled(SHAPES["two_peak"], 0.8)
    assert matsubara_lambda(W, a, 0.0) == pytest.approx(properties(W, a)["lambda"], rel=1e-12)


def test_kernel_of_one_bin_is_a_lorentzian():
    # One bin at ω_E with cell width dω: λ(ν) = 2 dω ω_E a / (ω_E² + ν²) = λ ω_E² / (ω_E² + ν²).
    a = _scaled(_einstein(), 1.3)
    w_e = W[E_BIN]
    nu = np.array([0.0, 3.0, 20.0, 40.4, 40.6, 100.0, 1e3, 1e6])  # both sides of the 2 ω_max series switch
    expected = 1.3 * w_e**2 / (w_e**2 + nu**2)
    np.testing.assert_allclose(matsubara_lambda(W, a, nu), expected, rtol=1e-12)


def test_kernel_series_region_equals_direct_sum():
    a = _scaled(SHAPES["two_peak"], 1.0)
    nu = np.geomspace(1.0, 1e5, 200)
    # Direct rectangle rule on the 2 meV grid: cells 2 meV wide, the first one [0, 1.25] meV.
    cells = np.full_like(W, 2.0)
    cells[0] = W[0] + 1.0
    direct = np.array([2.0 * np.sum(cells * W * a / (W**2 + v**2)) for v in nu])
    np.testing.assert_allclose(matsubara_lambda(W, a, nu), direct, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# degenerate input
# ---------------------------------------------------------------------------------------------
def test_zero_coupling_gives_zero_not_nan():
    assert eliashberg_tc(W, np.zeros_like(W)) == 0.0
    assert eliashberg_tc(W, -np.ones_like(W)) == 0.0  # all negative: lambda < 0, no coupling
    # A one-point grid has no cell width, so its lambda is 0 and so is the solver's.
    assert properties([20.0], [1.0])["lambda"] == 0.0
    assert eliashberg_tc([20.0], [1.0]) == 0.0
    assert gap_eigenvalue(W, np.zeros_like(W), 5.0) == 0.0


def test_nonpositive_frequencies_ignored_and_negative_noise_integrated_as_given():
    grid = np.concatenate(([-3.0, 0.0], W))
    clean = np.concatenate(([0.0, 0.0], _scaled(SHAPES["two_peak"], 0.9)))
    clean[-5:] = 0.0
    shifted = clean.copy()
    shifted[:2] = 0.7  # weight at ω <= 0 never couples
    assert eliashberg_tc(grid, shifted) == eliashberg_tc(grid, clean)
    # Negative noise counts as given, the one policy of every property: the solver's lambda is the
    # properties' lambda, below the clean one.
    noisy = clean.copy()
    noisy[3:8] -= 0.02
    lam_noisy = float((lambda_weights(grid) * noisy).sum())
    assert matsubara_lambda(grid, noisy, 0.0) == pytest.approx(lam_noisy, rel=1e-12)
    assert lam_noisy == pytest.approx(properties(grid, noisy)["lambda"], rel=1e-12)
    assert 0 < eliashberg_tc(grid, noisy) < eliashberg_tc(grid, clean)


def test_bad_input_is_named():
    a = _scaled(SHAPES["debye"], 1.0)
    with pytest.raises(InputError, match="^a2f"):
        eliashberg_tc(W, np.where(W > 50, np.nan, a))
    with pytest.raises(InputError, match="^a2f"):
        eliashberg_tc(W, a[:-1])
    with pytest.raises(InputError, match="^omega_meV"):
        eliashberg_tc(W[::-1], a)
    with pytest.raises(InputError, match="^mu_star"):
        eliashberg_tc(W, a, mu_star=0.5)  # 1 + μ* ln(ω_ph/ω_c) = 1 - 0.5 ln 10 < 0: no finite μ*_c
    with pytest.raises(InputError, match="^cutoff_factor"):
        eliashberg_tc(W, a, cutoff_factor=0.5)


# ---------------------------------------------------------------------------------------------
# the eigenvalue problem
# ---------------------------------------------------------------------------------------------
def test_dense_and_lanczos_eigenvalues_agree():
    prob = _Problem(W, _scaled(SHAPES["two_peak"], 1.2), 0.12, 10.0, 32, 16384)
    for t_K in (6.0, 12.0):  # about 120 and 60 rows
        t = t_K / MEV_TO_K
        assert prob.eigenvalue(t, dense=True) == pytest.approx(prob.eigenvalue(t, dense=False), rel=1e-10)


def test_tc_solves_the_unfolded_eliashberg_equations():
    """At the solver's Tc, the original equations over all ω_n (both signs) have eigenvalue 1.

    Built here from the definitions, without the even-frequency folding, the telescoped Z or the
    symmetric form: Z_n = 1 + (πT/ω_n) Σ_m λ(n-m) sgn(ω_m) summed over a range 40× wider than the
    gap sum, and K_nm = πT [λ(n-m) - μ*_c θ(ω_c-|ω_m|)] / (|ω_m| Z_n), n, m = -N..N-1.
    """
    lam, mu, cutoff = 1.0, 0.1, 10.0
    a = _scaled(SHAPES["einstein"], lam)
    tc = eliashberg_tc(W, a, mu, cutoff_factor=cutoff)
    t = tc / MEV_TO_K
    omega_ph = phonon_scale_meV(W, a)
    omega_c = cutoff * omega_ph
    mu_c = mu / (1.0 + mu * math.log(omega_ph / omega_c))
    n_half = 64
    n = np.arange(-n_half, n_half)
    wn = math.pi * t * (2 * n + 1)
    m_wide = np.arange(-40 * n_half, 40 * n_half)
    lam_diff = matsubara_lambda(W, a, 2 * math.pi * t * np.abs(n[:, None] - m_wide[None, :]))
    z = 1.0 + math.pi * t / wn * (lam_diff * np.sign(2 * m_wide + 1)).sum(axis=1)
    coulomb = mu_c * (np.abs(wn) < omega_c)
    k = math.pi * t * (matsubara_lambda(W, a, 2 * math.pi * t * np.abs(n[:, None] - n[None, :])) - coulomb)
    k /= np.abs(wn)[None, :] * z[:, None]
    # The solver keeps max(N_c, 32) = 32 positive frequencies in the phonon sums (N_c ≈ 22 here);
    # that truncation moves the eigenvalue by < 1e-3, while dropping the μ* rescaling moves it by 0.04.
    assert np.max(np.linalg.eigvals(k).real) == pytest.approx(1.0, abs=2e-3)


def test_eigenvalue_crosses_one_at_tc():
    a = _scaled(SHAPES["two_peak"], 1.0)
    tc = eliashberg_tc(W, a, 0.1)
    assert gap_eigenvalue(W, a, 0.99 * tc, 0.1) > 1.0 > gap_eigenvalue(W, a, 1.01 * tc, 0.1)


# ---------------------------------------------------------------------------------------------
# physics: monotonicity, limits, Allen–Dynes
# ---------------------------------------------------------------------------------------------
def test_tc_rises_with_lambda():
    lams = np.linspace(0.3, 2.0, 8)
    tcs = np.array([eliashberg_tc(W, _scaled(SHAPES["two_peak"], lam), 0.1) for lam in lams])
    assert np.all(np.isfinite(tcs)) and np.all(tcs >= 0.0)
    assert np.all(np.diff(tcs) > 0)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("lam", [0.5, 0.75, 1.0, 1.5])
def test_close_to_allen_dynes_in_its_fitting_range(shape, lam):
    # Allen & Dynes (1975) fitted their formula to numerical Eliashberg Tc's to about 10-15%.
    a = _scaled(SHAPES[shape], lam)
    tc_ad = a2f_properties(W, a, mu_star=0.10)["tc_K"]
    assert eliashberg_tc(W, a, 0.10) == pytest.approx(tc_ad, rel=0.15)


def test_strong_coupling_limit():
    # λ → ∞, μ* = 0: Tc → C∞ (λ<ω²>)^(1/2) with C∞ = 0.1827262477 (Allen & Dynes, PRB 12, 905 (1975);
    # digits from Kiessling, Altshuler & Yuzbashyan, arXiv:2409.02121). For an Einstein mode <ω²> = ω_E².
    lam = 1e4
    tc = eliashberg_tc(W, _scaled(_einstein(), lam), 0.0)
    assert tc / (math.sqrt(lam) * W[E_BIN] * MEV_TO_K) == pytest.approx(0.1827262477, rel=1e-3)


def test_weak_coupling_limit():
    # BCS with the mass renormalisation gives ln(Tc/ω_E) = ln(2e^γ/π) - (1+λ)/λ + c + O(λ); for an
    # Einstein spectrum the Eliashberg equations give c = -1/2 (Marsiglio, arXiv:1807.04907).
    # g(λ) = ln(Tc/ω_E) + (1+λ)/λ is extrapolated to λ = 0 through three small couplings.
    lams = np.array([0.15, 0.2, 0.25])
    w_e_K = W[E_BIN] * MEV_TO_K
    g = [math.log(eliashberg_tc(W, _scaled(_einstein(), lam), 0.0) / w_e_K) + (1 + lam) / lam for lam in lams]
    g0 = np.polyval(np.polyfit(lams, g, 2), 0.0)
    assert g0 == pytest.approx(math.log(2 * math.exp(np.euler_gamma) / math.pi) - 0.5, abs=2e-3)


def test_mu_star_rescaling_removes_cutoff_dependence():
    a = _scaled(SHAPES["two_peak"], 1.0)
    mu = 0.12
    factors = (5.0, 20.0)
    rescaled = [eliashberg_tc(W, a, mu, cutoff_factor=f) for f in factors]
    # The same μ* applied directly at each cutoff (undo the rescaling: μ*_c = μ for every factor).
    fixed = [eliashberg_tc(W, a, mu / (1.0 + mu * math.log(f)), cutoff_factor=f) for f in factors]
    spread = abs(rescaled[1] - rescaled[0])
    assert spread < 0.1 * abs(fixed[1] - fixed[0])


def test_no_tc_above_the_floor_returns_zero():
    a = _scaled(_einstein(), 0.6)
    tc = eliashberg_tc(W, a, 0.1)
    assert tc > 0
    assert eliashberg_tc(W, a, 0.1, t_min_K=1.05 * tc) == 0.0
    assert eliashberg_tc(W, a, 0.1, t_min_K=0.95 * tc) == pytest.approx(tc, rel=1e-3)
    # Weak coupling below μ*: Tc far below the default floor ω_c / (π (2·16384 + 1)).
    weak = _scaled(_einstein(), 0.2)
    floor_K = 10.0 * W[E_BIN] / (math.pi * (2 * 16384 + 1)) * MEV_TO_K
    assert gap_eigenvalue(W, weak, floor_K, 0.1) < 1.0
    assert eliashberg_tc(W, weak, 0.1) == 0.0


# ---------------------------------------------------------------------------------------------
# the phonon scale: robust to tails
# ---------------------------------------------------------------------------------------------
def test_phonon_scale_is_the_weight_quantile():
    # Uniform a2F on the grid: the cumulative weight is linear in the points, so the 99 % point is
    # found by hand from the cells (first cell 1.25 meV, the others 2 meV).
    a = np.ones_like(W)
    cells = np.full_like(W, 2.0)
    cells[0] = 1.25
    cum = np.concatenate(([0.0], np.cumsum(cells)))
    target = 0.99 * cum[-1]
    i = np.searchsorted(cum, target)
    pts = np.concatenate(([0.0], W))
    expected = pts[i - 1] + (target - cum[i - 1]) / (cum[i] - cum[i - 1]) * (pts[i] - pts[i - 1])
    assert phonon_scale_meV(W, a) == pytest.approx(expected, rel=1e-12)


def test_einstein_ratio_tc_over_omega():
    # lambda = 1, mu* = 0.1 Einstein mode: Tc / omega_E = 0.072 +- 0.002 (Allen & Dynes 1975,
    # Table I / Fig. 1: the exact isotropic Eliashberg result for an Einstein spectrum).
    tc = eliashberg_tc(W, _scaled(_einstein(), 1.0), 0.1)
    assert tc / (W[E_BIN] * MEV_TO_K) == pytest.approx(0.072, abs=0.002)


@pytest.fixture(scope="module")
def al_binned():
    """QE's fcc Al a2F (example run, smearing 0.020 Ry, shipped in tests/data/qe) on the 51 bins."""
    spec = read_a2f(DATA / "al_a2F.dos4")
    return bin_spectrum(spec.omega_meV, spec.a2f)


def test_tiny_tail_does_not_move_tc(al_binned):
    # A tail of 1e-5 x max in the last bin (what predicted spectra carry) moves lambda by ~1e-5 and
    # Tc_Eliashberg by < 1 %: the cutoff scale is the 99 % weight quantile, not the highest bin.
    tail = al_binned.copy()
    tail[-1] += 1e-5 * al_binned.max()
    assert properties(W, tail)["lambda"] == pytest.approx(properties(W, al_binned)["lambda"], rel=1e-4)
    base = eliashberg_tc(W, al_binned)
    assert base > 0
    assert eliashberg_tc(W, tail) == pytest.approx(base, rel=1e-2)
