"""Loss terms: masking of missing targets, bootstrap weights, Wasserstein/curvature by hand, the
physics terms and the Tc-threshold guide that gives Tc-only labels a gradient."""

import math

import numpy as np
import pytest
import torch

from betenet.models.losses import LABEL_NAMES, BetenetLoss, curvature, predicted_properties, wasserstein_1d
from betenet.physics.eliashberg import (a2f_properties, mcmillan_lambda_for_tc_torch, mcmillan_tc_torch)
from betenet.physics.units import BIN_CENTRES_MEV

OMEGA = torch.as_tensor(BIN_CENTRES_MEV, dtype=torch.float64)


def spectra(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 51, generator=g, dtype=torch.float64) * 0.3


def test_mse_masks_missing_targets_and_uses_weights():
    pred, y = spectra(3, 0), spectra(3, 1)
    y_masked = y.clone()
    y_masked[1] = float("nan")
    loss, parts = BetenetLoss()(pred, y_masked, weight=torch.tensor([1.0, 5.0, 3.0]))
    per = ((pred - y) ** 2).mean(-1)
    expected = (1 * per[0] + 3 * per[2]) / 4
    assert loss.item() == pytest.approx(expected.item()) and set(parts) == {"mse"}


def test_wasserstein_and_curvature_by_hand():
    a = torch.zeros(1, 51, dtype=torch.float64)
    b = torch.zeros(1, 51, dtype=torch.float64)
    a[0, 10], b[0, 13] = 2.0, 0.5           # unit mass after normalisation, moved by 3 bins
    assert wasserstein_1d(a, b).item() == pytest.approx(3.0)
    line = torch.arange(51, dtype=torch.float64)[None] * 0.1
    assert curvature(line).item() == pytest.approx(0.0, abs=1e-15)
    spike = torch.zeros(1, 51, dtype=torch.float64)
    spike[0, 5] = 1.0                        # second differences: 1, -2, 1 at three positions
    assert curvature(spike).item() == pytest.approx((1 + 4 + 1) / 49)


def test_properties_agree_with_numpy_physics():
    pred = spectra(2)
    props = predicted_properties(pred, OMEGA, 0.1)
    ref = a2f_properties(BIN_CENTRES_MEV, pred[1].numpy())
    assert props[1, 0].item() == pytest.approx(ref["lambda"])
    assert props[1, 1].item() == pytest.approx(ref["omega_log_K"])
    assert props[1, 3].item() == pytest.approx(ref["tc_allen_dynes_K"])


def test_property_term_masks_unknown_labels_and_has_gradient():
    pred = spectra(3).requires_grad_()
    labels = torch.full((3, 4), float("nan"), dtype=torch.float64)
    labels[0, LABEL_NAMES.index("lambda")] = 1.0
    nan_y = torch.full_like(pred, float("nan"))
    loss_fn = BetenetLoss(mse=0.0, properties={"lambda": 1.0})
    loss, parts = loss_fn(pred, nan_y, labels)
    lam0 = predicted_properties(pred.detach(), OMEGA, 0.1)[0, 0]
    assert loss.item() == pytest.approx(((lam0 - 1.0) ** 2).item())
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[1:].abs().sum() == 0 and pred.grad[0].abs().sum() > 0


def test_mcmillan_inverse_roundtrip_and_limits():
    lam = torch.tensor([0.2, 0.5, 1.0, 2.5], dtype=torch.float64)
    wlog = torch.tensor([100.0, 250.0, 300.0, 80.0], dtype=torch.float64)
    for mu in (0.1, 0.13):
        tc = mcmillan_tc_torch(lam, wlog, mu)
        assert torch.allclose(mcmillan_lambda_for_tc_torch(tc, wlog, mu), lam, rtol=1e-10)
        threshold = mu / (1 - 0.62 * mu)
        zero = mcmillan_lambda_for_tc_torch(torch.zeros(1, dtype=torch.float64), wlog[:1], mu)
        assert zero.item() == pytest.approx(threshold)
    # beyond McMillan's lambda -> infinity limit (w_log/1.2) exp(-1.04/(1-0.62 mu*)): unreachable
    limit = 300.0 / 1.2 * math.exp(-1.04 / (1 - 0.62 * 0.1))
    unreachable = mcmillan_lambda_for_tc_torch(torch.tensor([limit * 1.01]), torch.tensor([300.0]), 0.1, lam_max=5)
    assert unreachable.item() == 5.0


def test_tc_only_label_gets_a_gradient_below_the_threshold():
    weak = torch.full((1, 51), 1e-4, dtype=torch.float64, requires_grad=True)  # lambda << threshold
    labels = torch.full((1, 4), float("nan"), dtype=torch.float64)
    labels[0, 3] = 10.0
    assert predicted_properties(weak.detach(), OMEGA, 0.1)[0, 3].item() == 0.0
    loss, _ = BetenetLoss(mse=0.0, properties={"tc_K": 1.0})(weak, torch.full_like(weak, float("nan")), labels)
    loss.backward()
    assert loss.item() > 0 and weak.grad.abs().sum() > 0
    assert (weak.grad <= 0).all()  # descending raises a2F, i.e. lambda


def test_unknown_property_and_all_off_rejected():
    with pytest.raises(ValueError):
        BetenetLoss(properties={"gap": 1.0})
    with pytest.raises(ValueError):
        BetenetLoss(mse=0.0)(spectra(1), spectra(1))
