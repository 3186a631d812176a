"""Linear baseline: PhDOS moments and eDOS(E_F) features against hand derivations, recovery of a
known linear relation, Allen–Dynes T_c from the predictions, JSON round trip."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from betenet.errors import InputError
from betenet.models.baseline import (
    FEATURE_NAMES,
    LinearBaseline,
    baseline_features,
    edos_at_fermi,
    entry_features,
    phdos_moments,
)
from betenet.physics.properties import allen_dynes_tc
from betenet.physics.units import MEV_TO_K

FREQ = np.arange(1.0, 60.0, 1.0)  # uniform 1 meV grid, cells of equal width


def _two_peaks(scale=1.0):
    g = np.zeros_like(FREQ)
    g[FREQ == 10.0] = scale
    g[FREQ == 40.0] = scale
    return g


def test_phdos_moments_two_lines():
    # g = a at w1 = 10 and w2 = 40 meV (equal cells dw): weights a dw / w
    # w_2² = (w1 + w2) / (1/w1 + 1/w2) = w1 w2 = 400 -> w_2 = 20 meV
    # ln w_log = (ln w1 / w1 + ln w2 / w2) / (1/w1 + 1/w2) = (4 ln 10 + ln 40) / 5
    #   -> w_log = (10^4 * 40)^(1/5) meV
    m = phdos_moments(FREQ, _two_peaks())
    assert m["omega_2_K"] == pytest.approx(20.0 * MEV_TO_K)
    assert m["omega_log_K"] == pytest.approx((1e4 * 40) ** 0.2 * MEV_TO_K)
    # scale free, and w <= 0 (imaginary modes stored as negative frequencies) does not count
    m7 = phdos_moments(FREQ, _two_peaks(7.0))
    assert m7["omega_log_K"] == pytest.approx(m["omega_log_K"]) and m7["omega_2_K"] == pytest.approx(m["omega_2_K"])
    f_neg = np.concatenate([[-5.0, 0.0], FREQ])
    g_neg = np.concatenate([[3.0, 2.0], _two_peaks()])
    assert phdos_moments(f_neg, g_neg)["omega_2_K"] == pytest.approx(m["omega_2_K"])


def test_edos_at_fermi_linear_dos():
    # g(E) = 2 + 0.01 E: its mean over [E_F - 50, E_F + 50] is g(E_F) (trapezoid and linear
    # interpolation are exact for a linear function); the grid (step 7) does not hit ±50
    e = np.arange(-203.0, 204.0, 7.0)
    g = 2.0 + 0.01 * e
    assert edos_at_fermi(e, g) == pytest.approx(2.0)
    assert edos_at_fermi(e, g, fermi_meV=10.0) == pytest.approx(2.1)
    # site-projected rows are summed: 0.25 g + 0.75 g = g
    assert edos_at_fermi(e, np.stack([0.25 * g, 0.75 * g])) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="does not cover"):
        edos_at_fermi(e, g, window_meV=300.0)


def test_baseline_features_and_entry_features():
    e = np.arange(-100.0, 101.0, 5.0)
    edos = np.stack([np.full_like(e, 1.5), np.full_like(e, 0.5)])  # total 2 per meV
    site_ph = np.stack([_two_peaks(0.3), _two_peaks(0.7)])
    row = baseline_features(e, edos, FREQ, site_ph)
    assert row.shape == (len(FEATURE_NAMES),)
    assert row[0] == pytest.approx(2.0)
    assert row[2] == pytest.approx(20.0 * MEV_TO_K)
    entry = SimpleNamespace(id="mp-1", extra={"edos_freq_meV": e, "edos": edos},
                            phdos_coarse_freq_meV=FREQ, phdos_coarse_site=site_ph)
    np.testing.assert_allclose(entry_features(entry), row)
    no_edos = SimpleNamespace(id="mp-2", extra={}, phdos_coarse_freq_meV=FREQ, phdos_coarse_site=site_ph)
    with pytest.raises(InputError, match="mp-2"):
        entry_features(no_edos)


def _synthetic(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.uniform(0.5, 5.0, n), rng.uniform(50, 400, n), rng.uniform(80, 500, n)])
    w = {
        "lambda": np.array([0.08, 0.0005, -0.0002, 0.1]),
        "omega_log_K": np.array([1.0, 0.9, 0.05, 3.0]),
        "omega_2_K": np.array([-2.0, 0.1, 0.85, 5.0]),
    }
    y = {k: x @ v[:3] + v[3] for k, v in w.items()}
    return x, y, w


def test_fit_recovers_known_coefficients():
    x, y, w = _synthetic()
    y["lambda"][[3, 7]] = np.nan  # rows without a label are skipped for that target only
    model = LinearBaseline().fit(x, y)
    for k, v in w.items():
        np.testing.assert_allclose(model.coef[k], v, rtol=1e-9, atol=1e-12)
    assert model.coefficients()["omega_2_K"]["intercept"] == pytest.approx(5.0)


def test_predict_tc_from_predicted_moments_with_lambda_clipped():
    x, y, _ = _synthetic()
    model = LinearBaseline(mu_star=0.12).fit(x, y)
    pred = model.predict(x)
    np.testing.assert_allclose(pred["lambda"], y["lambda"], rtol=1e-9)
    expected = allen_dynes_tc(np.clip(pred["lambda"], 0, None), pred["omega_log_K"], pred["omega_2_K"], 0.12)
    np.testing.assert_allclose(pred["tc_K"], expected)
    # T_c > 0 exactly where the Allen–Dynes denominator lambda - mu*(1 + 0.62 lambda) is positive;
    # the synthetic lambdas (~0.05..0.68) straddle that threshold, so both cases occur
    above = pred["lambda"] - 0.12 * (1 + 0.62 * pred["lambda"]) > 0
    assert above.any() and (~above).any()
    np.testing.assert_array_equal(pred["tc_K"] > 0, above)
    # a feature row driving lambda negative: reported as is, T_c = 0
    neg = np.array([[0.0, 50.0, 2000.0]])  # lambda = 0.0005*50 - 0.0002*2000 + 0.1 = -0.275
    p = model.predict(neg)
    assert p["lambda"][0] == pytest.approx(-0.275)
    assert p["tc_K"][0] == 0.0
    # NaN features -> NaN outputs
    assert math.isnan(model.predict(np.array([[np.nan, 1.0, 1.0]]))["tc_K"][0])


def test_json_round_trip_and_errors():
    x, y, _ = _synthetic()
    model = LinearBaseline().fit(x, y)
    again = LinearBaseline.from_json(model.to_json())
    for k in ("lambda", "omega_log_K", "omega_2_K", "tc_K"):
        np.testing.assert_array_equal(again.predict(x)[k], model.predict(x)[k])
    assert again.mu_star == model.mu_star
    with pytest.raises(ValueError):
        LinearBaseline.from_json('{"model": "other"}')
    with pytest.raises(ValueError, match="rank"):
        LinearBaseline().fit(x[:3], {k: v[:3] for k, v in y.items()})  # 3 rows, 4 unknowns
    with pytest.raises(ValueError, match="missing"):
        LinearBaseline().fit(x, {"lambda": y["lambda"]})
    with pytest.raises(RuntimeError):
        LinearBaseline().predict(x)
