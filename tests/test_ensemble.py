"""Ensembles: combining member spectra (hand-derived cases), collecting members from a sweep with
failed / unreadable / mismatched members skipped, and predicting with a trained demo ensemble."""

import argparse
import math
import shutil

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from betenet.errors import InputError
from betenet.physics.units import BIN_CENTRES_MEV, MEV_TO_K
from betenet.training.run_dir import RunDir
from betenet.inference.ensemble import combine_members, load_ensemble, load_member




pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------
# combine_members: hand-derived
# --------------------------------------------------------------------------------------------
def single_bin(height, k=10):
    a = np.zeros(len(BIN_CENTRES_MEV))
    a[k] = height
    return a


def allen_dynes_equal_moments(lam, w_K, mu):
    # Allen–Dynes with w_2 = w_log (one-bin spectrum): f2 = 1, f1 = [1 + (lam/L1)^1.5]^(1/3).
    l1 = 2.46 * (1 + 3.8 * mu)
    f1 = (1 + (lam / l1) ** 1.5) ** (1 / 3)
    return f1 * w_K / 1.2 * math.exp(-1.04 * (1 + lam) / (lam - mu * (1 + 0.62 * lam)))


def test_combine_members_hand_case():
    # One bin at w_k = 20.25 meV (interior: width 2 meV). Member heights h and 3h; mean 2h.
    # lambda = 2 * a2F * dw / w = 4 a2F / w_k, so lambda_1 = 4h/w_k, lambda_2 = 12h/w_k,
    # lambda(mean) = 8h/w_k; choose h = w_k / 8 so lambda(mean) = 1, members 0.5 and 1.5.
    wk = BIN_CENTRES_MEV[10]
    h = wk / 8
    members = np.stack([single_bin(h)[None], single_bin(3 * h)[None]])  # [M=2, N=1, B]
    out = combine_members(members, mu_star=0.1)
    np.testing.assert_allclose(out["a2f_mean"][0], single_bin(2 * h))
    np.testing.assert_allclose(out["a2f_std"][0], single_bin(h))  # |3h - h| / 2 (ddof 0)
    p, s = out["properties"], out["properties_std"]
    assert p["lambda"][0] == pytest.approx(1.0)
    assert s["lambda"][0] == pytest.approx(0.5)  # members 0.5 and 1.5
    # every spectrum has all its weight at w_k: w_log = w_2 = w_k for the mean and each member
    assert p["omega_log_K"][0] == pytest.approx(wk * MEV_TO_K)
    assert p["omega_2_K"][0] == pytest.approx(wk * MEV_TO_K)
    assert s["omega_log_K"][0] == pytest.approx(0.0, abs=1e-9)
    tc = allen_dynes_equal_moments(1.0, wk * MEV_TO_K, 0.1)
    assert p["tc_K"][0] == pytest.approx(tc, rel=1e-9)
    tcs = [allen_dynes_equal_moments(x, wk * MEV_TO_K, 0.1) for x in (0.5, 1.5)]
    assert s["tc_K"][0] == pytest.approx(abs(tcs[1] - tcs[0]) / 2, rel=1e-9)
    # Tc is that of the mean a2F (17.2 K), not the mean of the members' Tc (16.0 K)
    assert p["tc_K"][0] != pytest.approx(np.mean(tcs), rel=1e-3)


def test_combine_members_single_member_and_eliashberg():
    from betenet.physics.eliashberg_solver import eliashberg_tc

    wk = BIN_CENTRES_MEV[10]
    spec = single_bin(wk / 8)
    out = combine_members(spec[None, None], mu_star=0.13, eliashberg=True)
    # a single member has no spread: NaN, not 0 (a warning says so; tests/test_conventions.py)
    assert np.isnan(out["properties_std"]["lambda"][0]) and np.isnan(out["properties_std"]["tc_eliashberg_K"][0])
    assert np.isnan(out["a2f_std"]).all()
    assert out["properties"]["tc_eliashberg_K"][0] == pytest.approx(eliashberg_tc(BIN_CENTRES_MEV, spec, 0.13))
    with pytest.raises(ValueError):
        combine_members(np.zeros((2, 3, 50)))


# --------------------------------------------------------------------------------------------
# Collecting members
# --------------------------------------------------------------------------------------------
def test_load_ensemble_from_sweep(demo):
    ens = load_ensemble(demo.sweep("cso"))
    assert ens.names == ["seed_0", "seed_1"] and ens.skipped == []
    assert ens.variant == "cso" and ens.site_dos == "none"
    cpd = load_ensemble(demo.sweep("cpd"))
    assert cpd.variant == "cpd" and cpd.graph_settings["site_dos_kind"] == "coarse"
    # one run directory, and another of its checkpoints
    one = load_ensemble(demo.run("cso", 1), checkpoint="classical")
    assert one.names == ["seed_1"] and one.members[0].checkpoint == RunDir(demo.run("cso", 1)).checkpoint("classical")


def test_bad_members_are_reported_and_skipped(demo, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(demo.run("cso", 0), sweep / "seed_0")
    RunDir(sweep / "seed_1").write_failed("Traceback ...\nRuntimeError: loss is NaN\n")
    seed_2, seed_3, seed_4 = (RunDir(sweep / f"seed_{k}") for k in (2, 3, 4))
    seed_2.final.parent.mkdir(parents=True)
    seed_2.final.write_bytes(b"not a checkpoint")
    seed_3.checkpoint_dir.mkdir(parents=True)  # training never finished
    seed_4.checkpoint_dir.mkdir(parents=True)
    # arbitrary Python objects are refused by weights_only loading
    torch.save({"state_dict": {}, "hyper_parameters": argparse.Namespace(net=1)}, seed_4.final)
    shutil.copytree(demo.run("cpd", 0), sweep / "seed_5")  # another variant: a different network
    (sweep / "notes").mkdir()  # not a run: ignored
    ens = load_ensemble(sweep)
    assert ens.names == ["seed_0"]
    reasons = dict(ens.skipped)
    assert set(reasons) == {"seed_1", "seed_2", "seed_3", "seed_4", "seed_5"}
    assert "failed in training" in reasons["seed_1"] and "loss is NaN" in reasons["seed_1"]
    assert "unreadable checkpoint" in reasons["seed_2"]
    assert "no checkpoints/final.ckpt" in reasons["seed_3"]
    assert "unreadable checkpoint" in reasons["seed_4"] and "weights" in reasons["seed_4"].lower()
    assert "different network" in reasons["seed_5"]
    missing = tmp_path / "absent.ckpt"
    ens = load_ensemble([RunDir(demo.run("cso", 0)).final, missing])
    assert ens.names == ["seed_0"] and ens.skipped == [(str(missing), "not found")]
    with pytest.raises(InputError, match="no usable ensemble member"):
        load_ensemble([sweep / "seed_1", sweep / "seed_2"])
    with pytest.raises(InputError, match="checkpoint not found"):
        load_member(missing)


# --------------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------------
def test_prediction_is_the_mean_of_member_forwards(demo):
    ens = load_ensemble(demo.sweep("cso"))
    dm = ens.datamodule()
    boot = RunDir(demo.run("cso", 0)).read_bootstrap()
    assert dm.split_ids["test"] == boot["test_ids"]  # the split the members were tested on
    graphs = dm.graphs_for("test")
    pred = ens.predict(graphs, batch_size=3)  # several batches
    assert pred.ids == boot["test_ids"] and pred.member_a2f.shape == (2, len(graphs), 51)
    by_hand = []
    for s in (0, 1):
        ckpt = torch.load(RunDir(demo.run("cso", s)).final, weights_only=True)
        from betenet.models.module import BetenetModule

        module = BetenetModule(**ckpt["hyper_parameters"])
        module.load_state_dict(ckpt["state_dict"])
        module.eval()
        with torch.no_grad():
            by_hand.append(module(Batch.from_data_list([g.clone() for g in graphs])).double().numpy())
    by_hand = np.stack(by_hand)
    np.testing.assert_allclose(pred.member_a2f, by_hand, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pred.a2f_mean, by_hand.mean(0), rtol=1e-5, atol=1e-7)
    assert pred.mu_star == 0.1
    assert np.all(pred.properties_std["tc_K"] >= 0)


@pytest.mark.parametrize("variant", ["cso", "cpd"])
def test_members_sharing_each_batch_give_each_members_own_numbers(demo, variant):
    """predict_members collates and prepares each batch once for every member: bit for bit what each member's
    own forward pass on the same batches gives."""
    ens = load_ensemble(demo.sweep(variant))
    graphs = ens.datamodule().graphs_for("test")
    shared = ens.predict_members(graphs, batch_size=3)
    own = np.zeros_like(shared)
    with torch.no_grad():
        for j, member in enumerate(ens.members):
            module = member.module.eval()
            for start in range(0, len(graphs), 3):
                batch = Batch.from_data_list([g.clone() for g in graphs[start:start + 3]])
                own[j, start:start + 3] = module(batch).double().numpy()
    assert np.array_equal(shared, own)
