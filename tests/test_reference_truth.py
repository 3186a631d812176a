"""One truth for labels and predictions: a model that returns the reference binned a2F exactly scores
zero error in every Table I metric, at any mu*; the dataset's reported scalars are a separate column set."""

import csv
import json

import numpy as np
import pytest
import torch

from betenet.data.datamodule import BetenetDataModule
from betenet.evaluation.predictions import ensemble_split_predictions
from betenet.evaluation.reports import evaluation_report
from betenet.evaluation.screening_report import screening_report
from betenet.physics.properties import PROPERTIES, properties
from betenet.inference.ensemble import Ensemble, Member


class Oracle(torch.nn.Module):
    """A 'member' that predicts each graph's own binned reference a2F."""

    def __init__(self, mu_star: float):
        super().__init__()
        self.hparams = {"net": {"out_dim": 51}, "mu_star": mu_star}

    def forward(self, batch):
        return batch.y


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory):
    dm = BetenetDataModule(source="demo", demo_size=40, cache_dir=str(tmp_path_factory.mktemp("cache")))
    dm.setup()
    return dm


def oracle_ensemble(mu_star=0.10) -> Ensemble:
    member = Member(name="oracle", checkpoint=None, module=Oracle(mu_star), info={}, config=None)
    return Ensemble(members=[member], skipped=[], label="oracle")


@pytest.mark.parametrize("mu_star", [None, 0.13])
def test_reference_a2f_scores_zero_error(datamodule, tmp_path, mu_star):
    p = ensemble_split_predictions(oracle_ensemble(), datamodule, "test", mu_star=mu_star)
    summary = evaluation_report(p, tmp_path / "eval")
    metrics = summary["metrics"]
    assert set(metrics) == set(PROPERTIES)
    for name, m in metrics.items():
        assert m["n"] == len(p) > 0
        assert m["mae"] == 0.0 and m["rmse"] == 0.0 and m["r2"] == 1.0, name
    # --mu-star reaches the reference Tc too: it is the Allen-Dynes Tc of the reference a2F at that mu*
    mu = 0.10 if mu_star is None else mu_star
    y = np.stack([g.y[0].double().numpy() for g in datamodule.graphs_for("test")])
    np.testing.assert_allclose(p.true["tc_K"], properties(p.omega_meV, y, mu)["tc_K"], rtol=1e-12)
    # the dataset's own scalars (computed from its raw 0.5 meV spectra) are reported apart, never mixed in
    table = json.loads((tmp_path / "eval" / "table1.json").read_text())
    assert table["metrics"]["lambda"]["mae"] == 0.0
    assert table["reported_metrics"]["lambda"]["n"] == len(p)
    assert table["reported_metrics"]["lambda"]["mae"] > 0  # raw vs binned spectrum: not the same number
    with open(tmp_path / "eval" / "predictions.csv") as fh:
        header = next(csv.reader(fh))
    assert {"lambda_true", "lambda_reported", "lambda_pred"} <= set(header)


def test_screening_reference_follows_mu_star(datamodule, tmp_path):
    """Screening compares predicted and reference Tc at the same mu*: with the oracle, every
    positive is found at precision 1 whatever mu* is chosen."""
    for mu in (0.10, 0.16):
        p = ensemble_split_predictions(oracle_ensemble(), datamodule, "all", mu_star=mu)
        threshold = float(np.median(p.true["tc_K"][p.true["tc_K"] > 0]))
        result = screening_report(p, tmp_path / f"s{mu}", threshold_K=threshold)
        s1 = result["models"]["stage1"]
        assert s1["truth"] == "reference" and s1["mu_star"] == mu
        assert s1["average_precision"] == pytest.approx(1.0)


def test_tc_only_report_has_median_baseline_physics_and_uncertainty(tmp_path):
    """A Tc-only split (no reference a2F): metrics against the reported Tc, the median predictor of
    the training pool beside them, the distribution of predicted lambda / omega_log, and whether the
    spread ranks the errors."""
    from scipy.stats import spearmanr

    from betenet.evaluation.predictions import SplitPredictions
    from betenet.physics.units import BIN_CENTRES_MEV

    rng = np.random.default_rng(0)
    n = 40
    a2f = np.exp(-(((BIN_CENTRES_MEV[None] - rng.uniform(10, 40, (n, 1))) / 6) ** 2)) * rng.uniform(0.2, 1.2, (n, 1))
    pred = properties(BIN_CENTRES_MEV, a2f)
    tc_true = pred["tc_K"] + rng.normal(0, 1.0, n)
    std = np.abs(tc_true - pred["tc_K"]) * rng.uniform(0.5, 1.5, n)  # spread that tracks the error
    nan = np.full(n, np.nan)
    p = SplitPredictions(model="M", split="test", ids=[f"m{i}" for i in range(n)], formulas=["X"] * n,
                         true={k: nan for k in PROPERTIES}, pred=pred,
                         std={k: (std if k == "tc_K" else np.zeros(n)) for k in PROPERTIES},
                         reported={k: (tc_true if k == "tc_K" else nan) for k in PROPERTIES},
                         a2f_mean=a2f, a2f_std=np.zeros_like(a2f), true_a2f=np.full_like(a2f, np.nan),
                         pool_median={"reported": {"tc_K": 2.5}, "reference": {}})
    summary = evaluation_report(p, tmp_path / "eval")
    median = summary["baselines"]["median predictor"]["reported"]["tc_K"]
    assert median["mae"] == pytest.approx(np.mean(np.abs(tc_true - 2.5)))
    assert summary["reported_metrics"]["tc_K"]["mae"] == pytest.approx(np.mean(np.abs(tc_true - pred["tc_K"])))
    phys = summary["physics"]
    assert phys["lambda"][2] == pytest.approx(np.median(pred["lambda"]))
    unc = summary["uncertainty"]
    assert unc["truth"] == "reported"
    rho = spearmanr(np.abs(pred["tc_K"] - tc_true), std).statistic
    assert unc["tc_K"]["spearman_abs_error_vs_std"] == pytest.approx(rho) and rho > 0.5
    assert unc["tc_K"]["fraction_within_2std"] == pytest.approx(np.mean(np.abs(pred["tc_K"] - tc_true) <= 2 * std))
    md = (tmp_path / "eval" / "table1.md").read_text()
    assert "median predictor vs reported" in md
    assert (tmp_path / "eval" / "physics.png").stat().st_size > 5000
    assert (tmp_path / "eval" / "spectra.png").stat().st_size > 5000
