"""Precision–recall screening: hand-computed curves (with ties), average precision as
scikit-learn defines it, operating points, confusion counts, the two-stage flow and ranking."""

import math

import numpy as np
import pytest

from betenet.evaluation.screening import (
    confusion,
    curve_average_precision,
    operating_point,
    precision_recall,
    random_ap,
    rank_candidates,
    threshold_for_precision,
    two_stage,
)

def average_precision(tc_true, tc_pred, threshold_K=5.0):
    return curve_average_precision(precision_recall(tc_true, tc_pred, threshold_K))


# Shared example with tied scores. Positives (tc_true >= 5 K): indices 0, 2, 4 (3 of 5).
TRUE = [10.0, 0.0, 10.0, 0.0, 10.0]
PRED = [3.0, 3.0, 1.0, 5.0, 7.0]
# decision t (flag pred >= t)  flagged     TP  precision  recall
#   7                          {4}         1   1          1/3
#   5                          {4,3}       1   1/2        1/3
#   3 (tie: 0 and 1 together)  {4,3,0,1}   2   1/2        2/3
#   1                          all 5       3   3/5        1


def test_curve_with_ties():
    c = precision_recall(TRUE, PRED, threshold_K=5.0)
    np.testing.assert_array_equal(c.thresholds, [1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(c.precision, [3 / 5, 1 / 2, 1 / 2, 1.0])
    np.testing.assert_allclose(c.recall, [1.0, 2 / 3, 1 / 3, 1 / 3])
    assert (c.n_positive, c.n) == (3, 5)


def test_average_precision_hand_computed():
    # by decreasing threshold: R = 1/3, 1/3, 2/3, 1 ; P = 1, 1/2, 1/2, 3/5
    # AP = (1/3)(1) + 0 (1/2) + (1/3)(1/2) + (1/3)(3/5) = (1 + 0.5 + 0.6)/3 = 0.7
    assert average_precision(TRUE, PRED) == pytest.approx(0.7)
    # random ranking: prevalence 3/5
    assert random_ap(TRUE) == pytest.approx(0.6)


def test_average_precision_scikit_learn_doc_example():
    # sklearn.metrics.average_precision_score docs: y = [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8]
    # -> 0.83. By hand: t=0.8: P=1, R=1/2; t=0.4: P=1/2, R=1/2; t=0.35: P=2/3, R=1; t=0.1: P=1/2, R=1
    # AP = (1/2)(1) + 0 + (1/2)(2/3) + 0 = 5/6
    assert average_precision([0, 0, 10, 10], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(5 / 6)


def test_positive_threshold_is_inclusive_and_nan_is_dropped():
    # tc_true = 5.0 exactly is a positive; the NaN pairs are dropped
    c = precision_recall([5.0, 4.9, np.nan, 8.0], [2.0, 1.0, 3.0, np.nan], threshold_K=5.0)
    assert (c.n_positive, c.n) == (1, 2)
    np.testing.assert_allclose(c.precision, [1 / 2, 1.0])  # t = 1: both flagged; t = 2: only the 5.0 one
    with pytest.raises(ValueError, match="no positives"):
        precision_recall([1.0, 2.0], [3.0, 4.0])


def test_threshold_for_precision_and_operating_point():
    c = precision_recall(TRUE, PRED)
    assert threshold_for_precision(c, 1.0) == 7.0
    assert threshold_for_precision(c, 0.6) == 1.0  # precision 3/5 at t = 1 is the lowest threshold
    assert threshold_for_precision(c, 0.9) == 7.0
    # never reaches precision 1: the highest-scored material is a negative
    assert threshold_for_precision(precision_recall([0.0, 10.0], [5.0, 1.0]), 1.0) is None

    op = operating_point(c, precision=0.5)  # all points qualify; largest recall is t = 1
    assert (op["threshold"], op["recall"], op["precision"]) == (1.0, 1.0, pytest.approx(0.6))
    op = operating_point(c, recall=0.3)  # all points qualify; largest precision is t = 7
    assert (op["threshold"], op["precision"]) == (7.0, 1.0)
    op = operating_point(c, recall=0.5)  # t = 3 (P 1/2) and t = 1 (P 3/5) qualify
    assert op["threshold"] == 1.0
    # precision >= 0.99 leaves only t = 7
    assert operating_point(c, precision=0.99)["threshold"] == 7.0
    assert operating_point(c, recall=1.01) is None
    with pytest.raises(ValueError):
        operating_point(c)
    with pytest.raises(ValueError):
        operating_point(c, precision=0.5, recall=0.5)


def test_operating_point_tie_breaks_on_precision():
    # thresholds 1, 2, 3: t=3 flags {2}: TP 1 (P 1, R 1/2); t=2 flags {2,1}: TP 1 (P 1/2, R 1/2);
    # t=1 flags all: TP 2 (P 2/3, R 1). For recall >= 0.5 the best precision is t=3 (P 1).
    # For precision >= 0.5 the largest recall is t=1 (R 1).
    c = precision_recall([10.0, 0.0, 10.0], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(c.precision, [2 / 3, 1 / 2, 1.0])
    assert operating_point(c, recall=0.5)["threshold"] == 3.0
    assert operating_point(c, precision=0.5)["threshold"] == 1.0
    # recall tie at the top: t=-1 and t=-2 both reach R = 1; the higher precision (t=-1) wins
    c2 = precision_recall([10.0, 0.0, 10.0, 0.0], [-1.0, 2.0, 3.0, -2.0])
    # t=3: P 1, R 1/2; t=2: P 1/2, R 1/2; t=-1: P 2/3, R 1; t=-2: P 1/2, R 1
    op = operating_point(c2, precision=0.5)
    assert (op["threshold"], op["precision"], op["recall"]) == (-1.0, pytest.approx(2 / 3), 1.0)


def test_confusion_with_random_classifier():
    # decision 3 flags indices 0, 1, 3, 4 (k = 4); positives 0, 2, 4
    # tp = {0, 4} = 2, fp = {1, 3} = 2, fn = {2} = 1, tn = 0
    # random (N = 5, P = 3, k = 4): tp = 4*3/5 = 2.4, fp = 4*2/5 = 1.6, fn = 3 - 2.4 = 0.6, tn = 2 - 1.6 = 0.4
    c = confusion(TRUE, PRED, threshold_K=5.0, decision_K=3.0)
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (2, 2, 1, 0)
    r = c["random"]
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == pytest.approx((2.4, 1.6, 0.6, 0.4))


def test_two_stage_flow():
    true = [10.0, 0.0, 10.0, 0.0, 10.0, 0.0]  # positives 0, 2, 4
    stage1 = [8.0, 7.0, 2.0, 1.0, 6.0, 0.5]  # >= 5 K: 0, 1, 4 go on (3 of 6)
    stage2 = [4.0, 6.0, np.nan, np.nan, 3.0, np.nan]  # never computed for the rejected ones
    out = two_stage(true, stage1, stage2, stage1_decision_K=5.0, threshold_K=5.0, stage2_decision_K=4.0)
    assert out["n_stage2"] == 3 and out["fraction_to_stage2"] == pytest.approx(0.5)
    assert out["stage1"]["precision"] == pytest.approx(2 / 3)  # 0 and 4 of {0, 1, 4}
    assert out["stage1"]["recall"] == pytest.approx(2 / 3)  # 2 of the 3 positives
    # stage 2 over survivors (scores 0:4 pos, 1:6 neg, 4:3 pos), recall over all 3 positives:
    # t=6: {1} P 0, R 0; t=4: {1,0} P 1/2, R 1/3; t=3: {1,0,4} P 2/3, R 2/3
    c = out["curve"]
    np.testing.assert_array_equal(c.thresholds, [3.0, 4.0, 6.0])
    np.testing.assert_allclose(c.precision, [2 / 3, 1 / 2, 0.0])
    np.testing.assert_allclose(c.recall, [2 / 3, 1 / 3, 0.0])
    # AP = 0*0 + (1/3)(1/2) + (1/3)(2/3) = 1/6 + 2/9 = 7/18
    assert out["ap"] == pytest.approx(7 / 18)
    assert out["random_ap"] == pytest.approx(0.5)
    assert out["operating"] == dict(decision_K=4.0, precision=0.5, recall=pytest.approx(1 / 3), flagged=2)


def test_two_stage_edge_cases():
    true = [10.0, 0.0]
    with pytest.raises(ValueError, match="not finite"):
        two_stage(true, [6.0, 6.0], [1.0, np.nan], stage1_decision_K=5.0)
    out = two_stage(true, [1.0, 2.0], [np.nan, np.nan], stage1_decision_K=5.0)  # nothing passes
    assert out["n_stage2"] == 0 and out["ap"] == 0.0 and len(out["curve"]) == 0
    assert math.isnan(out["stage1"]["precision"]) and out["stage1"]["recall"] == 0.0
    assert curve_average_precision(out["curve"]) == 0.0


def test_rank_candidates():
    ranked = rank_candidates(["a", "b", "c", "d"], [2.0, np.nan, 7.0, 2.0], [0.1, 0.2, 0.3, 0.4])
    assert [r["id"] for r in ranked] == ["c", "a", "d", "b"]  # ties in input order, NaN last
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4]
    assert ranked[0] == {"rank": 1, "id": "c", "tc_allen_dynes_K": 7.0, "tc_allen_dynes_K_std": 0.3}
    assert rank_candidates(["x"], [1.0])[0]["tc_allen_dynes_K_std"] is None
    with pytest.raises(ValueError):
        rank_candidates(["x", "y"], [1.0])
