"""Is the gradient boosting at the ceiling of its inputs? Other learners, input sets and aggregations on the
JARVIS-DFT Tc folds of ``experiments/jarvis_tc.py`` (the same stratified folds, features and cache), in one
command:

    python experiments/jarvis_tc_learners.py --out results/jarvis_tc_learners

Every row regresses ln(1 + Tc / 1 K) (the best GBM target of the main table) and is scored on Tc (K), mean over
the folds. Inputs: ``base`` (composition + phonon-DOS features, :mod:`betenet.models.gbm_baseline`), and ``base``
plus the mean and standard deviation over the atoms of a universal potential's site features (SevenNet-0,
SevenNet-l3i5, CHGNet; :mod:`betenet.pretrained`), or plus an element encoding (for each element, the smoothed
mean ln(1 + Tc) of the training compounds holding it, out-of-fold inside the training set; its fraction-weighted
mean, maximum and minimum per compound). Learners: scikit-learn's gradient boosting with the baselines' fixed
settings, extremely randomised trees, an RBF support-vector regression and distance-weighted nearest neighbours
on standardised inputs, and bagging (``--members`` gradient-boosting models on bootstrap resamples, as the
network recipe's members are drawn). ``results.json`` and ``results.md`` hold the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jarvis_tc import Baselines, split_arguments, write_splits  # noqa: E402

#: (label, learner, input set) of every row; learners and inputs are defined below.
ROWS = (
    ("GBM, base (the table's best baseline)", "gbm", "base"),
    ("GBM, base + SevenNet-0", "gbm", "base+sevennet"),
    ("GBM, base + SevenNet-l3i5", "gbm", "base+sevennet_l3i5"),
    ("GBM, base + CHGNet", "gbm", "base+chgnet"),
    ("GBM, CHGNet alone", "gbm", "chgnet"),
    ("GBM, base + SevenNet-0 + CHGNet", "gbm", "base+sevennet+chgnet"),
    ("GBM, base + element encoding", "gbm", "base+elements"),
    ("GBM, base + SevenNet-0 + element encoding", "gbm", "base+sevennet+elements"),
    ("extra trees, base", "extra_trees", "base"),
    ("extra trees, base + SevenNet-0", "extra_trees", "base+sevennet"),
    ("SVR (RBF, C 3), base + SevenNet-0", "svr", "base+sevennet"),
    ("nearest neighbours (10, PCA 30), base + SevenNet-0", "knn", "base+sevennet"),
    ("bagged GBM (bootstrap members, mean Tc), base", "bagged_gbm", "base"),
)


def parse_args(argv=None) -> argparse.Namespace:
    p = split_arguments(__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=8, help="bootstrap members of the bagged row")
    return p.parse_args(argv)


def pooled_features(data: Path, ids: list[str], model: str) -> np.ndarray:
    """Mean and std over the atoms of ``model``'s site features (cached; NaN rows where it failed)."""
    from betenet.config import compose
    from betenet.data.sources.directory import load_directory
    from betenet.models.gbm_baseline import pretrained_features
    from betenet.pretrained import FeatureSettings, features_for_entries

    entries = {e.id: e for e in load_directory(data).entries}
    settings = FeatureSettings.from_mapping(compose([f"features={model}"]).features)
    site = features_for_entries([entries[i] for i in ids], settings)
    dim = 2 * next(iter(site.features.values())).shape[1]
    return np.stack([pretrained_features(site.features[i]) if i in site.features else np.full(dim, np.nan)
                     for i in ids])


def element_encoding(fractions: list[dict], y: np.ndarray, fit: np.ndarray, smoothing: float = 2.0) -> np.ndarray:
    """Per compound: fraction-weighted mean, max and min over its elements of the smoothed mean of ``y`` over
    the ``fit`` compounds holding each element (unseen elements: the mean of ``y[fit]``)."""
    prior = float(y[fit].mean())
    total: dict[str, float] = {}
    count: dict[str, int] = {}
    for i in fit:
        for el in fractions[i]:
            total[el] = total.get(el, 0.0) + y[i]
            count[el] = count.get(el, 0) + 1
    rows = []
    for comp in fractions:
        v = np.array([(total.get(el, 0.0) + smoothing * prior) / (count.get(el, 0) + smoothing) for el in comp])
        w = np.array(list(comp.values()))
        rows.append([float(np.sum(w * v)), float(v.max()), float(v.min())])
    return np.array(rows)


def element_columns(fractions, y, train, test, seed: int = 0) -> np.ndarray:
    """Element encoding without leakage: training rows encoded out-of-fold (5 inner folds), test rows from
    all training rows."""
    out = np.full((len(y), 3), np.nan)
    inner = np.random.default_rng(seed).integers(0, 5, len(train))
    for k in range(5):
        out[train[inner == k]] = element_encoding(fractions, y, train[inner != k])[train[inner == k]]
    out[test] = element_encoding(fractions, y, train)[test]
    return out


def learner(name: str):
    from sklearn.decomposition import PCA
    from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    from betenet.models.gbm_baseline import GBM_SETTINGS

    if name == "gbm":
        return lambda: HistGradientBoostingRegressor(**GBM_SETTINGS)
    if name == "extra_trees":
        return lambda: make_pipeline(SimpleImputer(), ExtraTreesRegressor(
            500, min_samples_leaf=3, max_features=0.3, n_jobs=1, random_state=0))
    if name == "svr":
        return lambda: make_pipeline(SimpleImputer(), StandardScaler(), SVR(C=3.0, epsilon=0.1))
    if name == "knn":
        return lambda: make_pipeline(SimpleImputer(), StandardScaler(), PCA(30, random_state=0),
                                     KNeighborsRegressor(10, weights="distance"))
    raise ValueError(name)


def fit_predict(name: str, x: np.ndarray, y: np.ndarray, train, test, members: int) -> np.ndarray:
    """Tc (K) of ``test`` from a learner of ln(1 + Tc) fitted on ``train``."""
    if name == "bagged_gbm":
        rng = np.random.default_rng(0)
        make = learner("gbm")
        draws = [rng.choice(train, len(train)) for _ in range(members)]
        return np.mean([np.expm1(make().fit(x[b], y[b]).predict(x[test])) for b in draws], axis=0).clip(0)
    return np.expm1(learner(name)().fit(x[train], y[train]).predict(x[test])).clip(0)


def main(argv=None) -> int:
    from betenet.data.sources.directory import load_directory
    from betenet.evaluation.metrics import regression_metrics

    args = parse_args(argv)
    data, out = Path(args.data).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    split_files = write_splits(data, out, args.folds, args.fold_seed)
    folds = [json.loads(split_files[f"fold{f}"].read_text()) for f in range(args.folds)]
    base = Baselines(data, 0.10)
    ids = sorted(base.x)
    tc = np.array([base.tc[i] for i in ids])
    y = np.log1p(tc)
    entries = {e.id: e for e in load_directory(data).entries}
    fractions = [entries[i].structure.composition.fractional_composition.as_dict() for i in ids]
    blocks = {"base": np.stack([base.x[i] for i in ids])}
    for model in ("sevennet", "sevennet_l3i5", "chgnet"):
        print(f"features: {model}", flush=True)
        blocks[model] = pooled_features(data, ids, model)
    index = {i: k for k, i in enumerate(ids)}
    results = {}
    for label, name, inputs in ROWS:
        per_fold = []
        for split in folds:
            train = np.array([index[i] for i in split["train"] if i in index])
            test = np.array([index[i] for i in split["test"] if i in index])
            parts = [blocks[p] for p in inputs.split("+") if p != "elements"]
            if "elements" in inputs:
                parts.append(element_columns(fractions, y, train, test))
            x = np.hstack(parts)
            per_fold.append(regression_metrics(tc[test], fit_predict(name, x, y, train, test, args.members)))
        results[label] = {k: [m[k] for m in per_fold] for k in ("mae", "rmse", "r2")}
        mean = {k: float(np.mean(v)) for k, v in results[label].items()}
        print(f"{label:55s} MAE {mean['mae']:.2f}  RMSE {mean['rmse']:.2f}  R² {mean['r2']:.2f}", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    lines = ["| learner of ln(1 + Tc), inputs | Tc MAE (K) | Tc RMSE (K) | Tc R² |", "|:--|--:|--:|--:|"]
    for label, r in results.items():
        lines.append(f"| {label} | " + " | ".join(f"{np.mean(r[k]):.2f} ± {np.std(r[k]):.2f}"
                                                   for k in ("mae", "rmse", "r2")) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
