"""Eliashberg moments and Tc formulas: analytic spectra, hand-evaluated Tc, edge cases, gradients."""

import math

import numpy as np
import pytest
import torch

from betenet.physics.eliashberg import (
    LAMBDA_EPS,
    allen_dynes_tc_torch,
    cell_widths_torch,
    mcmillan_tc_torch,
    moments_torch,
)
from betenet.physics.properties import (
    PROPERTIES,
    a2f_properties,
    allen_dynes_lambda,
    allen_dynes_tc,
    lambda_weights,
    mcmillan_tc,
    properties,
    spectrum_warnings,
)
from betenet.physics.units import BIN_CENTRES_MEV, MEV_TO_K

MU = 0.10


def _box_spectrum(a, b, height, step):
    """a2F = height on [a, b] sampled at cell centres of a uniform grid whose cell edges hit a and b."""
    omega = np.arange(step / 2, 150.0, step)
    a2f = np.where((omega > a) & (omega < b), height, 0.0)
    return omega, a2f


def _smooth_spectrum(n=None, seed=0, scale=1.0):
    """Positive a2F on the 51 bins with lambda of order 1 (two Gaussian peaks, random weights)."""
    rng = np.random.default_rng(seed)
    shape = () if n is None else (n,)
    w = BIN_CENTRES_MEV
    a1 = rng.uniform(0.2, 0.6, size=shape + (1,))
    a2 = rng.uniform(0.1, 0.4, size=shape + (1,))
    spec = a1 * np.exp(-((w - 15.0) / 6.0) ** 2) + a2 * np.exp(-((w - 45.0) / 10.0) ** 2)
    return scale * spec + 1e-3  # strictly positive everywhere


# ------------------------------------------------------------------------------------------
# integration rule
# ------------------------------------------------------------------------------------------
def test_cell_widths_uniform_and_nonuniform():
    uniform = cell_widths_torch(torch.tensor([1.0, 3.0, 5.0, 7.0], dtype=torch.float64))
    assert torch.allclose(uniform, torch.full((4,), 2.0, dtype=torch.float64))
    # non-uniform: interior cells span the midpoints to the neighbours, ends take the adjacent
    # interval; the cell of the point at 0 is cut at 0 ([-0.5, 0.5] -> [0, 0.5])
    w = cell_widths_torch(torch.tensor([0.0, 1.0, 3.0, 7.0], dtype=torch.float64))
    assert torch.allclose(w, torch.tensor([0.5, 1.5, 3.0, 4.0], dtype=torch.float64))
    assert cell_widths_torch(torch.tensor([5.0])).item() == 0.0


def test_first_bin_cell_starts_at_zero():
    # The binned grid's first point 0.25 meV: cell [0, 1.25] (not [-0.75, 1.25]); the others 2 meV.
    w = cell_widths_torch(torch.tensor(BIN_CENTRES_MEV, dtype=torch.float64)).numpy()
    assert w[0] == pytest.approx(0.25 + (BIN_CENTRES_MEV[1] - BIN_CENTRES_MEV[0]) / 2)
    np.testing.assert_allclose(w[1:], np.diff(BIN_CENTRES_MEV)[0])
    # so d lambda / d a2F_0 = 2 * 1.25 / 0.25 = 10, not 16
    assert lambda_weights(BIN_CENTRES_MEV)[0] == pytest.approx(2 * w[0] / BIN_CENTRES_MEV[0])


def test_qe_grid_cells_are_qe_cells():
    # QE's a2F grid w_i = (i + 1/2) Delta: every cell is Delta wide and the first starts at 0.
    delta = 0.3
    omega = (np.arange(200) + 0.5) * delta
    w = cell_widths_torch(torch.tensor(omega)).numpy()
    np.testing.assert_allclose(w, delta, rtol=1e-12)


def test_box_spectrum_matches_closed_form():
    # a2F = H on [a, b]:  lambda = 2H ln(b/a);  ln w_log = (ln a + ln b)/2 -> w_log = sqrt(ab);
    # w_2^2 = (2H/lambda) (b^2 - a^2)/2 = (b^2 - a^2) / (2 ln(b/a)).
    a, b, height = 10.0, 30.0, 0.25
    omega, a2f = _box_spectrum(a, b, height, step=0.01)
    m = properties(omega, a2f)
    lam = 2 * height * math.log(b / a)
    wlog = math.sqrt(a * b)
    w2 = math.sqrt((b * b - a * a) / (2 * math.log(b / a)))
    assert m["lambda"] == pytest.approx(lam, rel=1e-6)
    assert m["omega_log_K"] == pytest.approx(wlog * MEV_TO_K, rel=1e-6)
    assert m["omega_2_K"] == pytest.approx(w2 * MEV_TO_K, rel=1e-6)


def test_einstein_spectrum_narrow_box():
    # a2F = (lam0 w0 / 2) delta(w - w0)  ->  lambda = lam0, w_log = w_2 = w0.
    lam0, w0, half = 0.8, 20.0, 0.1
    omega, a2f = _box_spectrum(w0 - half, w0 + half, lam0 * w0 / 2 / (2 * half), step=0.01)
    m = properties(omega, a2f)
    # box of half-width 0.1 around 20 meV: relative deviations of order (half/w0)^2 = 2.5e-5
    assert m["lambda"] == pytest.approx(lam0, rel=1e-4)
    assert m["omega_log_K"] == pytest.approx(w0 * MEV_TO_K, rel=1e-4)
    assert m["omega_2_K"] == pytest.approx(w0 * MEV_TO_K, rel=1e-4)


def test_two_delta_spectrum_hand_derived():
    # Two single-bin deltas on a 1 meV grid: c1 delta(w-10) + c2 delta(w-40) with
    # lambda_i = 2 c_i / w_i = 0.6 and 0.2, i.e. c1 = 3, c2 = 4 (bin heights c_i / 1 meV).
    # lambda = 0.8;  ln w_log = (0.6 ln 10 + 0.2 ln 40)/0.8 = ln(10^0.75 40^0.25) = ln(10 sqrt 2);
    # w_2^2 = (0.6*10^2 + 0.2*40^2)/0.8 = (60 + 320)/0.8 = 475.
    omega = np.arange(1.0, 101.0, 1.0)
    a2f = np.zeros_like(omega)
    a2f[omega == 10.0] = 3.0
    a2f[omega == 40.0] = 4.0
    m = properties(omega, a2f)
    assert m["lambda"] == pytest.approx(0.8, rel=1e-12)
    assert m["omega_log_K"] == pytest.approx(10 * math.sqrt(2) * MEV_TO_K, rel=1e-12)
    assert m["omega_2_K"] == pytest.approx(math.sqrt(475.0) * MEV_TO_K, rel=1e-12)


def test_frequency_unit_does_not_change_lambda():
    omega = BIN_CENTRES_MEV
    a2f = _smooth_spectrum()
    in_mev = properties(omega, a2f)
    in_other_unit = properties(omega / 13.6, a2f)  # same spectrum, frequencies in another unit
    assert in_other_unit["lambda"] == pytest.approx(in_mev["lambda"], rel=1e-12)
    assert in_other_unit["omega_log_K"] == pytest.approx(in_mev["omega_log_K"] / 13.6, rel=1e-12)


def test_only_positive_frequencies_contribute():
    # Points at w <= 0 are ignored entirely (their a2F can be anything); on a uniform grid the
    # remaining cells keep the grid spacing, so the result equals that of the positive part alone.
    full = np.arange(-4.0, 102.0, 2.0)
    a2f_full = np.interp(full, BIN_CENTRES_MEV, _smooth_spectrum())
    a2f_full[full <= 0] = [5.0, -7.0, 3.0]
    pos = full > 0
    got, want = properties(full, a2f_full), properties(full[pos], a2f_full[pos])
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-12)


# ------------------------------------------------------------------------------------------
# Tc formulas
# ------------------------------------------------------------------------------------------
def test_allen_dynes_hand_evaluation():
    lam, wlog, w2, mu = 1.0, 300.0, 400.0, 0.1
    big_l1 = 2.46 * (1 + 3.8 * mu)  # 3.3948
    big_l2 = 1.82 * (1 + 6.3 * mu) * (w2 / wlog)  # 1.82 * 1.63 * 4/3
    f1 = (1 + (lam / big_l1) ** 1.5) ** (1 / 3)
    f2 = 1 + (w2 / wlog - 1) * lam**2 / (lam**2 + big_l2**2)
    expo = -1.04 * (1 + lam) / (lam - mu * (1 + 0.62 * lam))  # -2.08 / 0.838
    tc_hand = f1 * f2 * wlog / 1.2 * math.exp(expo)
    assert allen_dynes_tc(lam, wlog, w2, mu) == pytest.approx(tc_hand, rel=1e-12)
    # intermediate values by hand: L1 = 3.3948, L2 = 3.95547, f1 = (1 + 0.294568^1.5)^(1/3) = 1.05068,
    # f2 = 1 + (1/3)/(1 + 3.95547^2) = 1.020025, exponent = -2.08/0.838:  Tc = 22.390 K
    assert tc_hand == pytest.approx(1.05068 * 1.020025 * 250.0 * math.exp(-2.08 / 0.838), rel=1e-5)
    tc_mcm_hand = wlog / 1.2 * math.exp(expo)
    assert mcmillan_tc(lam, wlog, mu) == pytest.approx(tc_mcm_hand, rel=1e-12)


def test_allen_dynes_reduces_to_mcmillan_weak_coupling_einstein():
    # w_2 = w_log makes f2 = 1; f1 -> 1 as lambda -> 0.
    lam = np.array([0.3, 0.5])
    ad = allen_dynes_tc(lam, 250.0, 250.0, MU)
    mcm = mcmillan_tc(lam, 250.0, MU)
    f1 = (1 + (lam / (2.46 * (1 + 3.8 * MU))) ** 1.5) ** (1 / 3)
    np.testing.assert_allclose(ad, f1 * mcm, rtol=1e-12)


def test_tc_vectorised_and_mu_star_broadcast():
    lam = np.array([0.5, 1.0, 2.0])
    mu = np.array([0.08, 0.10, 0.13])
    tc = allen_dynes_tc(lam, 300.0, 350.0, mu)
    assert tc.shape == (3,)
    for i in range(3):
        assert tc[i] == pytest.approx(allen_dynes_tc(lam[i], 300.0, 350.0, mu[i]), rel=1e-14)
    assert isinstance(allen_dynes_tc(0.5, 300.0, 350.0), float)
    # a larger mu* lowers Tc
    assert allen_dynes_tc(0.8, 300.0, 350.0, 0.15) < allen_dynes_tc(0.8, 300.0, 350.0, 0.10)


def test_tc_zero_below_threshold_and_continuous_above():
    lam_c = MU / (1 - 0.62 * MU)  # lambda - mu*(1 + 0.62 lambda) = 0
    below = np.array([0.0, 0.05, lam_c - 1e-9, lam_c])
    assert np.all(allen_dynes_tc(below, 300.0, 350.0, MU) == 0.0)
    assert np.all(mcmillan_tc(below, 300.0, MU) == 0.0)
    # approaching lam_c from above Tc decreases monotonically to 0 without a jump
    eps = np.logspace(-1, -12, 120)
    for tc in (allen_dynes_tc(lam_c + eps, 300.0, 350.0, MU), mcmillan_tc(lam_c + eps, 300.0, MU)):
        assert np.all(np.isfinite(tc)) and np.all(tc >= 0)
        assert np.all(np.diff(tc) <= 0)
        assert tc[0] > 0
        # denominator ~ 0.94 eps: Tc <= (w_log/1.2) * 1.1 * exp(-1.04 (1 + lam_c) / (0.94 eps))
        bound = 300.0 / 1.2 * 1.1 * np.exp(-1.04 * (1 + lam_c) / (0.95 * eps))
        assert np.all(tc <= bound)
    # fine scan through the threshold: the largest step between neighbours is tiny
    lam = np.linspace(lam_c - 0.01, lam_c + 0.01, 4001)
    tc = allen_dynes_tc(lam, 300.0, 350.0, MU)
    assert np.max(np.abs(np.diff(tc))) < 1e-30


def test_tc_zero_for_zero_or_invalid_frequencies():
    assert allen_dynes_tc(1.0, 0.0, 0.0, MU) == 0.0
    assert mcmillan_tc(1.0, 0.0, MU) == 0.0


# ------------------------------------------------------------------------------------------
# edge cases: no NaN, finite gradients
# ------------------------------------------------------------------------------------------
def _all_outputs_and_grad(omega, a2f_np, dtype=torch.float64):
    a2f = torch.tensor(a2f_np, dtype=dtype, requires_grad=True)
    lam, wlog, w2 = moments_torch(torch.as_tensor(omega, dtype=dtype), a2f)
    tc_ad = allen_dynes_tc_torch(lam, wlog, w2, MU)
    tc_mcm = mcmillan_tc_torch(lam, wlog, MU)
    outs = torch.stack([lam, wlog, w2, tc_ad, tc_mcm])
    grads = [torch.autograd.grad(o, a2f, retain_graph=True)[0] for o in outs]
    return outs.detach(), torch.stack(grads)


def test_all_zero_spectrum():
    outs, grads = _all_outputs_and_grad(BIN_CENTRES_MEV, np.zeros(51))
    assert torch.equal(outs, torch.zeros(5, dtype=torch.float64))
    assert torch.isfinite(grads).all()
    props = a2f_properties(BIN_CENTRES_MEV, np.zeros(51))
    assert tuple(props) == PROPERTIES
    assert all(v == 0.0 for v in props.values())


def test_weak_coupling_below_threshold_has_zero_tc_and_finite_gradients():
    a2f = 0.01 * _smooth_spectrum()
    outs, grads = _all_outputs_and_grad(BIN_CENTRES_MEV, a2f)
    lam = outs[0].item()
    assert 0 < lam < MU / (1 - 0.62 * MU)
    assert outs[3].item() == 0.0 and outs[4].item() == 0.0
    assert outs[1].item() > 0 and outs[2].item() > 0
    assert torch.isfinite(grads).all()


def test_single_bin_spectrum():
    # all weight in bin k: w_log = w_2 = w_k exactly, lambda = 2 a2F_k dw / w_k
    a2f = np.zeros(51)
    a2f[10] = 0.4
    m = properties(BIN_CENTRES_MEV, a2f)
    assert m["lambda"] == pytest.approx(2 * 0.4 * 2.0 / BIN_CENTRES_MEV[10], rel=1e-12)
    assert m["omega_log_K"] == pytest.approx(BIN_CENTRES_MEV[10] * MEV_TO_K, rel=1e-12)
    assert m["omega_2_K"] == pytest.approx(BIN_CENTRES_MEV[10] * MEV_TO_K, rel=1e-12)
    outs, grads = _all_outputs_and_grad(BIN_CENTRES_MEV, a2f)
    assert torch.isfinite(outs).all() and torch.isfinite(grads).all()


def test_one_point_grid_integrates_to_zero():
    outs, grads = _all_outputs_and_grad(np.array([10.0]), np.array([3.0]))
    assert torch.equal(outs, torch.zeros(5, dtype=torch.float64))
    assert torch.isfinite(grads).all()


def test_negative_entries_and_negative_lambda():
    a2f = _smooth_spectrum()
    a2f[::7] -= 0.002  # QE-like small negative values
    outs, grads = _all_outputs_and_grad(BIN_CENTRES_MEV, a2f)
    assert torch.isfinite(outs).all() and torch.isfinite(grads).all()
    # mostly negative spectrum: lambda < 0 is reported as is, moments and Tc are 0
    outs, grads = _all_outputs_and_grad(BIN_CENTRES_MEV, -a2f)
    assert outs[0].item() < 0 and torch.equal(outs[1:], torch.zeros(4, dtype=torch.float64))
    assert torch.isfinite(grads).all()


def test_float32_keeps_dtype_and_agrees():
    a2f = _smooth_spectrum(n=4, seed=3)
    omega32 = torch.tensor(BIN_CENTRES_MEV, dtype=torch.float32)
    lam, wlog, w2 = moments_torch(omega32, torch.tensor(a2f, dtype=torch.float32))
    assert lam.dtype == wlog.dtype == w2.dtype == torch.float32
    ref = properties(BIN_CENTRES_MEV, a2f)
    np.testing.assert_allclose(lam.numpy(), ref["lambda"], rtol=1e-5)
    np.testing.assert_allclose(wlog.numpy(), ref["omega_log_K"], rtol=1e-5)
    np.testing.assert_allclose(w2.numpy(), ref["omega_2_K"], rtol=1e-5)
    tc = allen_dynes_tc_torch(lam, wlog, w2)
    assert tc.dtype == torch.float32 and torch.isfinite(tc).all()


# ------------------------------------------------------------------------------------------
# batching and gradients
# ------------------------------------------------------------------------------------------
def test_batched_torch_matches_numpy_per_spectrum():
    a2f = _smooth_spectrum(n=6, seed=1)
    a2f[0] = 0.0  # one empty spectrum in the batch
    a2f[1] *= 0.01  # one below threshold
    lam, wlog, w2 = moments_torch(torch.tensor(BIN_CENTRES_MEV), torch.tensor(a2f))
    tc = allen_dynes_tc_torch(lam, wlog, w2, MU)
    tcm = mcmillan_tc_torch(lam, wlog, MU)
    assert lam.shape == (6,)
    for i in range(6):
        p = a2f_properties(BIN_CENTRES_MEV, a2f[i], MU)
        assert lam[i].item() == pytest.approx(p["lambda"], rel=1e-14, abs=1e-300)
        assert wlog[i].item() == pytest.approx(p["omega_log_K"], rel=1e-14, abs=1e-300)
        assert w2[i].item() == pytest.approx(p["omega_2_K"], rel=1e-14, abs=1e-300)
        assert tc[i].item() == pytest.approx(p["tc_K"], rel=1e-14, abs=1e-300)
        assert tcm[i].item() == pytest.approx(mcmillan_tc(p["lambda"], p["omega_log_K"], MU), rel=1e-14, abs=1e-300)
    # numpy wrapper on the whole batch gives arrays of the batch shape
    m = properties(BIN_CENTRES_MEV, a2f.reshape(2, 3, 51))
    assert m["lambda"].shape == (2, 3)
    np.testing.assert_allclose(m["lambda"].ravel(), lam.numpy(), rtol=1e-14)


def test_gradcheck_moments_and_tc():
    omega = torch.tensor(BIN_CENTRES_MEV, dtype=torch.float64)
    a2f = torch.tensor(_smooth_spectrum(n=2, seed=2), dtype=torch.float64, requires_grad=True)

    def all_outputs(x):
        lam, wlog, w2 = moments_torch(omega, x)
        return lam, wlog, w2, allen_dynes_tc_torch(lam, wlog, w2, MU), mcmillan_tc_torch(lam, wlog, MU)

    lam, _, _, tc, _ = all_outputs(a2f)
    assert torch.all(lam > 0.5) and torch.all(tc > 0)  # the gradient of Tc is checked where Tc > 0
    assert torch.autograd.gradcheck(all_outputs, (a2f,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_gradcheck_tc_wrt_inputs_and_mu_star():
    lam = torch.tensor([0.4, 1.2], dtype=torch.float64, requires_grad=True)
    wlog = torch.tensor([250.0, 400.0], dtype=torch.float64, requires_grad=True)
    w2 = torch.tensor([300.0, 520.0], dtype=torch.float64, requires_grad=True)
    mu = torch.tensor(0.12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(allen_dynes_tc_torch, (lam, wlog, w2, mu))
    assert torch.autograd.gradcheck(mcmillan_tc_torch, (lam, wlog, mu))


def test_gradient_finite_near_threshold():
    lam_c = MU / (1 - 0.62 * MU)
    lam = torch.tensor(lam_c + np.logspace(-1, -14, 60), dtype=torch.float64, requires_grad=True)
    tc = allen_dynes_tc_torch(lam, torch.full_like(lam, 300.0), torch.full_like(lam, 350.0), MU)
    (g,) = torch.autograd.grad(tc.sum(), lam)
    assert torch.isfinite(g).all() and torch.all(g >= 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vanishing_spectrum_has_finite_gradients(dtype):
    # Spectra scaled to 1e-30: lambda is positive but below LAMBDA_EPS, so w_log, w_2 and Tc are 0
    # and no gradient divides by lambda (in float32 1/lambda^2 would overflow to inf).
    a2f = torch.tensor(_smooth_spectrum(n=3, seed=5) * 1e-30, dtype=dtype, requires_grad=True)
    lam, wlog, w2 = moments_torch(torch.tensor(BIN_CENTRES_MEV, dtype=dtype), a2f)
    tc = allen_dynes_tc_torch(lam, wlog, w2, MU)
    assert torch.all(lam > 0) and torch.all(lam < LAMBDA_EPS)
    assert torch.all(wlog == 0) and torch.all(w2 == 0) and torch.all(tc == 0)
    for out in (lam, wlog, w2, tc):
        (g,) = torch.autograd.grad(out.sum(), a2f, retain_graph=True)
        assert torch.isfinite(g).all()


def test_spectrum_warnings_report_negative_weight():
    a2f = _smooth_spectrum()
    clean, facts = spectrum_warnings(BIN_CENTRES_MEV, a2f)
    assert clean == [] and facts["negative_lambda_fraction"] == 0.0
    noisy = a2f.copy()
    noisy[:5] -= 0.05
    notes, facts = spectrum_warnings(BIN_CENTRES_MEV, noisy)
    weights = lambda_weights(BIN_CENTRES_MEV)
    neg = -(weights * noisy)[noisy < 0].sum()
    assert facts["negative_lambda_fraction"] == pytest.approx(neg / np.abs(weights * noisy).sum())
    # the properties integrate as given; the warning tells the clipped value
    assert facts["lambda_as_given"] == pytest.approx(properties(BIN_CENTRES_MEV, noisy)["lambda"])
    assert facts["lambda_negatives_zeroed"] == pytest.approx(
        properties(BIN_CENTRES_MEV, np.clip(noisy, 0, None))["lambda"])
    assert len(notes) == 1 and "as given" in notes[0]


def test_allen_dynes_lambda_inverts_the_formula():
    lam = np.array([0.2, 0.45, 0.9, 1.7, 3.0])
    wlog = np.array([150.0, 250.0, 90.0, 400.0, 60.0])
    w2 = 1.2 * wlog
    for mu in (0.1, 0.13):
        tc = allen_dynes_tc(lam, wlog, w2, mu)
        np.testing.assert_allclose(allen_dynes_lambda(tc, wlog, w2, mu), lam, rtol=1e-8)
    # Tc = 0: the threshold lambda mu*/(1 - 0.62 mu*), the largest lambda that gives Tc = 0
    lam_c = allen_dynes_lambda(0.0, 200.0, 240.0, MU)
    assert lam_c == pytest.approx(MU / (1 - 0.62 * MU))
    assert allen_dynes_tc(lam_c, 200.0, 240.0, MU) == 0.0 < allen_dynes_tc(lam_c + 0.05, 200.0, 240.0, MU)
    # unreachable: a Tc above what lambda = lam_max gives, or no phonon scale
    assert np.isnan(allen_dynes_lambda(1e3, 100.0, 120.0, MU))
    assert np.isnan(allen_dynes_lambda(5.0, 0.0, 120.0, MU))
