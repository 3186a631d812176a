"""experiments/jarvis_tc.py's own logic on synthetic inputs: the top-end table it prints, the held-out groups of the
elemental λ table (every element held out by exactly one fold, with its JARVIS twin) and the split files that
train on the others."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from betenet.evaluation.elemental import ID_PREFIX, read_table
from betenet.evaluation.top_end import fit_of_high, top_end_metrics

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "jarvis_tc.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("jarvis_tc_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(truth, pred, fit_pred):
    return {"tc": {"mae": 1.0, "rmse": 2.0, "r2": 0.1, "n": len(truth)}, "top_end": top_end_metrics(truth, pred),
            "fit": fit_of_high([10.0, 20.0], fit_pred)}


def test_top_end_table_means_over_folds(study):
    results = {"splits": ["fold0", "fold1"], "models": {
        "m": {"fold0": _record([1.0, 6.0, 12.0], [1.0, 3.0, 12.0], [10.0, 10.0]),   # high MAE 1.5, fit 0.25
              "fold1": _record([1.0, 6.0, 12.0], [1.0, 6.0, 6.0], [10.0, 30.0])}}}  # high MAE 3.0, fit 0.25
    lines = study.top_end_lines(results, ["m"], ["fold0", "fold1"])
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    row = [c.strip() for c in lines[4].strip("|").split("|")]
    cells = dict(zip(header, row))
    assert cells["MAE ≥ 5 K (K)"] == "2.25 ± 0.75"
    assert cells["fit: median rel. error, own train ≥ 10 K"] == "0.25 ± 0.00"
    assert cells["elemental λ MAE"] == "–"  # no elemental record: a dash, not a crash


def test_elemental_groups_hold_each_element_out_once(study, tmp_path):
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "jarvis-tc"
    if not (data / "labels.csv").exists():
        pytest.skip(f"shared JARVIS data not found at {data}")
    paths = study.write_splits(data, tmp_path, 5, 0)
    groups = study.elemental_groups(data, paths, 0)
    folds = [f"fold{k}" for k in range(5)]
    held = [el for f in folds for el in groups[f]]
    assert sorted(held) == sorted(r.element for r in read_table())  # each element exactly once
    nb = "JVASP-934"  # bcc Nb in the JARVIS data
    fold_of_nb = next(f for f in folds if nb in json.loads(paths[f].read_text())["test"])
    assert "Nb" in groups[fold_of_nb]  # held out where its JARVIS twin is tested
    root, with_elements = study.elemental_splits(data, tmp_path, paths, groups)
    train = json.loads(with_elements[fold_of_nb].read_text())["train"]
    other = groups[next(f for f in folds if f != fold_of_nb)][0]  # held out by another fold: trained on here
    assert f"{ID_PREFIX}Nb" not in train and f"{ID_PREFIX}{other}" in train
    assert np.all([(root / "structures" / f"{ID_PREFIX}{el}.vasp").exists() for el in held])
