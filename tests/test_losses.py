"""Loss terms: masking of missing targets, bootstrap weights, Wasserstein/curvature by hand, the
physics terms and the Tc-threshold guide that gives Tc-only labels a gradient."""

import math

import numpy as np
import pytest
import torch

from types import SimpleNamespace

from betenet.models.losses import BetenetLoss, curvature, property_matrix, wasserstein_1d
from betenet.physics.eliashberg import mcmillan_lambda_for_tc_torch, mcmillan_tc_torch
from betenet.physics.properties import PROPERTIES, a2f_properties
from betenet.physics.units import BIN_CENTRES_MEV, BinGrid

OMEGA = torch.as_tensor(BIN_CENTRES_MEV, dtype=torch.float64)


def graphs(y, reported=None, weight=None, phonon_omega_log_K=None):
    """What the loss reads of a batch of graphs: attributes, the absent ones left out (as in a PyG Batch)."""
    given = dict(y=y, reported=reported, weight=weight, phonon_omega_log_K=phonon_omega_log_K)
    return SimpleNamespace(**{k: v for k, v in given.items() if v is not None})


def spectra(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 51, generator=g, dtype=torch.float64) * 0.3


def test_mse_masks_missing_targets_and_uses_weights():
    pred, y = spectra(3, 0), spectra(3, 1)
    y_masked = y.clone()
    y_masked[1] = float("nan")
    loss, parts = BetenetLoss()(pred, graphs(y_masked, weight=torch.tensor([1.0, 5.0, 3.0])))
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
    props = property_matrix(pred, OMEGA, 0.1)
    ref = a2f_properties(BIN_CENTRES_MEV, pred[1].numpy())
    assert props[1, 0].item() == pytest.approx(ref["lambda"])
    assert props[1, 1].item() == pytest.approx(ref["omega_log_K"])
    assert props[1, 3].item() == pytest.approx(ref["tc_K"])


def test_property_term_masks_unknown_labels_and_has_gradient():
    pred = spectra(3).requires_grad_()
    labels = torch.full((3, 4), float("nan"), dtype=torch.float64)
    labels[0, PROPERTIES.index("lambda")] = 1.0
    nan_y = torch.full_like(pred, float("nan"))
    loss_fn = BetenetLoss(mse=0.0, properties={"lambda": 1.0})
    loss, parts = loss_fn(pred, graphs(nan_y, labels))
    lam0 = property_matrix(pred.detach(), OMEGA, 0.1)[0, 0]
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
    assert property_matrix(weak.detach(), OMEGA, 0.1)[0, 3].item() == 0.0
    loss, _ = BetenetLoss(mse=0.0, properties={"tc_K": 1.0})(weak, graphs(torch.full_like(weak, float("nan")), labels))
    loss.backward()
    assert loss.item() > 0 and weak.grad.abs().sum() > 0
    assert (weak.grad <= 0).all()  # descending raises a2F, i.e. lambda


def test_unknown_property_and_all_off_rejected():
    with pytest.raises(ValueError):
        BetenetLoss(properties={"gap": 1.0})
    with pytest.raises(ValueError):
        BetenetLoss(mse=0.0)(spectra(1), graphs(spectra(1)))


def test_reference_is_the_binned_target_where_there_is_one():
    """Entries with a binned a2F are measured against the properties of that a2F (at the loss's
    mu*), never against a reported scalar; entries without one against the reported value."""
    y = spectra(3, 2)
    y[2] = float("nan")  # no a2F: only a reported Tc
    reported = torch.tensor([[9.0, 1.0, 1.0, 99.0]] * 3, dtype=torch.float64)  # deliberately inconsistent
    loss_fn = BetenetLoss(mu_star=0.13)
    ref = loss_fn.reference(y, reported)
    for i in (0, 1):
        props = a2f_properties(BIN_CENTRES_MEV, y[i].numpy(), mu_star=0.13)
        np.testing.assert_allclose(ref[i].numpy(), [props[k] for k in PROPERTIES], rtol=1e-12)
    np.testing.assert_array_equal(ref[2].numpy(), reported[2].numpy())
    # predicting the target exactly: every property term is zero
    pred = torch.where(torch.isfinite(y), y, torch.zeros_like(y))
    loss_fn = BetenetLoss(mse=1.0, properties={k: 1.0 for k in PROPERTIES}, mu_star=0.13)
    _, parts = loss_fn(pred[:2], graphs(y[:2], reported[:2]))
    assert all(v.item() == 0.0 for v in parts.values())


def test_wider_grid_loss():
    grid = BinGrid(n_bins=101)
    pred = torch.rand(2, 101, dtype=torch.float64)
    loss_fn = BetenetLoss(mse=0.0, properties={"lambda": 1.0}, grid=grid)
    reported = torch.full((2, 4), float("nan"), dtype=torch.float64)
    reported[:, 0] = 0.5
    loss, _ = loss_fn(pred, graphs(torch.full_like(pred, float("nan")), reported))
    lam = np.array([a2f_properties(grid.centres, p.numpy())["lambda"] for p in pred])
    assert loss.item() == pytest.approx(np.mean((lam - 0.5) ** 2))


def test_omega_log_prior_pulls_towards_the_phonon_omega_log():
    """(ln w_log^pred - ln w_log^ph)^2 on entries with a phonon reference; zero where they agree."""
    pred = spectra(3, 4).requires_grad_()
    props = property_matrix(pred.detach(), OMEGA, 0.1)
    ref = props[:, 1].clone()
    ref[1] *= 2.0  # this one's phonons are twice as stiff
    ref[2] = float("nan")  # no reference
    loss_fn = BetenetLoss(mse=0.0, omega_log_prior=1.0)
    loss, parts = loss_fn(pred, graphs(torch.full_like(pred, float("nan")), phonon_omega_log_K=ref))
    assert loss.item() == pytest.approx(math.log(2.0) ** 2 / 2)
    loss.backward()
    assert pred.grad[2].abs().sum() == 0 and pred.grad[1].abs().sum() > 0
    # descending the prior moves weight of entry 1 towards higher frequencies
    assert (pred.grad[1, 25:] < 0).any()


def test_lambda_prior_penalises_only_outside_the_range():
    """weight * (relu(lambda - hi) + relu(lo - lambda))^2, mean over entries; zero inside [lo, hi]."""
    pred = spectra(3, 5)
    lam = property_matrix(pred, OMEGA, 0.1)[:, 0]
    lo, hi = float(lam.min()) + 1e-6, float(lam.max()) - 1e-6  # the smallest below, the largest above
    loss, parts = BetenetLoss(mse=0.0, lambda_prior=2.0, lambda_range=(lo, hi))(pred, graphs(spectra(3, 6)))
    expected = 2.0 * ((lo - lam.min()) ** 2 + (lam.max() - hi) ** 2) / 3
    assert set(parts) == {"lambda_prior"} and loss.item() == pytest.approx(expected.item(), rel=1e-9)
    inside, _ = BetenetLoss(mse=0.0, lambda_prior=2.0, lambda_range=(0.0, 1e9))(pred, graphs(spectra(3, 6)))
    assert inside.item() == 0.0


def test_log_tc_error_is_relative_above_one_kelvin():
    """tc_error=log: (ln(1 + Tc/1 K) - ln(1 + Tc_ref/1 K))^2, so a factor 2 at 20 K costs what it costs at 40 K."""
    pred = spectra(1, 7) * 8.0
    tc = property_matrix(pred, OMEGA, 0.1)[0, 3].item()
    assert tc > 5.0
    labels = torch.full((1, 4), float("nan"), dtype=torch.float64)
    labels[0, 3] = 2.0 * tc
    loss_fn = BetenetLoss(mse=0.0, properties={"tc_K": 1.0}, tc_error="log")
    loss, _ = loss_fn(pred, graphs(torch.full_like(pred, float("nan")), labels))
    assert loss.item() == pytest.approx((math.log1p(tc) - math.log1p(2 * tc)) ** 2, rel=1e-9)
    no_a2f = graphs(torch.full_like(pred, float("nan")), labels)
    squared, _ = BetenetLoss(mse=0.0, properties={"tc_K": 1.0})(pred, no_a2f)
    assert squared.item() == pytest.approx((tc / 10.0) ** 2, rel=1e-9)
    with pytest.raises(ValueError, match="tc_error"):
        BetenetLoss(tc_error="cubic")


def test_mixed_tc_error_and_high_tc_weight_by_hand():
    """tc_error=mixed is the log error plus the squared one; tc_weight_power p multiplies an entry's Tc error by
    (1 + Tc_ref / 5 K) ** p, so the few superconductors count more than the many near 0 K."""
    pred = spectra(1, 7) * 8.0
    tc = property_matrix(pred, OMEGA, 0.1)[0, 3].item()
    labels = torch.full((1, 4), float("nan"), dtype=torch.float64)
    labels[0, 3] = 2.0 * tc  # above the prediction: the threshold guide is 0 (lambda is above McMillan's)
    batch = graphs(torch.full_like(pred, float("nan")), labels)
    log_part = (math.log1p(tc) - math.log1p(2 * tc)) ** 2
    mixed, _ = BetenetLoss(mse=0.0, properties={"tc_K": 1.0}, tc_error="mixed")(pred, batch)
    assert mixed.item() == pytest.approx(log_part + (tc / 10.0) ** 2, rel=1e-9)
    weighted, _ = BetenetLoss(mse=0.0, properties={"tc_K": 1.0}, tc_error="log", tc_weight_power=1.5)(pred, batch)
    assert weighted.item() == pytest.approx(log_part * (1 + 2 * tc / 5.0) ** 1.5, rel=1e-9)
    with pytest.raises(ValueError, match="tc_weight_scale_K"):
        BetenetLoss(tc_weight_scale_K=0.0)


def test_every_term_has_a_config_entry():
    """A term's weight is a config key (conf/model/betenet.yaml), so +-less overrides compose."""
    from betenet.config import compose
    from betenet.models.losses import TERMS

    loss = compose([]).model.loss
    from betenet.models.losses import DEFAULT_PROPERTY_SCALES

    assert set(TERMS) | {"properties", "property_scales", "lambda_range", "tc_error", "tc_weight_power",
                         "tc_weight_scale_K"} <= set(loss)
    assert (loss.tc_weight_power, loss.tc_weight_scale_K) == (BetenetLoss.tc_weight_power,
                                                              BetenetLoss.tc_weight_scale_K)
    assert dict(loss.property_scales) == DEFAULT_PROPERTY_SCALES  # the config states the code's defaults
    assert tuple(loss.lambda_range) == BetenetLoss.lambda_range
    assert compose(["model.loss.property_scales.tc_K=5", "data.num_workers=1"]).model.loss.property_scales.tc_K == 5


class HalfLoss(BetenetLoss):
    """A loss swapped in by config alone (``model.loss._target_``), as an ablation would."""

    def __call__(self, pred, batch, weighted=True):
        loss, parts = super().__call__(pred, batch, weighted)
        return 0.5 * loss, parts


def test_loss_and_network_classes_come_from_config():
    from betenet.errors import InputError
    from betenet.models.module import build_loss, build_network
    from betenet.models.readout import AtomReadout

    loss = build_loss({"_target_": f"{__name__}.HalfLoss", "mse": 1.0}, mu_star=0.1)
    pred, y = spectra(2, 0), spectra(2, 1)
    assert isinstance(loss, HalfLoss)
    assert loss(pred, graphs(y))[0].item() == pytest.approx(0.5 * BetenetLoss()(pred, graphs(y))[0].item())
    net = build_network({"_target_": "betenet.models.readout.AtomReadout", "in_dim": 120, "attr_dim": 120,
                         "out_dim": 51, "head": "spectrum"})
    assert isinstance(net, AtomReadout)
    with pytest.raises(InputError, match="_target_"):
        build_loss({"_target_": "betenet.models.losses.NoSuchLoss"})
    with pytest.raises(InputError, match="takes no"):
        build_loss({"no_such_weight": 1.0})


from dataclasses import dataclass  # noqa: E402


@dataclass
class SizeLoss(BetenetLoss):
    """A new term from this file alone: (predicted λ × atoms per cell)² reads a per-graph input of the batch."""

    TERMS = BetenetLoss.TERMS + ("size_prior",)
    size_prior: float = 0.0

    def term_size_prior(self, pred, batch, weight, cache):
        lam = self._properties(pred, cache)[:, 0]
        return ((lam * batch.n_atoms) ** 2 * weight).sum() / weight.sum()


def test_a_loss_term_is_one_method_and_one_config_key():
    from betenet.config import compose
    from betenet.models.module import build_loss

    cfg = compose([f"+model.loss._target_={__name__}.SizeLoss", "+model.loss.size_prior=2.0"])
    loss = build_loss(dict(cfg.model.loss), mu_star=0.1)
    pred, y = spectra(2, 0), spectra(2, 1)
    batch = graphs(y)
    batch.n_atoms = torch.tensor([1.0, 3.0], dtype=torch.float64)
    total, parts = loss(pred, batch)
    lam = property_matrix(pred, OMEGA, 0.1)[:, 0]
    assert set(parts) == {"mse", "size_prior"}
    assert parts["size_prior"].item() == pytest.approx(2.0 * ((lam * batch.n_atoms) ** 2).mean().item())
    assert total.item() == pytest.approx(parts["mse"].item() + parts["size_prior"].item())
