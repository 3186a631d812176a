"""The three-regime tracker on synthetic validation curves (no training needed)."""


import numpy as np
import pytest

from betenet.training.tempering import TemperedTraining


def double_descent_curve(n=3000):
    """Smooth double descent: first minimum near epoch 300, peak near 1000, deeper second minimum ~2200."""
    e = np.arange(n)
    first = 1.0 * np.exp(-e / 100) + 0.2
    bump = 0.5 * np.exp(-((e - 1000) / 250) ** 2)
    second = -0.15 / (1 + np.exp(-(e - 1600) / 150))
    late = 0.05 * np.clip((e - 2200) / 800, 0, None) ** 2
    return first + bump + second + late


def feed(cb, curve):
    for epoch, value in enumerate(curve):
        cb.update(epoch, float(value))
        if cb.should_stop(epoch):
            return epoch
    return None


def test_regimes_found_in_order_and_at_the_extrema():
    curve = double_descent_curve()
    cb = TemperedTraining(patience=300, smoothing=0.0, rise=0.05, drop=0.05)
    stopped = feed(cb, curve)
    b = cb.best
    assert set(b) == {"classical", "critical", "modern"}
    assert b["classical"]["epoch"] < b["critical"]["epoch"] < b["modern"]["epoch"]
    peak_region = curve[b["classical"]["epoch"]: b["modern"]["epoch"]]
    assert b["critical"]["epoch"] == b["classical"]["epoch"] + int(np.argmax(peak_region))
    # modern minimum is the minimum after the peak up to the stop
    after = curve[b["critical"]["epoch"]: stopped + 1]
    assert b["modern"]["epoch"] == b["critical"]["epoch"] + int(np.argmin(after))
    assert stopped == b["modern"]["epoch"] + 300
    # classical minimum: the minimum before the rise beyond 5 %
    first_rise = next(i for i in range(1, len(curve)) if curve[i] > curve[:i].min() * 1.05)
    assert b["classical"]["epoch"] == int(np.argmin(curve[:first_rise]))


def test_monotone_curve_never_leaves_classical_and_never_stops():
    curve = 1.0 / (1 + np.arange(2000) / 50)
    cb = TemperedTraining(patience=10, smoothing=0.0)
    assert feed(cb, curve) is None
    assert cb.regime == "classical" and set(cb.best) == {"classical"}


def test_smoothing_ignores_single_epoch_spikes():
    curve = double_descent_curve()[:400].copy()
    curve[150] *= 1.5  # one noisy epoch during the first descent
    raw = TemperedTraining(smoothing=0.0)
    feed(raw, curve)
    smooth = TemperedTraining(smoothing=0.9)
    feed(smooth, curve)
    assert raw.regime != "classical"         # the spike alone looks like a rise
    assert smooth.regime == "classical"      # the moving average does not


def test_state_roundtrip_continues_identically():
    curve = double_descent_curve()
    a = TemperedTraining(patience=200)
    feed(a, curve)
    b = TemperedTraining(patience=200)
    feed(b, curve[:1200])
    c = TemperedTraining(patience=200)
    c.load_state_dict(b.state_dict())
    for epoch in range(1200, len(curve)):
        c.update(epoch, float(curve[epoch]))
        if c.should_stop(epoch):
            break
    assert c.best == a.best and c.regime == a.regime


def test_bad_smoothing_rejected():
    with pytest.raises(ValueError):
        TemperedTraining(smoothing=1.0)
