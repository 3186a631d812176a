"""Loss landscape (Li et al. 2018): filter normalisation, the loss grid against a quadratic worked
by hand, and the surfaces of a trained demo member's regime checkpoints."""

import shutil

import numpy as np
import pytest
import torch
from _demo_ensemble import demo_ensembles
from e3nn.nn import FullyConnectedNet

from betenet.errors import InputError
from betenet.evaluation.landscape import (filter_normalised_direction, landscape_figure, loss_surface,
                                          member_landscapes, member_training_batch, training_loss)
from betenet.training.run_dir import RunDir


pytestmark = pytest.mark.usefixtures("one_thread")


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.lin = torch.nn.Linear(3, 4)                          # weight [out=4, in=3]: filters are rows
        self.fc = FullyConnectedNet([4, 5, 2], torch.relu)        # e3nn layer weights [in, out]: columns
        self.flat = torch.nn.Parameter(torch.randn(7))            # a flat e3nn-style weight: one filter


def test_filter_normalised_direction_matches_filter_norms():
    model = Toy()
    d = filter_normalised_direction(model, torch.Generator().manual_seed(0))
    assert set(d) == {n for n, _ in model.named_parameters()}
    w = model.lin.weight.detach()
    np.testing.assert_allclose(d["lin.weight"].norm(dim=1), w.norm(dim=1), rtol=1e-6)
    assert torch.all(d["lin.bias"] == 0)  # biases do not move
    for name in ("fc.layer0.weight", "fc.layer1.weight"):
        w = dict(model.named_parameters())[name].detach()
        np.testing.assert_allclose(d[name].norm(dim=0), w.norm(dim=0), rtol=1e-6)
    assert float(d["flat"].norm()) == pytest.approx(float(model.flat.detach().norm()), rel=1e-6)
    # same seed, same direction; a different draw is a different direction
    again = filter_normalised_direction(model, torch.Generator().manual_seed(0))
    assert all(torch.equal(d[k], again[k]) for k in d)
    other = filter_normalised_direction(model, torch.Generator().manual_seed(1))
    assert not torch.equal(d["lin.weight"], other["lin.weight"])


def test_loss_surface_of_a_quadratic_by_hand():
    # L(theta) = sum(theta^2) for one weight matrix: L(a, b) = |theta + a d1 + b d2|^2
    #   = |theta|^2 + 2a theta.d1 + 2b theta.d2 + a^2 |d1|^2 + b^2 |d2|^2 + 2ab d1.d2
    model = torch.nn.Linear(2, 3, bias=False)
    theta = model.weight.detach().clone()
    gen = torch.Generator().manual_seed(5)
    d1 = filter_normalised_direction(model, gen)
    d2 = filter_normalised_direction(model, gen)
    a_, b_ = d1["weight"], d2["weight"]

    def loss(m):
        return float((m.weight**2).sum())

    alphas, betas = np.array([-1.0, 0.0, 0.5]), np.array([-0.5, 0.0, 1.0, 2.0])
    grid = loss_surface(model, loss, d1, d2, alphas, betas)
    assert grid.shape == (3, 4)
    dot = lambda x, y: float((x * y).sum())  # noqa: E731
    for i, a in enumerate(alphas):
        for j, b in enumerate(betas):
            expected = (dot(theta, theta) + 2 * a * dot(theta, a_) + 2 * b * dot(theta, b_) + a * a * dot(a_, a_)
                        + b * b * dot(b_, b_) + 2 * a * b * dot(a_, b_))
            assert grid[i, j] == pytest.approx(expected, rel=1e-5)
    assert torch.equal(model.weight.detach(), theta)  # weights restored
    # |d| = |theta| per filter (rows), so at (1, 0) the loss is |theta + d1|^2 <= 4 |theta|^2
    assert loss_surface(model, loss, d1, d2, [1.0], [0.0])[0, 0] <= 4 * dot(theta, theta) + 1e-6


def test_member_landscapes_on_a_demo_run(tmp_path):
    demo = demo_ensembles()
    run_dir = demo.run("cso", 1)
    result = member_landscapes(run_dir, steps=3, span=0.5, seed=2)
    present = {r for r in ("classical", "critical", "modern") if RunDir(run_dir).checkpoint(r).exists()}
    assert set(result["landscapes"]) == present and set(result["missing"]) == {"classical", "critical",
                                                                                "modern"} - present
    assert result["alphas"] == [-0.5, 0.0, 0.5]
    # the centre of the grid is the checkpoint; its loss is the weighted training loss computed here
    from betenet.inference import load_member

    batch = member_training_batch(run_dir)
    boot = RunDir(run_dir).read_bootstrap()
    assert batch.num_graphs == len(boot["train_ids"])
    np.testing.assert_allclose(batch.weight.numpy(), boot["train_weights"])
    module = load_member(RunDir(run_dir).checkpoint("classical")).module
    with torch.no_grad():
        pred = module(batch.clone()).double()
    per_entry = ((pred - batch.y.double()) ** 2).mean(-1)  # MSE over bins (the demo config's only term)
    w = batch.weight.double()
    expected = float((w * per_entry).sum() / w.sum())
    rec = result["landscapes"]["classical"]
    assert rec["loss_at_origin"] == pytest.approx(expected, rel=1e-5)
    assert np.array(rec["losses"])[1, 1] == pytest.approx(expected, rel=1e-5)
    assert abs(rec["cosine"]) < 0.2  # two random directions in ~10^4 dimensions: nearly orthogonal
    assert rec["epoch"] == RunDir(run_dir).read_regimes()["regimes"]["classical"]["epoch"]
    path = landscape_figure(result, tmp_path / "landscape.png")
    assert path.stat().st_size > 10_000
    assert training_loss(batch)(module) == pytest.approx(expected, rel=1e-5)


def test_landscape_errors(tmp_path):
    demo = demo_ensembles()
    with pytest.raises(InputError, match="run directory not found"):
        member_landscapes(tmp_path / "absent")
    copy = tmp_path / "run"
    shutil.copytree(demo.run("cso", 0), copy)
    for regime in ("classical", "critical", "modern"):
        RunDir(copy).checkpoint(regime).unlink(missing_ok=True)
    with pytest.raises(InputError, match="no regime checkpoint"):
        member_landscapes(copy)
    with pytest.raises(InputError, match="unknown regimes"):
        member_landscapes(copy, regimes=["final"])
    boot = RunDir(copy).read_bootstrap()
    boot["train_ids"] = boot["train_ids"][::-1]
    RunDir(copy).write_bootstrap(boot)
    with pytest.raises(InputError, match="differs from the one this member trained on"):
        member_training_batch(copy)
