"""Top-end metrics of a screen (betenet.evaluation.top_end) on cases worked out by hand."""

import math

import numpy as np
import pytest

from betenet.evaluation.top_end import fit_of_high, top_end_markdown, top_end_metrics

# reference and predicted Tc (K): two high entries (6, 12), one false positive (1 -> 6), a NaN pair dropped
TRUE = [1.0, 2.0, 6.0, 12.0, np.nan]
PRED = [6.0, 1.0, 3.0, 12.0, 5.0]


def test_high_entries_error_and_ratio():
    m = top_end_metrics(TRUE, PRED)
    assert m["n"] == 4
    high = m["high"]
    assert high["n"] == 2  # reference Tc >= 5 K: 6 and 12
    assert high["mae"] == pytest.approx(1.5)  # |3 - 6|, |12 - 12|
    assert high["rmse"] == pytest.approx(math.sqrt(4.5))
    assert high["bias"] == pytest.approx(-1.5)  # predicted too low on average
    assert high["median_ratio"] == pytest.approx(0.75)  # median of 0.5 and 1


def test_precision_recall_average_precision_by_hand():
    c5 = top_end_metrics(TRUE, PRED)["classes"]["5"]
    assert (c5["positives"], c5["called_positive"]) == (2, 2)
    assert c5["precision"] == pytest.approx(0.5)  # called: 1 K (wrong) and 12 K (right)
    assert c5["recall"] == pytest.approx(0.5)  # 6 K missed (predicted 3)
    # ranked by predicted Tc: 12 (pos), 6 (neg), 3 (pos), 1 (neg): AP = 0.5 * 1 + 0.5 * 2/3
    assert c5["average_precision"] == pytest.approx(0.5 + 1 / 3)
    assert c5["precision_at_recall_half"] == pytest.approx(1.0)  # the first call alone reaches recall 0.5
    assert c5["prevalence"] == pytest.approx(0.5)
    c10 = top_end_metrics(TRUE, PRED)["classes"]["10"]
    assert (c10["precision"], c10["recall"], c10["average_precision"]) == pytest.approx((1.0, 1.0, 1.0))


def test_spearman_by_hand():
    # ranks of the truth 1 2 3 4, of the prediction 3 1 2 4: sum d^2 = 6, rho = 1 - 6*6/(4*15)
    assert top_end_metrics(TRUE, PRED)["spearman"] == pytest.approx(0.4)


def test_nothing_called_positive_and_no_positive():
    compressed = top_end_metrics([1.0, 8.0, 20.0], [1.0, 2.0, 4.0])  # a model that never reaches 5 K
    c5 = compressed["classes"]["5"]
    assert math.isnan(c5["precision"]) and c5["recall"] == 0.0  # no call: precision undefined, not 0 or 1
    assert compressed["high"]["median_ratio"] == pytest.approx(0.225)  # median of 2/8 and 4/20
    assert compressed["spearman"] == pytest.approx(1.0)  # the ranking is still right
    low = top_end_metrics([0.5, 1.0, 2.0], [0.4, 1.5, 3.0])
    assert low["high"]["n"] == 0 and math.isnan(low["high"]["mae"])
    assert math.isnan(low["classes"]["5"]["average_precision"]) and low["classes"]["5"]["positives"] == 0


def test_fit_of_high_entries():
    fit = fit_of_high([5.0, 10.0, 20.0, 40.0], [5.0, 8.0, 20.0, 20.0])
    assert fit["n"] == 3  # reference Tc >= 10 K
    assert fit["median_relative_error"] == pytest.approx(0.2)  # 0.2, 0.0, 0.5
    assert fit["median_ratio"] == pytest.approx(0.8)  # 0.8, 1.0, 0.5
    assert fit_of_high([1.0], [2.0])["n"] == 0


def test_markdown_has_a_row_per_model():
    md = top_end_markdown({"a": top_end_metrics(TRUE, PRED), "b": top_end_metrics([1.0, 8.0, 20.0], [1, 2, 4])})
    lines = md.strip().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| a | 2 | 1.50 |") and "AP@5 K" in lines[0]
    assert "| b | 2 |" in lines[3] and "–" in lines[3]  # the undefined precision prints as a dash
