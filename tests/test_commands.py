"""`betenet predict | evaluate | screen | landscape` end to end on a tiny trained demo ensemble (two
CSO and two CPD members), with every reported number recomputed here from the written outputs,
the dataset's labels or an independent fit."""

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from betenet.cli import main
from betenet.data.graphs import structure_to_graph
from betenet.data.spectra import bin_spectrum
from betenet.data.structures import load_structure
from betenet.physics.properties import a2f_properties
from betenet.physics.units import BIN_CENTRES_MEV
from betenet.inference import load_ensemble
from betenet.training.run_dir import RunDir

PROPS = ("lambda", "omega_log_K", "omega_2_K", "tc_K")
#: The CSVs hold 6 significant digits (betenet.files.csv_cell): a cell is within 5e-6 of its value, relative;
#: a metric recomputed here from such cells within what that rounding can move it.
CELL = dict(rel=1e-5, abs=1e-9)
FROM_CELLS = dict(rel=1e-4, abs=1e-4)




pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def labels(demo):
    return {r["id"]: r for r in json.loads((demo.demo_dir / "labels.json").read_text())}


@pytest.fixture(scope="module")
def test_ids(demo):
    return RunDir(demo.run("cso", 0)).read_bootstrap()["test_ids"]


def run(capsys, *argv):
    code = main([*map(str, argv), "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def num(cell):
    return float(cell) if cell != "" else math.nan


# --------------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------------
def test_predict_files_folders_globs_and_bad_inputs(demo, tmp_path, capsys):
    structures = demo.demo_dir / "structures"
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in ("demo-0001.cif", "demo-0002.cif"):
        shutil.copy(structures / name, folder / name)
    (folder / "notes.txt").write_text("ignored: not a structure file")
    bad = tmp_path / "broken.cif"
    bad.write_text("data_broken\n_cell_length_a 3.0\n")
    out = tmp_path / "out" / "pred.csv"
    code, res, _ = run(capsys, "predict", "--ensemble", demo.sweep("cso"), folder, structures / "demo-000[34].cif",
                       bad, tmp_path / "absent.cif", "--out", out)
    assert code == 0
    rows = read_csv(out)
    assert [r["id"] for r in rows] == ["demo-0001", "demo-0002", "demo-0003", "demo-0004", "broken",
                                       str(tmp_path / "absent.cif")]
    assert list(rows[0]) == ["id", "formula", "lambda", "lambda_std", "omega_log_K", "omega_log_K_std",
                             "omega_2_K", "omega_2_K_std", "tc_allen_dynes_K", "tc_allen_dynes_K_std", "status",
                             "warnings"]
    assert res["predicted"] == 4 and res["failed"] == 2 and res["members"] == 2
    assert rows[4]["status"].startswith("cannot read structure") and rows[4]["lambda"] == ""
    assert rows[5]["status"] == "file not found"
    # the numbers: the ensemble on graphs built here, structure by structure
    ens = load_ensemble(demo.sweep("cso"))
    paths = [structures / f"{r['id']}.cif" for r in rows[:4]]
    graphs = [structure_to_graph(load_structure(p)) for p in paths]
    ref = ens.predict(graphs)
    for k, r in enumerate(rows[:4]):
        assert r["status"] == "ok" and r["formula"] == load_structure(paths[k]).composition.reduced_formula
        for col, key in (("lambda", "lambda"), ("omega_log_K", "omega_log_K"), ("omega_2_K", "omega_2_K"),
                         ("tc_allen_dynes_K", "tc_K")):
            assert num(r[col]) == pytest.approx(ref.properties[key][k], rel=1e-5, abs=1e-9)
            assert num(r[f"{col}_std"]) == pytest.approx(ref.properties_std[key][k], rel=1e-4, abs=1e-9)
    spectra = json.loads(out.with_suffix(".json").read_text())
    assert spectra["omega_meV"] == pytest.approx(list(BIN_CENTRES_MEV))
    assert [e["id"] for e in spectra["entries"]] == [r["id"] for r in rows[:4]]
    first = spectra["entries"][0]
    assert len(first["a2f_mean"]) == len(first["a2f_std"]) == 51
    # lambda in the CSV is that of the mean spectrum in the JSON
    assert a2f_properties(BIN_CENTRES_MEV, first["a2f_mean"])["lambda"] == pytest.approx(num(rows[0]["lambda"]),
                                                                                        **CELL)


def test_predict_eliashberg_and_mu_star(demo, tmp_path, capsys):
    from betenet.physics.eliashberg_solver import eliashberg_tc

    out = tmp_path / "pred.csv"
    structures = demo.demo_dir / "structures"
    code, _, _ = run(capsys, "predict", "--ensemble", demo.sweep("cso"), structures / "demo-0005.cif",
                     "--eliashberg", "--mu-star", "0.13", "--out", out)
    assert code == 0
    row = read_csv(out)[0]
    assert {"tc_eliashberg_K", "tc_eliashberg_K_std"} <= set(row)
    mean = json.loads(out.with_suffix(".json").read_text())["entries"][0]["a2f_mean"]
    assert num(row["tc_eliashberg_K"]) == pytest.approx(eliashberg_tc(BIN_CENTRES_MEV, mean, 0.13), **CELL)
    p = a2f_properties(BIN_CENTRES_MEV, mean, mu_star=0.13)
    assert num(row["tc_allen_dynes_K"]) == pytest.approx(p["tc_K"], **CELL)


def test_predict_cpd_reads_phdos_from_labels(demo, tmp_path, capsys):
    out = tmp_path / "cpd.csv"
    structures = demo.demo_dir / "structures"
    # without a labels file the CPD members have no site PhDOS: every row says so (exit 1: none predicted)
    code, _, err = run(capsys, "predict", "--ensemble", demo.sweep("cpd"), structures / "demo-000[12].cif",
                       "--out", out)
    assert code == 1 and "no input could be predicted" in err and len(read_csv(out)) == 2
    assert all("coarse site-projected phonon DOS" in r["status"] and "--labels" in r["status"] for r in read_csv(out))
    # with --labels, or given the dataset folder (its labels.json is found)
    code, res, _ = run(capsys, "predict", "--ensemble", demo.sweep("cpd"), structures / "demo-000[12].cif",
                       "--labels", demo.demo_dir / "labels.json", "--out", out)
    assert code == 0 and res["predicted"] == 2
    with_labels = read_csv(out)
    code, res, _ = run(capsys, "predict", "--ensemble", demo.sweep("cpd"), demo.demo_dir, "--out", out)
    assert code == 0 and res["failed"] == 0 and res["predicted"] == len(list(structures.glob("*.cif")))
    by_id = {r["id"]: r for r in read_csv(out)}
    for r in with_labels:
        assert num(by_id[r["id"]]["lambda"]) == pytest.approx(num(r["lambda"]), rel=1e-5)  # float32 batches


def test_predict_without_members_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run(capsys, "predict", "--ensemble", tmp_path, tmp_path / "x.cif", "--out", tmp_path / "o.csv")
    assert code == 2 and "no usable ensemble member" in err and len(err.strip().splitlines()) == 1


def test_threads_option(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        code, _, err = run(capsys, "predict", "--ensemble", tmp_path, tmp_path / "x.cif", "--out", tmp_path / "o.csv",
                           "--threads", "1")
        assert code == 2 and "no usable ensemble member" in err and torch.get_num_threads() == 1  # applied first
        code, _, err = run(capsys, "predict", "--ensemble", tmp_path, tmp_path / "x.cif", "--out", tmp_path / "o.csv",
                           "--threads", "-1")
        assert code == 2 and "--threads" in err and len(err.strip().splitlines()) == 1
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------
def hand_metrics(t, p):
    t, p = np.asarray(t, float), np.asarray(p, float)
    res = p - t
    return dict(r2=1 - np.sum(res**2) / np.sum((t - t.mean()) ** 2), mae=np.mean(np.abs(res)),
                rmse=np.sqrt(np.mean(res**2)))


@pytest.fixture(scope="module")
def evaluated(demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate")
    code = main(["evaluate", "--ensemble", str(demo.sweep("cso")), "--out", str(out), "--top-k", "3"])
    assert code == 0
    return out


def test_evaluate_table_against_reference_and_reported(evaluated, labels, test_ids):
    rows = read_csv(evaluated / "predictions.csv")
    assert [r["id"] for r in rows] == test_ids
    table = json.loads((evaluated / "table1.json").read_text())
    assert table["n"] == len(test_ids) and table["split"] == "test"
    for k in PROPS:
        # reference: the property of the binned raw a2F (mu* 0.10), like the prediction's
        true = [a2f_properties(BIN_CENTRES_MEV, bin_spectrum(labels[i]["a2f_freq_meV"], labels[i]["a2f"]))[k]
                for i in test_ids]
        assert [num(r[f"{k}_true"]) for r in rows] == pytest.approx(true, **CELL)
        expected = hand_metrics(true, [num(r[f"{k}_pred"]) for r in rows])
        for stat in ("r2", "mae", "rmse"):
            assert table["metrics"][k][stat] == pytest.approx(expected[stat], **FROM_CELLS)
        # reported: the demo set's own labels (from its raw spectra), a separate column set
        reported = [labels[i][k] for i in test_ids]
        assert [num(r[f"{k}_reported"]) for r in rows] == pytest.approx(reported, **CELL)
        expected = hand_metrics(reported, [num(r[f"{k}_pred"]) for r in rows])
        for stat in ("r2", "mae", "rmse"):
            assert table["reported_metrics"][k][stat] == pytest.approx(expected[stat], **FROM_CELLS)
    md = (evaluated / "table1.md").read_text()
    assert "CSO ×2, synthetic demo" in md and "| MAE |" in md  # demo results say so
    assert "vs reported" in md
    for name in ("parity.png", "parity_reported.png", "best_spectra.png", "worst_spectra.png", "per_element.png",
                 "ensemble_size.png"):
        assert (evaluated / name).stat().st_size > 10_000, name


def test_evaluate_top_end_metrics(evaluated):
    from betenet.evaluation.top_end import top_end_metrics

    rows = read_csv(evaluated / "predictions.csv")
    summary = json.loads((evaluated / "evaluation.json").read_text())
    top = summary["top_end"]
    assert top["truth"] == "reference" and "median predictor" in top["models"]
    mine = top["models"][summary["model"]]
    expected = top_end_metrics([num(r["tc_K_true"]) for r in rows], [num(r["tc_K_pred"]) for r in rows])
    assert mine["high"]["n"] == expected["high"]["n"]
    for thr in ("5", "10"):
        assert mine["classes"][thr]["positives"] == expected["classes"][thr]["positives"]
    assert mine["spearman"] == pytest.approx(expected["spearman"], abs=1e-4)
    md = (evaluated / "top_end.md").read_text()
    assert "median predictor" in md and "AP@5 K" in md


def test_evaluate_best_worst_per_element_and_ensemble_size(evaluated, labels, test_ids):
    summary = json.loads((evaluated / "evaluation.json").read_text())
    rows = read_csv(evaluated / "predictions.csv")
    delta = {}
    for r in rows:  # mean normalised error over the three moments (all true values non-zero here)
        delta[r["id"]] = np.mean([abs(num(r[f"{k}_pred"]) - num(r[f"{k}_true"])) / abs(num(r[f"{k}_true"]))
                                  for k in PROPS[:3]])
        assert num(r["delta"]) == pytest.approx(delta[r["id"]], **FROM_CELLS)
    order = sorted(delta, key=delta.get)
    assert [b["id"] for b in summary["best"]] == order[:3]
    assert [w["id"] for w in summary["worst"]] == order[::-1][:3]
    # per element: mean over the test materials that contain it
    from pymatgen.core import Composition

    elements = {i: {str(e) for e in Composition(labels[i]["formula"]).elements} for i in test_ids}
    for el, rec in summary["per_element"].items():
        having = [i for i in test_ids if el in elements[i]]
        assert rec["n"] == len(having) and rec["mean_delta"] == pytest.approx(np.mean([delta[i] for i in having]),
                                                                            **FROM_CELLS)
    # all members averaged (size 2 of 2) is the full ensemble: the same metrics as Table I
    size = summary["ensemble_size"]
    assert size["sizes"] == [1, 2]
    for k in PROPS:
        assert size["properties"][k]["mae_mean"][1] == pytest.approx(summary["metrics"][k]["mae"], rel=1e-9)
        assert size["properties"][k]["mae_std"][1] == 0.0


def test_evaluate_on_another_dataset_folder(demo, tmp_path, capsys):
    # --data: the demo folder given as a directory-format dataset, scored on all its entries
    code, res, _ = run(capsys, "evaluate", "--ensemble", demo.sweep("cso"), "--data", demo.demo_dir, "--split", "all",
                       "--cache-dir", tmp_path / "cache", "--out", tmp_path / "ev")
    assert code == 0 and res["n"] == len(list((demo.demo_dir / "structures").glob("*.cif")))


# --------------------------------------------------------------------------------------------
# Baseline: needs eDOS (absent from the demo set), so a miniature release is built here
# --------------------------------------------------------------------------------------------
def make_release(demo, labels, root: Path) -> tuple[Path, list[str], list[str]]:
    """The demo entries in the published release format, with a synthetic site eDOS whose value at
    E_F follows lambda (plus a deterministic wiggle), ids demo-00NN → NN."""
    (root / "structures").mkdir(parents=True)
    (root / "indices").mkdir()
    energies = np.arange(-200.0, 201.0, 10.0)
    rows = {}
    for k, (ident, rec) in enumerate(sorted(labels.items())):
        rid = int(ident.split("-")[1])
        shutil.copy(demo.demo_dir / "structures" / f"{ident}.cif", root / "structures" / f"{rid}.cif")
        n_sites = len(rec["phdos_coarse_site"])
        site = (rec["lambda"] + 0.05 * math.sin(3.0 * k)) / n_sites * (1 + 0.2 * np.cos(energies / 100.0))
        rows[rid] = {"comp": rec["formula"], "Freq_meV": rec["a2f_freq_meV"], "a2F": rec["a2f"],
                     "Ph_2x2x2_interpolated_Freq_meV": rec["phdos_coarse_freq_meV"],
                     "Ph_2x2x2_interpolated_Site_Proj_DOS": rec["phdos_coarse_site"],
                     "PhFreq_meV_dense": rec["phdos_fine_freq_meV"], "Site_Proj_PhDOS_dense": rec["phdos_fine_site"],
                     "Site_proj_eDOS_eng_meV": energies.tolist(), "Site_proj_eDOS": [site.tolist()] * n_sites}
    pd.DataFrame.from_dict(rows, orient="index").to_json(root / "database.json")
    ids = sorted(rows)
    test = ids[::4]
    train = [i for i in ids if i not in test]
    np.savetxt(root / "indices" / "idx_train_full.txt", train)
    np.savetxt(root / "indices" / "idx_test_full.txt", test)
    return root, [str(i) for i in train], [str(i) for i in test]


def test_baseline_needs_edos(demo, tmp_path, capsys):
    code, _, err = run(capsys, "evaluate", "--ensemble", demo.sweep("cso"), "--model", "baseline",
                       "--out", tmp_path / "b")
    assert code == 2 and "eDOS" in err and len(err.strip().splitlines()) == 1


def test_baseline_evaluate_and_screen_on_release_format(demo, labels, tmp_path, capsys):
    from betenet.models.baseline import baseline_features

    root, train, test = make_release(demo, labels, tmp_path / "release")
    db = pd.read_json(root / "database.json")
    db.index = [str(i) for i in db.index]
    truth = {}
    feats = {}
    for i in train + test:
        r = db.loc[i]
        truth[i] = a2f_properties(BIN_CENTRES_MEV, bin_spectrum(r["Freq_meV"], r["a2F"]))
        feats[i] = baseline_features(r["Site_proj_eDOS_eng_meV"], r["Site_proj_eDOS"],
                                     r["Ph_2x2x2_interpolated_Freq_meV"], r["Ph_2x2x2_interpolated_Site_Proj_DOS"])
    # ordinary least squares by hand: [features, 1] w = lambda on the train ids
    x = np.array([np.append(feats[i], 1.0) for i in train])
    w, *_ = np.linalg.lstsq(x, np.array([truth[i]["lambda"] for i in train]), rcond=None)
    lam_pred = np.array([np.append(feats[i], 1.0) @ w for i in test])
    lam_true = np.array([truth[i]["lambda"] for i in test])

    out = tmp_path / "base"
    code, res, _ = run(capsys, "evaluate", "--model", "baseline", "--data", root, "--cache-dir", tmp_path / "cache",
                       "--out", out)
    assert code == 0 and res["model"] == "Base" and res["n"] == len(test)
    expected = hand_metrics(lam_true, lam_pred)
    assert res["mae_lambda"] == pytest.approx(expected["mae"], rel=1e-6)
    assert res["r2_lambda"] == pytest.approx(expected["r2"], rel=1e-6)

    code, res, _ = run(capsys, "screen", "--model", "baseline", "--data", root, "--cache-dir", tmp_path / "cache",
                       "--threshold", "1.0", "--out", tmp_path / "bscreen")
    assert code == 0 and res["model"] == "Base"
    n_pos = sum(truth[i]["tc_K"] >= 1.0 for i in test)
    assert res["n_positive"] == n_pos and res["random_ap"] == pytest.approx(n_pos / len(test))


# --------------------------------------------------------------------------------------------
# screen
# --------------------------------------------------------------------------------------------
def hand_ap(true, score, threshold):
    """sum over decreasing distinct scores of (recall step) * precision."""
    pos = np.asarray(true) >= threshold
    score = np.asarray(score)
    ap, last_recall = 0.0, 0.0
    for t in sorted(set(score), reverse=True):
        flagged = score >= t
        tp = np.sum(flagged & pos)
        recall = tp / pos.sum()
        ap += (recall - last_recall) * tp / flagged.sum()
        last_recall = recall
    return ap


def test_screen_two_stage_on_labelled_test_split(demo, evaluated, labels, test_ids, tmp_path, capsys):
    out = tmp_path / "screen"
    threshold = 5.0
    code, res, _ = run(capsys, "screen", "--ensemble", demo.sweep("cso"), "--ensemble-stage2", demo.sweep("cpd"),
                       "--threshold", threshold, "--recall", "1.0", "--out", out)
    assert code == 0
    report = json.loads((out / "screening.json").read_text())
    true = np.array([labels[i]["tc_K"] for i in test_ids])
    ens = load_ensemble(demo.sweep("cso"))
    pred = ens.predict(ens.datamodule().graphs_for("test"))  # full precision: the CSV rounds to 6 digits
    assert pred.ids == test_ids
    cso = pred.properties["tc_K"]
    assert [num(r["tc_K_pred"]) for r in read_csv(evaluated / "predictions.csv")] == pytest.approx(cso, **CELL)
    n_pos = int(np.sum(true >= threshold))
    assert n_pos > 0
    s1 = report["models"]["stage1"]
    assert s1["n"] == len(test_ids) and s1["n_positive"] == n_pos
    assert s1["random_ap"] == pytest.approx(n_pos / len(test_ids))
    assert s1["average_precision"] == pytest.approx(hand_ap(true, cso, threshold), rel=1e-9)
    # the cheap first stage: precision 1 at its threshold, and at no lower predicted value
    cheap = s1["cheap_stage"]["decision_K"]
    flagged = cso >= cheap
    assert np.all(true[flagged] >= threshold)
    for t in cso[cso < cheap]:
        assert np.any(true[cso >= t] < threshold)
    conf = s1["cheap_stage"]["confusion"]
    assert conf["tp"] == int(np.sum(flagged)) and conf["fp"] == 0
    assert conf["fn"] == n_pos - conf["tp"] and conf["tn"] == len(true) - n_pos
    # stage 2 operating point chosen at recall 1.0
    s2 = report["models"]["stage2"]
    assert s2["operating"]["recall"] == 1.0 and s2["operating"]["confusion"]["fn"] == 0
    flow = report["two_stage"]
    assert flow["stage1_decision_K"] == cheap and flow["n_stage2"] == int(np.sum(flagged))
    assert flow["fraction_to_stage2"] == pytest.approx(np.sum(flagged) / len(true))
    assert res["two_stage_ap"] == flow["ap"] and res["average_precision"] == s1["average_precision"]
    for name in ("pr_curves.png",):
        assert (out / name).stat().st_size > 10_000
    assert len(list(out.glob("confusion_*.png"))) == 3


def test_screen_threshold_without_positives_is_an_error(demo, tmp_path, capsys):
    code, _, err = run(capsys, "screen", "--ensemble", demo.sweep("cso"), "--threshold", "1e6", "--out", tmp_path)
    assert code == 2 and "lower --threshold" in err


def test_screen_ranks_unlabelled_inputs_then_stage2(demo, tmp_path, capsys):
    structures = demo.demo_dir / "structures"
    bad = tmp_path / "empty.cif"
    bad.write_text("")
    out = tmp_path / "rank"
    code, res, _ = run(capsys, "screen", "--ensemble", demo.sweep("cso"), structures / "demo-001?.cif", bad,
                       "--ensemble-stage2", demo.sweep("cpd"), "--stage1-threshold", "0.5",
                       "--labels", demo.demo_dir / "labels.json", "--out", out)
    assert code == 0 and res["mode"] == "ranking" and res["failed"] == 1
    ranked = read_csv(out / "candidates_stage1.csv")
    tc = [num(r["tc_allen_dynes_K"]) for r in ranked]
    assert tc == sorted(tc, reverse=True) and [int(r["rank"]) for r in ranked] == list(range(1, 11))
    assert all(num(r["tc_allen_dynes_K_std"]) >= 0 for r in ranked)
    dropped = {r["id"]: r for r in read_csv(out / "dropped.csv")}
    assert dropped["empty"]["dropped_at"] == "stage 1"
    passed = {r["id"] for r in ranked if num(r["tc_allen_dynes_K"]) >= 0.5}
    # --stage1-threshold alone: every candidate at or above it goes on, with the PhDOS --labels gives
    assert res["sent_to_stage2"] == res["phdos_from_labels"] == len(passed) and res["phonons_ok"] == 0
    stage2 = read_csv(out / "candidates_stage2.csv")  # written, if only with its header, whenever stage 2 ran
    assert {r["id"] for r in stage2} == passed
    below = {i for i, r in dropped.items() if r["dropped_at"] == "cut"}
    assert below == {r["id"] for r in ranked} - passed and all("--stage1-threshold 0.5" in dropped[i]["reason"]
                                                                for i in below)


def test_screen_ranks_a_split_without_reference_tc(demo, tmp_path, capsys):
    data = tmp_path / "unlabelled"
    (data / "structures").mkdir(parents=True)
    for k in range(5):
        shutil.copy(demo.demo_dir / "structures" / f"demo-000{k}.cif", data / "structures")
    code, res, _ = run(capsys, "screen", "--ensemble", demo.sweep("cso"), "--data", data, "--split", "all",
                       "--cache-dir", tmp_path / "cache", "--out", tmp_path / "rank")
    assert code == 0 and res["mode"] == "ranking" and res["ranked"] == 5
    ranked = read_csv(tmp_path / "rank" / "candidates.csv")
    assert sorted(r["id"] for r in ranked) == [f"demo-000{k}" for k in range(5)]
    tc = [num(r["tc_allen_dynes_K"]) for r in ranked]
    assert tc == sorted(tc, reverse=True)


# --------------------------------------------------------------------------------------------
# landscape
# --------------------------------------------------------------------------------------------
def test_landscape_command(demo, tmp_path, capsys):
    run_dir = demo.run("cso", 0)
    has_modern = RunDir(run_dir).checkpoint("modern").exists()
    code, res, _ = run(capsys, "landscape", "--run", run_dir, "--out", tmp_path / "land", "--steps", "3",
                       "--regimes", "classical", "modern")
    assert code == 0
    result = json.loads((tmp_path / "land" / "landscape.json").read_text())
    assert set(result["landscapes"]) == {"classical"} | ({"modern"} if has_modern else set())
    assert ("modern" in result["missing"]) == (not has_modern) and ("modern" in res["missing"]) == (not has_modern)
    grid = np.array(result["landscapes"]["classical"]["losses"])
    assert grid.shape == (3, 3)
    # the grid centre (0, 0) is the unperturbed checkpoint
    assert grid[1, 1] == pytest.approx(result["landscapes"]["classical"]["loss_at_origin"], rel=1e-6)
    assert (tmp_path / "land" / "landscape.png").stat().st_size > 10_000
