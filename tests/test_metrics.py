"""Regression metrics, Table I markdown, normalised error Δ̄, per-element errors, best/worst and
metrics against ensemble size: hand-computed cases."""

import math

import numpy as np
import pytest

from betenet.evaluation.metrics import (
    best_worst,
    metric_vs_ensemble_size,
    normalised_error,
    per_element_error,
    property_table,
    regression_metrics,
    table_markdown,
)
from betenet.physics.properties import a2f_properties, properties
from betenet.physics.units import BIN_CENTRES_MEV


def properties_from_a2f(a2f):
    return properties(BIN_CENTRES_MEV, a2f)


def test_regression_metrics_hand_computed():
    # residuals p - t = [0, 1, -1, 0]: SS_res = 2; mean(t) = 2.5, SS_tot = 2.25+0.25+0.25+2.25 = 5
    # R² = 1 - 2/5 = 0.6; MAE = 2/4 = 0.5; RMSE = sqrt(2/4)
    m = regression_metrics([1, 2, 3, 4], [1, 3, 2, 4])
    assert m["n"] == 4
    assert m["r2"] == pytest.approx(0.6)
    assert m["mae"] == pytest.approx(0.5)
    assert m["rmse"] == pytest.approx(math.sqrt(0.5))


def test_regression_metrics_masks_non_finite_pairs():
    # the two extra pairs have a NaN / inf on one side: the result is the 4-pair case above
    m = regression_metrics([1, 2, 3, 4, np.nan, 5], [1, 3, 2, 4, 7, np.inf])
    assert m["n"] == 4
    assert m["r2"] == pytest.approx(0.6)
    assert m["mae"] == pytest.approx(0.5)


def test_r2_when_truth_is_constant():
    # SS_tot = 0: perfect prediction -> 1, anything else -> 0 (scikit-learn force_finite)
    assert regression_metrics([2.0, 2.0, 2.0], [2.0, 2.0, 2.0])["r2"] == 1.0
    m = regression_metrics([2.0, 2.0, 2.0], [2.0, 3.0, 2.0])
    assert m["r2"] == 0.0 and m["mae"] == pytest.approx(1 / 3)
    # 0.1 three times: mean(t) - 0.1 = 1.4e-17 in float64, so SS_tot would be a rounding residue
    # (~6e-34) and R² ~ -1e28; the constant-truth rule must still apply
    t = np.full(3, 0.1)
    assert regression_metrics(t, t + 1e-3)["r2"] == 0.0


def test_regression_metrics_empty_and_bad_shapes():
    m = regression_metrics([np.nan], [1.0])
    assert m["n"] == 0 and math.isnan(m["r2"]) and math.isnan(m["mae"]) and math.isnan(m["rmse"])
    with pytest.raises(ValueError):
        regression_metrics([1, 2], [1, 2, 3])


def test_property_table_and_markdown():
    true = {"lambda": [1, 2, 3, 4], "omega_log_K": [100, 200, 300, 400], "extra": [0, 0, 0, 0]}
    pred = {"lambda": [1, 3, 2, 4], "omega_log_K": [110, 190, 300, 400]}
    tab = property_table(true, pred)
    assert list(tab) == ["lambda", "omega_log_K"]  # only the properties both dicts have
    # omega_log: residuals [10, -10, 0, 0], MAE = 5, RMSE = sqrt(200/4) = 7.07,
    # SS_tot = 150²+50²+50²+150² = 50000, R² = 1 - 200/50000 = 0.996
    assert tab["omega_log_K"]["mae"] == pytest.approx(5.0)
    assert tab["omega_log_K"]["r2"] == pytest.approx(0.996)
    md = table_markdown({"Base": tab, "CSO": {"lambda": tab["lambda"]}})
    lines = md.strip().splitlines()
    assert lines[0] == "| Model | Metric | λ | ω_log (K) |"
    assert lines[2] == "| Base | R² | 0.60 | 1.00 |"
    assert lines[3] == "|  | MAE | 0.50 | 5 |"
    assert lines[4] == "|  | RMSE | 0.71 | 7 |"
    assert lines[5] == "| CSO | R² | 0.60 | – |"  # CSO lacks omega_log
    assert len(lines) == 2 + 3 * 2
    with pytest.raises(ValueError):
        property_table({"a": [1]}, {"a": [1]})


def test_normalised_error_hand_computed():
    true = {"lambda": [0.5, 0.0, 1.0, 0.4], "omega_log_K": [100, 0, 200, 0], "omega_2_K": [150, 0, 300, 100]}
    pred = {"lambda": [0.6, 0.2, 1.0, 0.5], "omega_log_K": [80, 50, 260, 10], "omega_2_K": [150, 40, 360, 75]}
    d = normalised_error(true, pred)
    # 0: (0.1/0.5 + 20/100 + 0/150) / 3 = 0.4/3
    # 1: every true value is 0 -> no relative error -> NaN
    # 2: (0 + 60/200 + 60/300) / 3 = 0.5/3
    # 3: omega_log true 0 is left out: (0.1/0.4 + 25/100) / 2 = 0.25
    assert d[0] == pytest.approx(0.4 / 3)
    assert math.isnan(d[1])
    assert d[2] == pytest.approx(0.5 / 3)
    assert d[3] == pytest.approx(0.25)
    with pytest.raises(ValueError):
        normalised_error({"lambda": [1.0]}, {"lambda": [1.0]})  # omega_log_K missing


def test_per_element_error():
    ids = ["a", "b", "c", "d"]
    elements = {"a": ["Nb", "C"], "b": ["Nb"], "c": ["Mg", "B", "B"], "d": ["Mg"]}
    delta = [0.2, 0.4, np.nan, 0.1]
    out = per_element_error(ids, elements, delta)
    # Nb: (0.2 + 0.4)/2 over a, b; C: 0.2 (a); Mg: 0.1 (d; c is NaN and skipped); B only in c
    assert list(out) == ["C", "Mg", "Nb"]  # ordered by atomic number 6, 12, 41
    assert out["Nb"] == (pytest.approx(0.3), 2)
    assert out["C"] == (pytest.approx(0.2), 1)
    assert out["Mg"] == (pytest.approx(0.1), 1)
    assert per_element_error(ids, elements.__getitem__, delta) == out  # callable lookup
    with pytest.raises(ValueError):
        per_element_error(ids, elements, delta[:3])


def test_best_worst_skips_nan_and_keeps_tie_order():
    ids = ["p", "q", "r", "s", "t", "u"]
    delta = [0.3, np.nan, 0.1, 0.5, 0.1, 0.2]
    bw = best_worst(ids, delta, k=2)
    assert [(r.index, r.id) for r in bw["best"]] == [(2, "r"), (4, "t")]  # the two 0.1's, input order
    assert [(r.index, r.id) for r in bw["worst"]] == [(3, "s"), (0, "p")]
    assert bw["worst"][0].delta == 0.5
    assert len(best_worst(ids, delta, k=10)["best"]) == 5  # only 5 finite values


def _spectra(n, seed=0):
    rng = np.random.default_rng(seed)
    w = BIN_CENTRES_MEV
    c = rng.uniform(10, 60, size=(n, 1))
    h = rng.uniform(0.2, 1.0, size=(n, 1))
    return h * np.exp(-(((w - c) / 8.0) ** 2)) + 1e-3


def test_batched_properties_match_single_spectrum_properties():
    a2f = _spectra(3)
    props = properties_from_a2f(a2f)
    for i in range(3):
        one = a2f_properties(BIN_CENTRES_MEV, a2f[i])
        for k, v in one.items():
            assert props[k][i] == pytest.approx(v, rel=1e-14)


def test_metric_vs_ensemble_size_scaled_members():
    # Members are the true spectra times c = 0.5 and 1.5. lambda is linear in a2F and the moments
    # are scale free, so a subset S predicts lambda_true * mean(c_S) and the exact moments.
    # size 2: mean(c) = 1 -> every error 0; size 1: |c - 1| = 0.5 for either member, so
    # MAE_lambda = 0.5 * mean(lambda_true), SS_res = 0.25 * sum(lambda_true²), std over draws 0.
    a2f = _spectra(6, seed=1)
    true = properties_from_a2f(a2f)
    members = np.stack([0.5 * a2f, 1.5 * a2f])
    res = metric_vs_ensemble_size(members, true, BIN_CENTRES_MEV, sizes=[1, 2], n_draws=5, seed=3)
    assert res["sizes"] == [1, 2]
    assert res["n_draws"] == [5, 1]  # a single subset of size M
    lam = np.asarray(true["lambda"])
    st = res["properties"]["lambda"]
    assert st["mae_mean"][0] == pytest.approx(0.5 * lam.mean())
    assert st["mae_std"][0] == pytest.approx(0.0, abs=1e-12)
    ss_tot = np.sum((lam - lam.mean()) ** 2)
    assert st["r2_mean"][0] == pytest.approx(1 - 0.25 * np.sum(lam**2) / ss_tot)
    assert st["mae_mean"][1] == pytest.approx(0.0, abs=1e-12)
    for name in ("omega_log_K", "omega_2_K"):
        assert max(res["properties"][name]["mae_mean"]) == pytest.approx(0.0, abs=1e-8)
    assert res["properties"]["tc_K"]["r2_mean"][1] == pytest.approx(1.0)
    assert set(res["properties"]) == {"lambda", "omega_log_K", "omega_2_K", "tc_K"}


def test_metric_vs_ensemble_size_draws_vary_and_are_seeded():
    a2f = _spectra(5, seed=2)
    true = properties_from_a2f(a2f)
    members = np.stack([c * a2f for c in (0.4, 0.9, 1.1, 1.7)])
    r1 = metric_vs_ensemble_size(members, true, sizes=[1, 2], n_draws=8, seed=0)
    r2 = metric_vs_ensemble_size(members, true, sizes=[1, 2], n_draws=8, seed=0)
    assert r1 == r2
    # different members give different lambda errors, so the spread over draws is not zero
    assert r1["properties"]["lambda"]["mae_std"][0] > 0
    with pytest.raises(ValueError):
        metric_vs_ensemble_size(members, true, sizes=[5])
    with pytest.raises(ValueError):
        metric_vs_ensemble_size(members[:, :, :10], true)
