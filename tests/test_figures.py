"""Evaluation figures: each writes a non-empty PNG (small synthetic inputs, Agg-free Figure API)."""

import numpy as np
import pytest

from betenet.evaluation import figures
from betenet.evaluation.metrics import per_element_error
from betenet.evaluation.screening import confusion, operating_point, precision_recall
from betenet.physics.properties import properties
from betenet.physics.units import BIN_CENTRES_MEV

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG_MAGIC


def _spectra(n, seed):
    rng = np.random.default_rng(seed)
    c = rng.uniform(10, 60, size=(n, 1))
    h = rng.uniform(0.2, 1.0, size=(n, 1))
    return h * np.exp(-(((BIN_CENTRES_MEV - c) / 8.0) ** 2)) + 1e-3


@pytest.fixture(scope="module")
def data():
    true_a2f = _spectra(12, 0)
    pred_a2f = true_a2f * np.random.default_rng(1).uniform(0.7, 1.3, size=(12, 1))
    return true_a2f, pred_a2f, properties(BIN_CENTRES_MEV, true_a2f), properties(BIN_CENTRES_MEV, pred_a2f)


def test_parity(tmp_path, data):
    _, _, t, p = data
    ax = figures.parity_plot(t["lambda"], p["lambda"], "lambda", std=0.1 * p["lambda"])
    assert "R² =" in ax.texts[0].get_text()
    out = figures.parity_grid(t, p, tmp_path / "sub" / "parity.png", title="test")
    assert _is_png(out)


def test_pr_and_confusion(tmp_path, data):
    _, _, t, p = data
    thr = float(np.median(t["tc_K"]))
    curve = precision_recall(t["tc_K"], p["tc_K"], threshold_K=thr)
    op = operating_point(curve, precision=1.0)
    conf = confusion(t["tc_K"], p["tc_K"], thr, op["threshold"])
    out = figures.pr_curve_plot({"CSO": curve, "CPD": curve}, {"CSO": 0.5, "CPD": 0.6}, 0.5,
                                tmp_path / "pr.png", operating_points={"CSO": op}, confusions={"CSO": conf})
    assert _is_png(out)
    assert _is_png(figures.confusion_plot(conf, tmp_path / "conf.png", title="CSO"))


def test_spectra_panel(tmp_path, data):
    true_a2f, pred_a2f, _, _ = data
    out = figures.spectra_panel(BIN_CENTRES_MEV, true_a2f[:6], {"CSO": pred_a2f[:6]}, {"CSO": 0.1 * pred_a2f[:6]},
                                [f"m{i}" for i in range(6)], tmp_path / "best.png")
    assert _is_png(out)
    with pytest.raises(ValueError):
        figures.spectra_panel(BIN_CENTRES_MEV, true_a2f[:6], pred_a2f[:5], None, list("abcdef"),
                              tmp_path / "x.png")


def test_per_element_and_ensemble_size(tmp_path):
    per = per_element_error(["a", "b"], {"a": ["Nb", "C"], "b": ["Nb"]}, [0.2, 0.4])
    assert _is_png(figures.per_element_plot(per, tmp_path / "el.png"))
    assert _is_png(figures.per_element_plot({"CSO": per, "CPD": per}, tmp_path / "el2.png"))
    result = {"sizes": [1, 2, 4], "n_draws": [3, 3, 1],
              "properties": {"lambda": {"mae_mean": [0.3, 0.2, 0.1], "mae_std": [0.05, 0.02, 0.0],
                                        "r2_mean": [0.1, 0.2, 0.3], "r2_std": [0.05, 0.02, 0.0]}}}
    assert _is_png(figures.ensemble_size_plot(result, tmp_path / "ens.png"))
