"""Spectrum binning: fine grid, Savitzky–Golay(101, 3), 51 bins, the low-frequency edge, the two
recipes, the window, clipping, validation."""

import numpy as np
import pytest
from scipy.integrate import trapezoid
from scipy.signal import savgol_coeffs, savgol_filter

from betenet.data.spectra import (
    SAVGOL_ORDER,
    SAVGOL_WINDOW,
    bin_site_dos,
    bin_spectrum,
    lambda_above_window,
    validate_binned,
)
from betenet.errors import InputError
from betenet.physics.a2f_files import read_a2f
from betenet.physics.properties import properties
from betenet.physics.units import BIN_CENTRES_MEV, N_BINS, PAPER_GRID, BinGrid

FINE_GRID_MEV = PAPER_GRID.fine

DW = 2.0  # bin spacing (meV)
FREQ = np.arange(0.0, 150.0, 0.05)  # a finer input grid than the 0.1 meV target grid


def gaussian(w, mu, sigma, area=1.0):
    return area * np.exp(-((w - mu) ** 2) / (2 * sigma**2)) / (np.sqrt(2 * np.pi) * sigma)


def test_fine_grid_is_release_grid():
    # 0.25..100.95 meV in 0.1 meV steps: (101 - 0.25) / 0.1 = 1007.5 -> 1008 points
    assert FINE_GRID_MEV.size == 1008
    assert FINE_GRID_MEV[0] == 0.25 and FINE_GRID_MEV[-1] == pytest.approx(100.95, abs=1e-12)
    np.testing.assert_allclose(np.diff(FINE_GRID_MEV), 0.1, atol=1e-12)
    # every bin centre (0.25 + 2k) is fine-grid point 20k
    np.testing.assert_allclose(FINE_GRID_MEV[::20][:N_BINS], BIN_CENTRES_MEV, atol=1e-12)


def test_smooth_gaussian_keeps_area_mean_and_width():
    """SG of order 3 has a kernel whose 1st..3rd moments vanish, so it preserves area, mean and
    variance of a spectrum. Sampling a sigma = 5 meV Gaussian every 2 meV integrates it with error
    ~exp(-2 pi^2 sigma^2 / h^2) = exp(-123) (Poisson summation), so area, mean and width must come
    out as the analytical 1, 40 meV, 5 meV up to the clipped ringing (tiny here)."""
    mu, sigma = 40.0, 5.0
    b = bin_spectrum(FREQ, gaussian(FREQ, mu, sigma))
    area = b.sum() * DW
    mean = (b * BIN_CENTRES_MEV).sum() * DW / area
    width = np.sqrt((b * (BIN_CENTRES_MEV - mean) ** 2).sum() * DW / area)
    assert area == pytest.approx(1.0, abs=1e-3)
    assert mean == pytest.approx(mu, abs=1e-3)
    assert width == pytest.approx(sigma, rel=1e-3)
    assert BIN_CENTRES_MEV[np.argmax(b)] == pytest.approx(40.25)  # bin nearest the peak


def test_peak_lowering_matches_sg_expansion():
    """Leading SG error on a smooth f: (m4/4!) f'''' + (m6/6!) f^(6), m_k = sum_j c_j (j h)^k.
    For a Gaussian at its peak f''''/f = 3/sigma^4 and f^(6)/f = -15/sigma^6."""
    mu, sigma = 40.25, 5.0  # peak on a bin centre
    c = savgol_coeffs(SAVGOL_WINDOW, SAVGOL_ORDER)
    off = (np.arange(SAVGOL_WINDOW) - SAVGOL_WINDOW // 2) * 0.1
    m4, m6 = (c * off**4).sum(), (c * off**6).sum()
    predicted = m4 / 24 * 3 / sigma**4 + m6 / 720 * (-15) / sigma**6  # relative change of the peak
    b = bin_spectrum(FREQ, gaussian(FREQ, mu, sigma))
    peak = gaussian(mu, mu, sigma)
    assert predicted < -0.005  # the filter does visibly lower a 5 meV peak ...
    assert b[20] / peak - 1 == pytest.approx(predicted, abs=1e-3)  # ... by the predicted amount


def test_delta_input_gives_clipped_sg_kernel():
    """A single spike on the fine grid comes out as the SG kernel itself (linear filter), sampled
    every 20 fine points and clipped at 0: bins 20 +- m get h * c[50 + 20 m], zero elsewhere."""
    h, j = 10.0, 400  # spike at fine point 400 = 40.25 meV = bin 20
    v = np.zeros_like(FINE_GRID_MEV)
    v[j] = h
    b = bin_spectrum(FINE_GRID_MEV, v)
    c = savgol_coeffs(SAVGOL_WINDOW, SAVGOL_ORDER)
    expected = np.zeros(N_BINS)
    for m in (-2, -1, 0, 1, 2):
        expected[20 + m] = max(0.0, h * c[SAVGOL_WINDOW // 2 + 20 * m])
    np.testing.assert_allclose(b, expected, rtol=1e-9, atol=1e-12)
    assert np.argmax(b) == 20 and np.all(b >= 0)
    assert expected[18] == 0.0 < expected[19]  # the kernel's negative lobe was really clipped


def test_negative_parts_are_clipped():
    pos, neg = gaussian(FREQ, 40.0, 5.0), 0.5 * gaussian(FREQ, 80.0, 5.0)
    b = bin_spectrum(FREQ, pos - neg)
    assert np.all(b >= 0)
    near_neg = np.abs(BIN_CENTRES_MEV - 80.0) < 10
    assert np.all(b[near_neg] == 0.0)
    # far from the negative lobe the result is that of the positive part alone (its tail at
    # >= 30 meV = 6 sigma is below 1e-8 of the peak)
    near_pos = np.abs(BIN_CENTRES_MEV - 40.0) < 10
    np.testing.assert_allclose(b[near_pos], bin_spectrum(FREQ, pos)[near_pos], atol=1e-8)
    # filtering is linear, so flipping the sign flips every bin: wherever the positive spectrum
    # gave a positive bin, the flipped one is clipped to exactly 0
    flipped, kept = bin_spectrum(FREQ, -pos), bin_spectrum(FREQ, pos)
    assert np.count_nonzero(kept) >= 10 and np.all(flipped[kept > 0] == 0.0)


def test_out_of_range_is_zero_and_edge_mode_holds_values():
    f = np.arange(20.0, 60.0 + 1e-9, 0.1)
    b = bin_spectrum(f, np.ones_like(f))
    half = SAVGOL_WINDOW // 2 * 0.1  # 5 meV: how far the filter reaches
    inside = (BIN_CENTRES_MEV > 20 + half + 0.1) & (BIN_CENTRES_MEV < 60 - half - 0.1)
    outside = (BIN_CENTRES_MEV < 20 - half - 0.1) | (BIN_CENTRES_MEV > 60 + half + 0.1)
    np.testing.assert_allclose(b[inside], 1.0, atol=1e-9)  # SG reproduces a constant exactly
    assert np.all(b[outside] == 0.0)
    assert inside.sum() == 15 and outside.sum() == 26  # 26.25..54.25; 0.25..14.25 and 66.25..100.25
    # the paper recipe's np.interp without left/right holds the edge values: a constant stays constant
    np.testing.assert_allclose(bin_spectrum(f, np.ones_like(f), recipe="paper"), 1.0, atol=1e-9)


def test_unsorted_input_is_sorted_first():
    g = gaussian(FREQ, 30.0, 4.0)
    perm = np.random.default_rng(0).permutation(FREQ.size)
    np.testing.assert_array_equal(bin_spectrum(FREQ[perm], g[perm]), bin_spectrum(FREQ, g))


@pytest.mark.parametrize(
    "freq, values, reason",
    [
        ([1.0, 2.0, np.nan], [0.0, 1.0, 0.0], "NaN or inf"),
        ([1.0, 2.0, 3.0], [0.0, np.inf, 0.0], "NaN or inf"),
        ([1.0, 2.0, 3.0], [0.0, 1.0], "shape"),
        ([1.0, 2.0, 2.0], [0.0, 1.0, 0.0], "repeated frequency 2"),
        ([1.0], [1.0], "at least 2"),
        ([[1.0, 2.0]], [1.0, 2.0], "1-D"),
    ],
)
def test_bad_spectra_name_the_input(freq, values, reason):
    with pytest.raises(InputError, match=reason) as err:
        bin_spectrum(freq, values, name="mp-149 a2F")
    assert err.value.subject == "mp-149 a2F"


def test_site_dos_is_per_site_bin_spectrum():
    dos = np.stack([gaussian(FREQ, 20.0, 3.0), gaussian(FREQ, 60.0, 6.0), np.zeros_like(FREQ)])
    out = bin_site_dos(FREQ, dos)
    assert out.shape == (3, N_BINS)
    for row, raw in zip(out, dos):
        np.testing.assert_allclose(row, bin_spectrum(FREQ, raw), atol=1e-14)
    with pytest.raises(InputError, match="site DOS must have shape"):
        bin_site_dos(FREQ, dos[:, :-1], name="7 coarse PhDOS")
    bad = dos.copy()
    bad[1, 5] = np.nan
    with pytest.raises(InputError, match="site 1"):
        bin_site_dos(FREQ, bad)


def test_validate_binned():
    good = bin_spectrum(FREQ, gaussian(FREQ, 40.0, 5.0))
    np.testing.assert_array_equal(validate_binned(good, "x"), good)
    with pytest.raises(InputError, match=r"expected shape \(51,\).*got \(50,\)") as err:
        validate_binned(good[:-1], "entry 12 target")
    assert err.value.subject == "entry 12 target"
    with pytest.raises(InputError, match="NaN"):
        validate_binned(np.full(N_BINS, np.nan), "x")
    neg = good.copy()
    neg[3] = -1e-3
    with pytest.raises(InputError, match="negative value"):
        validate_binned(neg, "x")
    validate_binned(neg, "x", tol=1e-2)  # within tolerance
    assert validate_binned(np.zeros((4, N_BINS)), "x", rows=4).shape == (4, N_BINS)
    with pytest.raises(InputError, match=r"\(3, 51\)"):
        validate_binned(np.zeros((4, N_BINS)), "x", rows=3)


# ------------------------------------------------------------------------------------------
# the low-frequency edge and the two recipes
# ------------------------------------------------------------------------------------------
def test_physical_recipe_is_exact_for_an_odd_cubic():
    """a2F = w^3 is odd, so its odd continuation below 0 is w^3 itself, a cubic: Savitzky–Golay of
    order 3 reproduces it exactly everywhere. Bins 1.. are the samples c_k^3; bin 0 follows the w^2
    law from bin 1: b_0 = c_1^3 (c_0/c_1)^2."""
    f = np.arange(0.0, 150.0, 0.01)
    b = bin_spectrum(f, f**3)
    c = BIN_CENTRES_MEV
    np.testing.assert_allclose(b[1:], c[1:] ** 3, rtol=1e-6)
    assert b[0] == pytest.approx(c[1] ** 3 * (c[0] / c[1]) ** 2, rel=1e-6)


def test_first_bin_follows_the_w2_law():
    f = np.arange(0.0, 150.0, 0.05)
    spectrum = gaussian(f, 6.0, 2.5) + gaussian(f, 30.0, 4.0)  # steep rise at a few meV
    b = bin_spectrum(f, spectrum)
    c = BIN_CENTRES_MEV
    assert b[0] == pytest.approx(b[1] * (c[0] / c[1]) ** 2, rel=1e-12)


def test_paper_recipe_is_the_release_procedure():
    """The release, written out: np.interp without left/right onto arange(0.25, 101, 0.1),
    savgol_filter(101, 3) in interp mode, np.interp onto arange(0.25, 101, 2), clip at 0."""
    rng = np.random.default_rng(4)
    f = np.sort(rng.uniform(0.5, 90.0, 700))
    v = gaussian(f, 20.0, 3.0) + 0.3 * gaussian(f, 55.0, 6.0) + 0.01 * rng.standard_normal(f.size)
    fine = np.arange(0.25, 101.0, 0.1)
    release = np.clip(np.interp(np.arange(0.25, 101.0, 2.0), fine,
                                savgol_filter(np.interp(fine, f, v), 101, 3, mode="interp")), 0, None)
    np.testing.assert_array_equal(bin_spectrum(f, v, recipe="paper"), release)
    with pytest.raises(ValueError, match="recipe"):
        bin_spectrum(f, v, recipe="savgol")


def test_binned_lambda_matches_qe_within_two_percent(qe_al_dir):
    """QE's fcc Al files with little negative weight (smearings 0.030..0.050 Ry, files 6..10: negative
    a2F at most ~0.2 % of the positive weight): lambda of the 51 bins stays within 2 % of the lambda
    QE printed at the end of each file."""
    for n in range(6, 11):
        spec = read_a2f(qe_al_dir / f"a2F.dos{n}")
        lam = properties(BIN_CENTRES_MEV, bin_spectrum(spec.omega_meV, spec.a2f))["lambda"]
        assert lam == pytest.approx(spec.lambda_reported, rel=0.02), n


# ------------------------------------------------------------------------------------------
# the window
# ------------------------------------------------------------------------------------------
def test_lambda_above_window_is_the_lost_share():
    f = np.arange(0.05, 200.0, 0.1)
    a = gaussian(f, 30.0, 5.0) + gaussian(f, 150.0, 8.0)
    top = PAPER_GRID.top_meV
    # the share of 2 int a/w dw above the top, by the trapezoid rule on the same points
    expected = trapezoid((a / f)[f > top], f[f > top]) / trapezoid(a / f, f)
    assert lambda_above_window(f, a) == pytest.approx(expected, rel=2e-3)
    assert 0.1 < expected < 0.25
    # a grid reaching 200 meV represents it
    wide = BinGrid(n_bins=101)
    assert lambda_above_window(f, a, wide) == 0.0
    b = bin_spectrum(f, a, grid=wide)
    assert b.shape == (101,) and wide.centres[np.argmax(b[60:]) + 60] == pytest.approx(150.25)
    assert lambda_above_window(f, -a) == 0.0  # no positive lambda: nothing to lose


def test_wider_grid_keeps_the_paper_grid_values_below_its_top():
    f = np.arange(0.0, 150.0, 0.05)
    a = gaussian(f, 30.0, 4.0)
    narrow, wide = bin_spectrum(f, a), bin_spectrum(f, a, grid=BinGrid(n_bins=101))
    # identical processing of the same input: the first 45 bins (far from either top) agree
    np.testing.assert_allclose(wide[:45], narrow[:45], atol=1e-12)
