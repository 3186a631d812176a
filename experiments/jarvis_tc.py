"""Tc-only learning on JARVIS-DFT, measured: k-fold cross-validation over all entries and the JARVIS
leaderboard's val split, for network recipes (``experiment=jarvis_tc`` and variations) against the
median predictor and the gradient-boosting baselines. The table of experiments/README.md is one command:

    python experiments/jarvis_tc.py --out results/jarvis_tc --members 8 --jobs 2

(``--model NAME=OVERRIDES``, repeatable, measures other networks: e.g. ``--model 'net=model/net=betenet'``;
default: ``recipe=``, the recipe itself.) For every split (``val``: train 556 / test 30; ``fold0..``: stratified
by Tc, every entry tested once) the script writes ``splits/<split>.json`` and, per network model, trains
``--members`` bootstrap members with ``train.py experiment=jarvis_tc <overrides> data.splits_file=... seed=k``
(``--jobs`` at a time, one torch thread each; a finished member is never retrained), calibrates their spread on
their out-of-bag predictions (``betenet calibrate``), then runs ``betenet evaluate`` on the split's test entries.
The baselines (median of the training Tc; gradient boosting of λ, of Tc and of ln(1 + Tc), on composition and
phonon-DOS features, and on those plus the pretrained site features' mean and std: ``--baselines``) are fitted
per split in-process on the same training entries. ``results.json`` holds every number (and keeps models of
earlier runs into the same folder); ``results.md`` the tables (mean ± std over folds; val alone): Tc MAE / RMSE /
R², the physics of the predicted spectra (share with λ in [0.05, 3] and ω_log in [30, 800] K, median ω_log
against the median ω_log of the structures' own phonon DOS), the uncertainty (Spearman of |error| and the
ensemble std; share within mean ± 2 std before → after calibration) and seconds per member; then, for every model
with the baselines first, the top end (:mod:`betenet.evaluation.top_end`: MAE and RMSE on the entries with reference
Tc ≥ 5 K, precision / recall / average precision at 5 K and 10 K, Spearman of predicted against reference Tc, the
median relative error of the model's fit of its own training entries with Tc ≥ 10 K) and, for the networks, λ on the
literature table of elemental metals (:mod:`betenet.evaluation.elemental`: λ MAE and the largest λ of Cu, Ag, Au,
Na, K).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: Baselines: name -> (table label, GBM target or None for the median, with pretrained site features).
BASELINES = {
    "median": ("median of training Tc", None, False),
    "gbm": ("GBM λ → Allen–Dynes", "lambda", False),
    "gbm_tc": ("GBM Tc", "tc", False),
    "gbm_log_tc": ("GBM ln(1 + Tc)", "log_tc", False),
    "gbm_pt": ("GBM λ → Allen–Dynes, + pretrained features", "lambda", True),
    "gbm_tc_pt": ("GBM Tc, + pretrained features", "tc", True),
    "gbm_log_tc_pt": ("GBM ln(1 + Tc), + pretrained features", "log_tc", True),
}


def split_arguments(description: str, out_help: str = "output folder") -> argparse.ArgumentParser:
    """The options every JARVIS-Tc study shares: the dataset, the output folder and the folds (write_splits)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "jarvis-tc"), help="dataset folder")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--fold-seed", type=int, default=0)
    return p


def parse_args(argv=None) -> argparse.Namespace:
    p = split_arguments(__doc__.splitlines()[0], "output folder (resumable)")
    p.add_argument("--splits", nargs="+", default=None, help="run only these splits (val, fold0, ...)")
    p.add_argument("--members", type=int, default=4, help="bootstrap members per network model and split")
    p.add_argument("--jobs", type=int, default=2, help="members trained side by side")
    p.add_argument("--model", action="append", default=None, metavar="NAME=OVERRIDES",
                   help="a network model: its name and the train.py overrides on top of experiment=jarvis_tc "
                        "(default: recipe=, the recipe itself)")
    p.add_argument("--baselines", nargs="*", default=list(BASELINES),
                   help="baselines fitted per split (default: all): " + ", ".join(BASELINES))
    p.add_argument("--features", default="sevennet",
                   help="pretrained site features the *_pt baselines get (conf/features; the recipe's)")
    p.add_argument("--elements-weight", type=float, default=0.0, metavar="W",
                   help="also train the network models on the published λ of elemental metals "
                        "(betenet/evaluation/elemental_lambda.csv) with this weight of the loss's λ term; each split "
                        "holds out a group of elements (those whose JARVIS twin it tests, the rest dealt by λ) and "
                        "checks λ on that group only (default 0: the table is a check set only)")
    p.add_argument("--mu-star", type=float, default=0.10)
    p.add_argument("--known-spectra", default=None, metavar="ENSEMBLE",
                   help="only draw the a2F of known materials (fcc Al against QE's, elemental superconductors "
                        "against their phonon DOS) predicted by this trained ensemble, into --out")
    args = p.parse_args(argv)
    args.model = ["recipe="] if args.model is None else args.model
    return args


# --------------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------------
def stratified_folds(ids: list[str], tc: np.ndarray, k: int, seed: int) -> list[list[str]]:
    """``k`` folds of ``ids``: sorted by Tc, each block of ``k`` consecutive entries is dealt to the
    folds in a random order, so every fold spans the whole Tc range."""
    rng = np.random.default_rng(seed)
    order = np.argsort(tc, kind="stable")
    folds: list[list[str]] = [[] for _ in range(k)]
    for start in range(0, len(order), k):
        block = order[start:start + k]
        for f, i in zip(rng.permutation(k)[:len(block)], block):
            folds[f].append(ids[i])
    return folds


def write_splits(data: Path, out: Path, k: int, seed: int) -> dict[str, Path]:
    labels = {r["id"]: float(r["tc_K"]) for r in _read_labels(data)}
    given = json.loads((data / "splits.json").read_text())
    ids = sorted(labels)
    paths = {}
    (out / "splits").mkdir(parents=True, exist_ok=True)
    splits = {"val": {"train": given["train"], "test": given["val"]}}
    folds = stratified_folds(ids, np.array([labels[i] for i in ids]), k, seed)
    for f, test in enumerate(folds):
        held = set(test)
        splits[f"fold{f}"] = {"train": [i for i in ids if i not in held], "test": sorted(test)}
    for name, split in splits.items():
        paths[name] = out / "splits" / f"{name}.json"
        paths[name].write_text(json.dumps(split))
    return paths


def elemental_groups(data: Path, split_files: dict[str, Path], seed: int) -> dict[str, list[str]]:
    """Split → the elements of the λ table it holds out: an element whose elemental JARVIS entry (same formula) the
    split tests, and, for the folds, the others dealt by λ over the folds in a random order (seed), so every
    element is held out by exactly one fold."""
    from betenet.evaluation.elemental import read_table
    from betenet.data.sources.directory import load_directory

    rows = read_table()
    twins = {e.structure.composition.reduced_formula: e.id for e in load_directory(data).entries
             if len(e.structure.composition.elements) == 1}
    tests = {name: set(json.loads(path.read_text())["test"]) for name, path in split_files.items()}
    folds = sorted(n for n in split_files if n.startswith("fold"))
    groups = {name: [r.element for r in rows if twins.get(r.element) in tests[name]] for name in split_files}
    placed = {el for name in folds for el in groups[name]}
    rest = sorted((r for r in rows if r.element not in placed), key=lambda r: r.lambda_)
    rng = np.random.default_rng(seed)
    for start in range(0, len(rest), max(len(folds), 1)):
        for f, r in zip(rng.permutation(len(folds)), rest[start:start + len(folds)]):
            groups[folds[f]].append(r.element)
    return groups


def elemental_splits(data: Path, out: Path, split_files: dict[str, Path], groups: dict[str, list[str]]
                     ) -> tuple[Path, dict[str, Path]]:
    """The dataset with the elemental λ rows (:func:`~betenet.evaluation.elemental.with_elemental_labels`) and, per
    split, its split file: the JARVIS training entries plus the elemental rows it does not hold out."""
    from betenet.evaluation.elemental import ID_PREFIX, with_elemental_labels

    root = out / "data_with_elements"
    ids = with_elemental_labels(data, root)
    paths = {}
    for name, path in split_files.items():
        split = json.loads(path.read_text())
        held = {f"{ID_PREFIX}{el}" for el in groups[name]}
        split["train"] = split["train"] + [i for i in ids if i not in held]
        paths[name] = out / "splits" / f"{name}_with_elements.json"
        paths[name].write_text(json.dumps(split))
    return root, paths


def _read_labels(data: Path) -> list[dict]:
    import csv

    with open(data / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------------------------
# network models: train members, evaluate
# --------------------------------------------------------------------------------------------
def train_member(name: str, overrides: str, data: Path, split: str, split_file: Path, seed: int, out: Path) -> float:
    run = out / "runs" / name / split / f"seed_{seed}"
    cmd = [sys.executable, str(ROOT / "train.py"), "experiment=jarvis_tc", f"data.root={data}", *shlex.split(overrides),
           f"data.splits_file={split_file}", f"seed={seed}", f"hydra.run.dir={run}", "runtime.threads=1",
           "logger=none", "trainer.enable_progress_bar=false", "test_after_fit=false"]
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    (run.parent / f"seed_{seed}.log").write_text(res.stdout[-20000:] + "\n" + res.stderr[-20000:])
    if res.returncode != 0:
        print(f"  {name} {split} seed {seed}: FAILED (exit {res.returncode}), see {run.parent}/seed_{seed}.log")
        return float("nan")
    if "already complete" in res.stdout:
        return float("nan")
    print(f"  {name} {split} seed {seed}: {seconds:.0f} s")
    return seconds


def calibrate(name: str, split: str, out: Path, mu_star: float) -> dict:
    """``betenet calibrate`` of a split's ensemble: the spread's scale from its out-of-bag predictions."""
    cmd = [sys.executable, "-m", "betenet.cli", "calibrate", "--ensemble", str(out / "runs" / name / split),
           "--mu-star", str(mu_star), "--threads", "2", "--json"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"calibrate {name} {split} failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout)


def evaluate(name: str, split: str, out: Path, mu_star: float) -> dict:
    target = out / "eval" / name / split
    cmd = [sys.executable, "-m", "betenet.cli", "evaluate", "--ensemble", str(out / "runs" / name / split),
           "--out", str(target), "--mu-star", str(mu_star), "--threads", "2", "--json"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"evaluate {name} {split} failed: {res.stderr[-2000:]}")
    return json.loads((target / "evaluation.json").read_text())


def evaluate_all(ensemble_dir: Path, target: Path, mu_star: float | None = None) -> Path:
    """``betenet evaluate --split all`` of an ensemble into ``target``: its ``predictions.csv`` of every entry of
    its data, from which the fit of its own training entries is read (:func:`fit_record`)."""
    cmd = [sys.executable, "-m", "betenet.cli", "evaluate", "--ensemble", str(ensemble_dir), "--out", str(target),
           "--threads", "2", "--split", "all", "--sizes", "1", "--draws", "1", "--top-k", "1", "--json",
           *([] if mu_star is None else ["--mu-star", str(mu_star)])]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"evaluate --split all of {ensemble_dir} failed: {res.stderr[-2000:]}")
    return target / "predictions.csv"


def _predicted_tc(csv_path: Path) -> dict[str, tuple[float, float]]:
    """id → (reported Tc, predicted Tc) of an evaluate predictions.csv."""
    import csv

    with open(csv_path, newline="") as fh:
        return {r["id"]: (float(r["tc_K_reported"] or "nan"), float(r["tc_K_pred"] or "nan"))
                for r in csv.DictReader(fh)}


def fit_record(csv_path: Path, train_ids: list[str]) -> dict:
    """:func:`~betenet.evaluation.top_end.fit_of_high` of the ensemble on its own training entries."""
    from betenet.evaluation.top_end import fit_of_high

    tc = _predicted_tc(csv_path)
    pairs = np.array([tc[i] for i in train_ids if i in tc]).reshape(-1, 2)
    return fit_of_high(pairs[:, 0], pairs[:, 1])


def elemental_record(ensemble_dir: Path, mu_star: float, only: list[str] | None = None) -> dict:
    """The split's ensemble on the literature table of elemental λ (:mod:`betenet.evaluation.elemental`): λ MAE,
    Spearman and the weakly coupled metals' λ (Cu, Ag, Au, Na, K); ``only``: the elements it was not trained on."""
    from betenet.evaluation.elemental import check_ensemble, read_table
    from betenet.inference import load_ensemble

    rows = [r for r in read_table() if only is None or r.element in only]
    result = check_ensemble(load_ensemble(ensemble_dir), rows=rows, mu_star=mu_star)
    return {k: result[k] for k in ("n", "lambda_mae", "lambda_rmse", "spearman", "weak", "weak_all_below_0.3")} | \
        {"lambda": {r["element"]: r["lambda_pred"] for r in result["rows"]}}


def network_record(summary: dict, phonon_wlog: dict[str, float], target: Path) -> dict:
    """Tc metrics against the reported Tc, the median predictor's, the top end, physics and uncertainty of one
    split."""
    import csv

    from betenet.evaluation.top_end import top_end_metrics

    with open(target / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    tc = summary["reported_metrics"]["tc_K"]
    median = summary["baselines"]["median predictor"]["reported"]["tc_K"]
    lam = np.array([float(r["lambda_pred"]) for r in rows])
    wlog = np.array([float(r["omega_log_K_pred"]) for r in rows])
    ph = np.array([phonon_wlog.get(r["id"], np.nan) for r in rows])
    unc = (summary.get("uncertainty") or {}).get("tc_K") or {}
    truth, pred = (np.array([float(r[column] or "nan") for r in rows]) for column in ("tc_K_reported", "tc_K_pred"))
    return {"tc": {k: tc[k] for k in ("mae", "rmse", "r2", "n")},
            "top_end": top_end_metrics(truth, pred),
            "median_predictor": {k: median[k] for k in ("mae", "rmse", "r2")},
            "physics": physics_record(lam, wlog, ph),
            "uncertainty": {"spearman_abs_error_vs_std": unc.get("spearman_abs_error_vs_std"),
                            "fraction_within_2std": unc.get("fraction_within_2std"),
                            "fraction_within_2std_uncalibrated": unc.get("fraction_within_2std_uncalibrated",
                                                                         unc.get("fraction_within_2std")),
                            "calibration_scale": unc.get("calibration_scale")}}


def physics_record(lam: np.ndarray, wlog: np.ndarray, phonon_wlog: np.ndarray) -> dict:
    from betenet.physics.properties import CONVENTIONAL_RANGES, in_ranges

    inside = in_ranges({"lambda": lam, "omega_log_K": wlog}, CONVENTIONAL_RANGES)
    ph = phonon_wlog[np.isfinite(phonon_wlog)]
    return {"fraction_in_ranges": float(inside.mean()), "lambda_median": float(np.median(lam)),
            "lambda_p5_p95": [float(np.percentile(lam, 5)), float(np.percentile(lam, 95))],
            "omega_log_K_median": float(np.median(wlog)),
            "omega_log_K_p5_p95": [float(np.percentile(wlog, 5)), float(np.percentile(wlog, 95))],
            "phonon_omega_log_K_median": float(np.median(ph)) if ph.size else None,
            "omega_log_median_ratio": float(np.median(wlog) / np.median(ph)) if ph.size else None}


# --------------------------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------------------------
class Baselines:
    """Median and gradient-boosting predictions on a split, from the structures, their coarse
    phonon DOS (ML potential, the recipe's settings, read from the cache) and, for the ``*_pt``
    baselines, the mean and std over the atoms of their pretrained site features (cached)."""

    def __init__(self, data: Path, mu_star: float, feature_model: str = "sevennet"):
        from betenet.data.sources.directory import load_directory
        from betenet.models.gbm_baseline import entry_features
        from betenet.phonons import PhononSettings, fill_site_dos
        from betenet.physics.properties import phonon_moments

        self.mu_star = mu_star
        source = load_directory(data)
        entries = source.entries
        report = fill_site_dos(entries, "coarse", PhononSettings(), None, progress=True)
        if report.failed:
            print(f"  phonons failed for {len(report.failed)} entries: {list(report.failed.items())[:3]}")
        from betenet.config import compose
        from betenet.pretrained import FeatureSettings, features_for_entries

        recipe = FeatureSettings.from_mapping(compose([f"features={feature_model}"]).features)
        site = features_for_entries(entries, recipe)
        if site.failed:
            print(f"  features failed for {len(site.failed)} entries: {list(site.failed.items())[:3]}")
        self.tc = {e.id: e.labels.get("tc_K", np.nan) for e in entries}
        self.x, self.x_pt, self.phonon_wlog = {}, {}, {}
        for e in entries:
            if e.phdos_coarse_site is None:
                continue
            self.x[e.id] = entry_features(e)
            if e.id in site.features:
                self.x_pt[e.id] = entry_features(e, site.features[e.id])
            self.phonon_wlog[e.id] = float(phonon_moments(e.phdos_coarse_freq_meV,
                                                          e.phdos_coarse_site.sum(axis=0))["omega_log_K"])

    def run(self, name: str, split: dict) -> dict:
        from betenet.evaluation.metrics import regression_metrics
        from betenet.evaluation.top_end import fit_of_high, top_end_metrics
        from betenet.models.gbm_baseline import GBMBaseline

        _, target, pretrained = BASELINES[name]
        x = self.x_pt if pretrained else self.x
        train = [i for i in split["train"] if i in x]
        test = [i for i in split["test"] if i in x]
        t_train = np.array([self.tc[i] for i in train])
        t_test = np.array([self.tc[i] for i in test])
        if target is None:
            pred = {"tc_K": np.full(len(test), np.median(t_train)), "lambda": np.full(len(test), np.nan),
                    "omega_log_K": np.full(len(test), np.nan)}
            fitted = np.full(len(train), np.median(t_train))
        else:
            model = GBMBaseline(target=target, mu_star=self.mu_star)
            model.fit(np.stack([x[i] for i in train]), t_train)
            pred = model.predict(np.stack([x[i] for i in test]))
            fitted = model.predict(np.stack([x[i] for i in train]))["tc_K"]
        record = {"tc": regression_metrics(t_test, pred["tc_K"]), "top_end": top_end_metrics(t_test, pred["tc_K"]),
                  "fit": fit_of_high(t_train, fitted)}
        if np.isfinite(pred["lambda"]).any():
            ph = np.array([self.phonon_wlog[i] for i in test])
            record["physics"] = physics_record(np.asarray(pred["lambda"]), np.asarray(pred["omega_log_K"]), ph)
        return record


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------
def _mean_std(values) -> str:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not v.size:
        return "–"
    return f"{v.mean():.2f} ± {v.std():.2f}" if v.size > 1 else f"{v[0]:.2f}"


def _coverage(unc: list[dict]) -> str:
    if not unc:
        return "–"
    raw = _mean_std(u.get("fraction_within_2std_uncalibrated", u["fraction_within_2std"]) for u in unc)
    after = _mean_std(u["fraction_within_2std"] for u in unc) if any(u.get("calibration_scale") for u in unc) else "–"
    return f"{raw} → {after}"


def markdown(results: dict) -> str:
    lines = []
    for scope, splits in (("5-fold cross-validation (mean ± std over folds)", [s for s in results["splits"]
                                                                                 if s.startswith("fold")]),
                          ("JARVIS leaderboard val split (30 entries)", ["val"])):
        splits = [s for s in splits if s in results["splits"]]
        if not splits:
            continue
        lines += [f"### {scope}", "", "| model | Tc MAE (K) | Tc RMSE (K) | Tc R² | λ, ω_log in range | "
                  "median ω_log / phonon ω_log | Spearman(|err|, std) | within ±2σ raw → calibrated | s / member |",
                  "|:--|--:|--:|--:|--:|--:|--:|--:|--:|"]
        labels = [b[0] for b in BASELINES.values()]
        order = [m for m in labels if m in results["models"]] + [m for m in results["models"] if m not in labels]
        for model in order:
            per_split = results["models"][model]
            recs = [per_split[s] for s in splits if s in per_split]
            if not recs:
                continue
            tc = lambda k: _mean_std(r["tc"][k] for r in recs)  # noqa: E731
            phys = [r.get("physics") for r in recs if r.get("physics")]
            unc = [r.get("uncertainty") for r in recs if r.get("uncertainty")]
            secs = [r.get("seconds_per_member") for r in recs]
            lines.append(
                f"| {model} | {tc('mae')} | {tc('rmse')} | {tc('r2')} | "
                f"{_mean_std(p['fraction_in_ranges'] for p in phys) if phys else '–'} | "
                f"{_mean_std(p['omega_log_median_ratio'] for p in phys) if phys else '–'} | "
                f"{_mean_std(u['spearman_abs_error_vs_std'] for u in unc) if unc else '–'} | "
                f"{_coverage(unc)} | "
                f"{_mean_std(secs) if any(s is not None for s in secs) else '–'} |")
        lines.append("")
        lines += top_end_lines(results, order, splits)
    return "\n".join(lines)


#: The top-end table's columns: header → function of one split's record.
TOP_END_COLUMNS = {
    "n ≥ 5 K": lambda r: r["top_end"]["high"]["n"],
    "MAE ≥ 5 K (K)": lambda r: r["top_end"]["high"]["mae"],
    "RMSE ≥ 5 K (K)": lambda r: r["top_end"]["high"]["rmse"],
    "median pred/ref ≥ 5 K": lambda r: r["top_end"]["high"]["median_ratio"],
    "Spearman(pred, ref)": lambda r: r["top_end"]["spearman"],
    "P / R @ 5 K": lambda r: (r["top_end"]["classes"]["5"]["precision"], r["top_end"]["classes"]["5"]["recall"]),
    "P at R ≥ 0.5, 5 K": lambda r: r["top_end"]["classes"]["5"]["precision_at_recall_half"],
    "AP @ 5 K": lambda r: r["top_end"]["classes"]["5"]["average_precision"],
    "P / R @ 10 K": lambda r: (r["top_end"]["classes"]["10"]["precision"], r["top_end"]["classes"]["10"]["recall"]),
    "AP @ 10 K": lambda r: r["top_end"]["classes"]["10"]["average_precision"],
    "fit: median rel. error, own train ≥ 10 K": lambda r: r["fit"]["median_relative_error"],
    "elemental λ MAE": lambda r: (r.get("elemental") or {}).get("lambda_mae"),
    "max λ of Cu Ag Au Na K": lambda r: max((v for v in ((r.get("elemental") or {}).get("weak") or {}).values()
                                             if v is not None), default=None),
}


def top_end_lines(results: dict, order: list[str], splits: list[str]) -> list[str]:
    """The top-end table (mean ± std over the splits) of every model that has the records."""
    lines = ["Top end (the materials a screen is for; reference Tc ≥ 5 K and ≥ 10 K):", "",
             "| model | " + " | ".join(TOP_END_COLUMNS) + " |", "|:--|" + "--:|" * len(TOP_END_COLUMNS)]
    rows = 0
    for model in order:
        recs = [results["models"][model][s] for s in splits if s in results["models"][model]]
        recs = [r for r in recs if "top_end" in r and "fit" in r]
        if not recs:
            continue
        cells = []
        for get in TOP_END_COLUMNS.values():
            values = [get(r) for r in recs]
            if isinstance(values[0], tuple):
                cells.append(" / ".join(_mean_std(v[j] for v in values) for j in range(2)))
            else:
                cells.append(_mean_std(values))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
        rows += 1
    return lines + [""] if rows else []


# --------------------------------------------------------------------------------------------
# spectra of materials whose a2F is known
# --------------------------------------------------------------------------------------------
def known_spectra(ensemble_dir: Path, data: Path, qe_al: Path, out: Path) -> dict:
    """The ensemble's a2F of fcc Al at QE's lattice beside QE's own a2F (the shared reference, binned
    the same way), and of the elemental superconductors in the data beside their phonon DOS."""
    from betenet.data.sources.directory import load_directory
    from betenet.data.spectra import bin_spectrum
    from betenet.dft.settings import qe_example_al
    from betenet.evaluation import figures
    from betenet.evaluation.predictions import phonon_dos_of
    from betenet.inference import load_ensemble
    from betenet.inference.inputs import build_rows
    from betenet.physics.a2f_files import read_a2f
    from betenet.physics.properties import a2f_properties

    ens = load_ensemble(ensemble_dir)
    al = qe_example_al()
    elements = {e.id: e for e in load_directory(data).entries if len(e.structure.composition.elements) == 1}
    picks = [("Al, QE's lattice", al)] + [(f"{e.structure.composition.reduced_formula} {e.id}, JARVIS Tc "
                                           f"{e.labels['tc_K']:.3g} K", e.structure)
                                          for e in elements.values()
                                          if e.structure.composition.reduced_formula in ("Nb", "Pb", "Ta", "V")]
    rows = build_rows([(name, s, None) for name, s in picks], ens)
    ok = [r for r in rows if r.graph is not None]
    pred = ens.predict([r.graph for r in ok], ids=[r.id for r in ok])
    omega = ens.grid.centres
    truth = np.full((len(ok), len(omega)), np.nan)
    qe = read_a2f(qe_al / "a2F.dos10")
    truth[0] = bin_spectrum(qe.omega_meV, qe.a2f)
    phonons = phonon_dos_of([r.graph for r in ok], len(omega))
    scale = pred.a2f_mean.max(axis=1, keepdims=True) / np.maximum(phonons.max(axis=1, keepdims=True), 1e-30)
    titles = [f"{r.id}\nλ {pred.properties['lambda'][k]:.2f}, ω_log {pred.properties['omega_log_K'][k]:.0f} K"
              for k, r in enumerate(ok)]
    figures.spectra_panel(omega, truth, {"prediction": pred.a2f_mean}, {"prediction": pred.a2f_std}, titles,
                          out / "known_spectra.png", suptitle="Tc-trained ensemble: a2F of known materials",
                          overlays={"phonon DOS (scaled)": phonons * scale})
    qe_props = a2f_properties(omega, truth[0])
    return {"ids": [r.id for r in ok], "lambda": pred.properties["lambda"].tolist(),
            "omega_log_K": pred.properties["omega_log_K"].tolist(), "tc_K": pred.properties["tc_K"].tolist(),
            "al_qe_binned": {k: float(v) for k, v in qe_props.items()}}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.known_spectra:
        out = Path(args.out).resolve()
        qe = Path(args.data).resolve().parent / "qe-al-reference"
        result = known_spectra(Path(args.known_spectra), Path(args.data).resolve(), qe, out)
        (out / "known_spectra.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1))
        return 0
    out = Path(args.out).resolve()
    data = Path(args.data).resolve()
    split_files = write_splits(data, out, args.folds, args.fold_seed)
    names = args.splits or list(split_files)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"models": {}}
    results["splits"] = sorted(set(results.get("splits", [])) | set(names))
    results["settings"] = {"members": args.members, "folds": args.folds, "fold_seed": args.fold_seed,
                           "mu_star": args.mu_star, "models": dict(m.split("=", 1) for m in args.model)}

    train_root, train_splits, held_elements = data, split_files, {}
    if args.elements_weight > 0:
        held_elements = elemental_groups(data, split_files, args.fold_seed)
        train_root, train_splits = elemental_splits(data, out, split_files, held_elements)
    base = Baselines(data, args.mu_star, args.features)
    for b in args.baselines:
        label = BASELINES[b][0]
        for split in names:
            results["models"].setdefault(label, {})[split] = base.run(b, json.loads(split_files[split].read_text()))
    for spec in args.model:
        name, overrides = spec.split("=", 1)
        if args.elements_weight > 0:
            overrides = f"{overrides} model.loss.properties.lambda={args.elements_weight}"
        for split in names:
            print(f"{name}: {split}")
            jobs = [(name, overrides, train_root, split, train_splits[split], k, out) for k in range(args.members)]
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                seconds = list(pool.map(lambda a: train_member(*a), jobs))
            calibrate(name, split, out, args.mu_star)
            summary = evaluate(name, split, out, args.mu_star)
            record = network_record(summary, base.phonon_wlog, out / "eval" / name / split)
            split_ids = json.loads(split_files[split].read_text())
            predictions = evaluate_all(out / "runs" / name / split, out / "eval" / name / f"{split}_all", args.mu_star)
            record["fit"] = fit_record(predictions, split_ids["train"])
            record["elemental"] = elemental_record(out / "runs" / name / split, args.mu_star,
                                                   held_elements.get(split) if args.elements_weight > 0 else None)
            if args.elements_weight > 0:  # trained on the other elements' λ: this split's checked ones held out
                record["elemental"] |= {"weight": args.elements_weight, "held_out": held_elements[split]}
            done = [s for s in seconds if np.isfinite(s)]
            previous = results["models"].get(name, {}).get(split, {}).get("seconds_per_member")
            record["seconds_per_member"] = float(np.median(done)) if done else previous
            results["models"].setdefault(name, {})[split] = record
            results_path.write_text(json.dumps(results, indent=1))
    results_path.write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
