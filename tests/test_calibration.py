"""Calibrated ensemble spread: the out-of-bag fit recovers a known under-dispersion and gives 95 %
coverage to a full ensemble, the out-of-bag bookkeeping follows the members' bootstrap records, the
stored calibration round-trips and is applied by ``Ensemble``, one member is refused, and
``betenet calibrate`` runs end to end on copies of the tiny demo members."""

import json
import shutil

import numpy as np
import pytest

from betenet.cli import main
from betenet.errors import InputError
from betenet.evaluation.predictions import SplitPredictions, ensemble_split_predictions
from betenet.evaluation.reports import uncertainty_summary
from betenet.inference.calibration import (A2F, CALIBRATION_FILE, Calibration, ensemble_scale, fit_model_error,
                                           out_of_bag, out_of_bag_statistics, read_calibration, require_members,
                                           write_calibration)
from betenet.inference.ensemble import Ensemble, Member, combine_members, load_ensemble
from betenet.inference.predict import predict_files
from betenet.physics.properties import PROPERTIES
from betenet.physics.units import BIN_CENTRES_MEV
from betenet.training.run_dir import RunDir

pytestmark = pytest.mark.usefixtures("one_thread")

BIN = 10  # one-bin spectra at this bin: lambda = 4 h / w_k is linear in the height h
OOB_FRACTION = 0.368  # (1 - 1/n)^n: the share of a pool a bootstrap member never draws


def members_and_truth(rng, n, m, missed):
    """Member values of lambda scattering about the ensemble's mean with a known std sigma (per
    entry), the truth a further N(0, missed * sigma^2) away: the members' std is too small."""
    sigma = 0.02 * np.exp(rng.uniform(0.0, 1.0, n))
    truth = rng.uniform(0.6, 1.4, n)
    centre = truth + rng.normal(0.0, np.sqrt(missed) * sigma)
    return truth, centre + rng.normal(0.0, 1.0, (m, n)) * sigma


def as_spectra(lam):
    """[M, N] lambda → one-bin a2F [M, N, B] with exactly that lambda."""
    a2f = np.zeros((*lam.shape, len(BIN_CENTRES_MEV)))
    a2f[..., BIN] = lam * BIN_CENTRES_MEV[BIN] / 4.0
    return a2f


# --------------------------------------------------------------------------------------------
# The fit
# --------------------------------------------------------------------------------------------
def test_out_of_bag_fit_recovers_the_known_scale_and_covers_95_percent():
    rng = np.random.default_rng(0)
    m, missed = 6, 1.5
    truth, lam = members_and_truth(rng, 20000, m, missed)
    mask = rng.random(lam.shape) < OOB_FRACTION
    stats = out_of_bag_statistics(as_spectra(lam), mask, BIN_CENTRES_MEV, 0.1)
    k = stats["k"]
    # each entry's statistics are those of its out-of-bag members only
    usable = k >= 2
    oob = np.where(mask, lam, np.nan)[:, usable]
    np.testing.assert_allclose(stats["properties"]["lambda"][usable], np.nanmean(oob, axis=0), rtol=1e-9)
    np.testing.assert_allclose(stats["properties_std"]["lambda"][usable], np.nanstd(oob, axis=0), rtol=1e-6)
    assert np.isnan(stats["properties"]["lambda"][~usable]).all()

    fit = fit_model_error(truth, stats["properties"]["lambda"], stats["properties_std"]["lambda"], k)
    assert fit["n"] == usable.sum() > 10000
    assert fit["model_error"] == pytest.approx(missed, rel=0.15)
    low, high = fit["model_error_interval"]
    assert low < fit["model_error"] < high and low < missed < high
    assert fit["within_2std_before"] < 0.7 and fit["within_2std_after"] == pytest.approx(0.95, abs=0.005)
    scale = ensemble_scale(fit["model_error"], m)
    # the factor the members' std is too small by, for 6 members: sqrt((c + 1/M) M/(M-1)) t_{0.975,5} / 2
    assert scale == pytest.approx(ensemble_scale(missed, m), rel=0.06)
    assert scale == pytest.approx(1.818, abs=0.1)

    # a fresh 6-member ensemble: mean ± 2 std covers ~78 %, with the fitted scale 95 %
    truth, lam = members_and_truth(rng, 20000, m, missed)
    err, std = np.abs(lam.mean(axis=0) - truth), lam.std(axis=0)
    assert np.mean(err <= 2 * std) < 0.82
    assert np.mean(err <= 2 * scale * std) == pytest.approx(0.95, abs=0.01)

    # every member spectrum in one bin: omega_log has no spread, so nothing to fit
    skipped = fit_model_error(np.full(len(k), 300.0), stats["properties"]["omega_log_K"],
                              stats["properties_std"]["omega_log_K"], k)
    assert skipped["model_error"] is None and skipped["n"] == 0


def test_well_calibrated_members_get_the_finite_ensemble_scale():
    # no missed spread (c = 0): the truth is the infinite ensemble's mean, and the std of 6 members is
    # wider than the error of their mean; the fit says so instead of returning the out-of-bag k ≈ 2 scale
    rng = np.random.default_rng(1)
    truth, lam = members_and_truth(rng, 20000, 6, 0.0)
    mask = rng.random(lam.shape) < OOB_FRACTION
    stats = out_of_bag_statistics(as_spectra(lam), mask, BIN_CENTRES_MEV, 0.1)
    fit = fit_model_error(truth, stats["properties"]["lambda"], stats["properties_std"]["lambda"], stats["k"])
    assert fit["model_error"] == pytest.approx(0.0, abs=0.05)
    assert ensemble_scale(fit["model_error"], 6) == pytest.approx(0.575, abs=0.05)
    assert np.isnan(ensemble_scale(0.0, 1))


# --------------------------------------------------------------------------------------------
# Bootstrap records, the stored calibration, refusal
# --------------------------------------------------------------------------------------------
def fake_member(tmp_path, name, bootstrap=None):
    run = RunDir(tmp_path / name)
    run.path.mkdir(parents=True)
    if bootstrap is not None:
        run.write_bootstrap(bootstrap)
    return Member(name=name, checkpoint=run.final, module=None, info={}, config=None)


def test_out_of_bag_follows_the_bootstrap_records(tmp_path):
    members = [fake_member(tmp_path, "seed_0", {"train_ids": ["a", "b"], "val_ids": ["c", "d"], "test_ids": ["t"]}),
               fake_member(tmp_path, "seed_1", {"train_ids": ["c", "a"], "val_ids": ["b", "d"], "test_ids": ["t"]}),
               fake_member(tmp_path, "old")]
    ids, mask, without = out_of_bag(members)
    assert ids == ["a", "b", "c", "d"] and without == ["old"]
    np.testing.assert_array_equal(mask, [[False, False, True, True], [False, True, False, True],
                                         [False, False, False, False]])
    ids, mask, _ = out_of_bag(members, known_ids=["d", "b", "t"])  # entries the data holds
    assert ids == ["b", "d"] and mask.tolist() == [[False, True], [True, True], [False, False]]


def calibration(members, checkpoint="final"):
    fits = {k: {"model_error": c, "n": 50, "within_2std_before": 0.7, "within_2std_after": 0.95}
            for k, c in zip(PROPERTIES, (1.0, 2.0, 0.5, 3.0))}
    fits[A2F] = {"model_error": 0.2, "n": 2000, "within_2std_before": 0.8, "within_2std_after": 0.95}
    fits["omega_2_K"] = {"model_error": None, "n": 3, "within_2std_before": np.nan, "within_2std_after": np.nan}
    return Calibration(fits=fits, members=list(members), checkpoint=checkpoint, info={"pool_entries": 60})


def test_calibration_json_round_trip_and_apply(tmp_path):
    cal = calibration(["seed_0", "seed_1", "seed_2"])
    path = write_calibration(tmp_path, cal)
    assert path == tmp_path / CALIBRATION_FILE and cal.path == path
    stored = json.loads(path.read_text())
    assert stored["scales"]["tc_K"] == pytest.approx(ensemble_scale(3.0, 3))
    assert stored["fits"]["omega_2_K"]["model_error"] is None and "omega_2_K" not in stored["scales"]
    back = read_calibration(tmp_path)
    assert back.fits == json.loads(json.dumps(cal.fits).replace("NaN", "null"))
    assert (back.members, back.checkpoint, back.info, back.path) == (cal.members, "final", {"pool_entries": 60}, path)
    assert back.scales(3) == pytest.approx(cal.scales(3)) and back.scales(1) == {}
    assert read_calibration(tmp_path / "elsewhere") is None

    # every std times its property's scale; Eliashberg Tc takes Tc's; omega_2 (not fitted) stays
    spectra = np.random.default_rng(2).uniform(0.0, 0.3, (3, 4, len(BIN_CENTRES_MEV)))
    stats = combine_members(spectra, 0.1)
    stats["properties_std"]["tc_eliashberg_K"] = np.ones(4)
    out, note = back.apply(stats, 3)
    scales = cal.scales(3)
    for k in ("lambda", "omega_log_K", "tc_K"):
        np.testing.assert_allclose(out["properties_std"][k], stats["properties_std"][k] * scales[k])
        np.testing.assert_array_equal(out["properties"][k], stats["properties"][k])
    np.testing.assert_array_equal(out["properties_std"]["omega_2_K"], stats["properties_std"]["omega_2_K"])
    np.testing.assert_allclose(out["properties_std"]["tc_eliashberg_K"], scales["tc_K"])
    np.testing.assert_allclose(out["a2f_std"], stats["a2f_std"] * scales[A2F])
    assert note["calibrated"] and note["file"] == str(path) and note["coverage"] == 0.95
    assert note["scales"] == pytest.approx({**{k: scales[k] for k in ("lambda", "omega_log_K", "tc_K", A2F)},
                                            "tc_eliashberg_K": scales["tc_K"]})

    path.write_text("{not json")
    with pytest.raises(InputError, match="unreadable calibration"):
        read_calibration(tmp_path)


def test_one_member_is_refused(demo, tmp_path, capsys):
    one = Ensemble(members=[fake_member(tmp_path, "seed_0")], skipped=[], label="one")
    with pytest.raises(InputError, match="at least 2 members"):
        require_members(one)
    code = main(["calibrate", "--ensemble", str(demo.run("cso", 0))])
    err = capsys.readouterr().err
    assert code == 2 and "at least 2 members" in err and len(err.strip().splitlines()) == 1
    assert not (demo.run("cso", 0) / CALIBRATION_FILE).exists()


# --------------------------------------------------------------------------------------------
# The demo members: applied by Ensemble, fitted by betenet calibrate
# --------------------------------------------------------------------------------------------
def copy_member(src, dst, train_ids=None, val_ids=None):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("last.ckpt", "classical.ckpt", "*.png", "metrics.csv"))
    if train_ids is not None:
        run = RunDir(dst)
        record = run.read_bootstrap()
        run.write_bootstrap({**record, "train_ids": train_ids, "train_weights": [1.0] * len(train_ids),
                             "val_ids": val_ids})


def test_ensemble_applies_the_stored_scale(demo, tmp_path, caplog):
    sweep = tmp_path / "cso"
    for seed in (0, 1):
        copy_member(demo.run("cso", seed), sweep / f"seed_{seed}")
    raw = load_ensemble(sweep)
    assert raw.calibration is None
    graphs = raw.datamodule().graphs_for("test")
    before = raw.predict(graphs)
    assert before.calibration is None

    write_calibration(sweep, calibration(["seed_0", "seed_1", "seed_2"]))  # fitted with a third member
    ens = load_ensemble(sweep)
    scales = ens.calibration.scales(2)  # applied for the 2 members loaded
    after = ens.predict(graphs)
    for k in PROPERTIES:
        np.testing.assert_array_equal(after.properties[k], before.properties[k])
        np.testing.assert_allclose(after.properties_std[k], before.properties_std[k] * scales.get(k, 1.0))
    np.testing.assert_allclose(after.a2f_std, before.a2f_std * scales[A2F])
    assert after.calibration["calibrated"] and after.calibration["scales"]["tc_K"] == pytest.approx(scales["tc_K"])
    assert load_ensemble(sweep, calibrated=False).calibration is None

    # betenet predict's files: calibrated _std columns, and the JSON says by what
    cif = [demo.demo_dir / "structures" / "demo-0001.cif"]
    raw_files = predict_files(raw, cif, tmp_path / "raw.csv")
    files = predict_files(ens, cif, tmp_path / "calibrated.csv")
    assert files.summary["calibrated_spread"] and not raw_files.summary["calibrated_spread"]
    assert files.table["tc_allen_dynes_K_std"][0] == pytest.approx(raw_files.table["tc_allen_dynes_K_std"][0]
                                                                   * scales["tc_K"])
    spectra = json.loads(files.spectra.read_text())
    assert spectra["calibration"]["scales"]["a2f"] == pytest.approx(scales[A2F]) and "calibration" in spectra["std"]
    assert json.loads(raw_files.spectra.read_text())["calibration"] is None

    # evaluate's uncertainty summary: coverage with the calibrated and with the members' own std
    p = ensemble_split_predictions(ens, ens.datamodule())
    unc = uncertainty_summary(p)
    assert unc["calibrated"] and unc["tc_K"]["calibration_scale"] == pytest.approx(scales["tc_K"])
    truth = p.truth()[1]["tc_K"]
    err = np.abs(p.pred["tc_K"] - truth)
    assert unc["tc_K"]["fraction_within_2std"] == pytest.approx(np.mean(err <= 2 * p.std["tc_K"]))
    assert unc["tc_K"]["fraction_within_2std_uncalibrated"] == pytest.approx(
        np.mean(err <= 2 * before.properties_std["tc_K"]))
    plain = SplitPredictions(model="m", split="test", ids=p.ids, formulas=p.formulas, true=p.true, pred=p.pred,
                             std=p.std)
    assert "fraction_within_2std_uncalibrated" not in uncertainty_summary(plain)["tc_K"]

    # fitted for other checkpoints, or without a member now loaded: not applied, with a warning
    write_calibration(sweep, calibration(["seed_0", "seed_1"], checkpoint="classical"))
    assert load_ensemble(sweep).calibration is None
    write_calibration(sweep, calibration(["seed_0"]))
    assert load_ensemble(sweep).calibration is None
    assert "seed_1 were not part of it" in caplog.text


def test_calibrate_command_end_to_end(demo, tmp_path, capsys):
    # four members (two copies of each demo member) with bootstrap records chosen so that every pool
    # entry is out of bag for one copy of each: k = 2 and a non-zero spread everywhere
    record = RunDir(demo.run("cso", 0)).read_bootstrap()
    pool = record["train_ids"] + record["val_ids"]
    halves = pool[::2], pool[1::2]
    sweep = tmp_path / "cso"
    for seed in (0, 1):
        for h in (0, 1):
            copy_member(demo.run("cso", seed), sweep / f"m{seed}{h}", train_ids=halves[h], val_ids=halves[1 - h])
    code = main(["calibrate", "--ensemble", str(sweep), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["out"] == str(sweep / CALIBRATION_FILE)
    assert res["members"] == 4 and res["pool_entries"] == len(pool) == res["entries_out_of_bag_for_2_or_more"]
    assert res["mean_out_of_bag_members"] == 2.0
    stored = json.loads((sweep / CALIBRATION_FILE).read_text())
    assert stored["members"] == ["m00", "m01", "m10", "m11"] and stored["checkpoint"] == "final"
    for k in (*PROPERTIES, A2F):
        assert res[f"scale_{k}"] == pytest.approx(stored["scales"][k]) and res[f"scale_{k}"] > 0
        assert 0 <= res[f"oob_within_2std_{k}"] <= 1 and res[f"oob_within_2std_{k}_calibrated"] >= 0.95
    assert stored["fits"]["lambda"]["n"] == len(pool)
    ens = load_ensemble(sweep)
    assert ens.calibration is not None and ens.calibration.scales(4) == pytest.approx(stored["scales"])


def test_members_agreeing_at_zero_are_left_out_not_scaled_by_1e30():
    """Entries whose out-of-bag members all give Tc ~ 0 (below the Allen-Dynes threshold: spread 1e-30 K)
    cannot be scaled: they are left out, and the scale comes from the entries that have a spread."""
    from betenet.inference.calibration import RESOLUTION, fit_model_error

    rng = np.random.default_rng(1)
    n = 400
    truth = rng.normal(5.0, 1.0, n)
    mean = truth + rng.normal(0.0, 1.0, n)
    std = np.full(n, 0.5)
    mean[:40], std[:40] = 1e-31, 1e-30  # members agreeing on Tc = 0 for entries whose truth is 5 K
    fit = fit_model_error(truth, mean, std, 3, resolution=RESOLUTION["tc_K"])
    assert fit["n"] == n - 40 and fit["model_error"] < 50
    unresolved = fit_model_error(truth, mean, std, 3)
    assert unresolved["model_error"] > 1e50  # what the resolution prevents
