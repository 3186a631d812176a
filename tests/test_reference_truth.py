"""One truth for labels and predictions: a model that returns the reference binned a2F exactly scores
zero error in every Table I metric, at any mu*; the dataset's reported scalars are a separate column set."""

import csv
import json

import numpy as np
import pytest
import torch

from betenet.data.datamodule import BetenetDataModule
from betenet.evaluation.reports import ensemble_split_predictions, evaluation_report, screening_report
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
    return Ensemble(members=[member], skipped=[], source="oracle")


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
