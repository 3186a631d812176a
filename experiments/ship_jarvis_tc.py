"""Build the ensemble that ships inside betenet as ``jarvis-tc`` (README, "Shipped ensemble"): the
``experiment=jarvis_tc`` recipe trained on all 586 JARVIS-DFT entries, ``--members`` bootstrap members
(out-of-bag validation, the best out-of-bag epoch), calibrated on their out-of-bag predictions, then
the files prediction needs copied into ``betenet/shipped/jarvis_tc/``, with its model card ``MODEL_CARD.md``:

    python experiments/ship_jarvis_tc.py --members 8 --jobs 2 --study results/jarvis_tc

The model card (:func:`model_card`) states the recipe's cross-validated numbers from the study's ``results.json``
(``--study``, the row ``--study-model``: average and top end, the GBM baselines beside them), and what the shipped
ensemble itself does: its fit of its own training entries with Tc ≥ 10 K (``betenet evaluate --split all``), its
λ on the literature table of elemental metals (:mod:`betenet.evaluation.elemental`) and its calibration.

Per member: ``checkpoints/final.ckpt`` (weights; loaded with ``weights_only``), ``config_resolved.yaml``
(the recipe: variant, features, phonon settings), ``member.json`` (fingerprint, training elements) and
``bootstrap.json`` (the ids it trained on); plus the ensemble's ``calibration.json``. The training runs
stay in ``--work`` (default ``multirun/ship_jarvis_tc``), so a rerun trains nothing already finished.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
from jarvis_tc import TOP_END_COLUMNS, evaluate_all  # noqa: E402

TARGET = ROOT / "betenet" / "shipped" / "jarvis_tc"
MEMBER_FILES = ("checkpoints/final.ckpt", "config_resolved.yaml", "member.json", "bootstrap.json")
#: The study's row of the recipe shipped before, shown beside this one in the model card.
PREVIOUS = "recipe before issue 28 (bootstrap, ln(1 + Tc) loss)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "jarvis-tc"))
    p.add_argument("--work", default=str(ROOT / "multirun" / "ship_jarvis_tc"))
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--study", default=None, metavar="DIR",
                   help="the folder of experiments/jarvis_tc.py whose cross-validated numbers go into the model card")
    p.add_argument("--study-model", default="recipe", help="the study's row of this recipe")
    p.add_argument("--elements-weight", type=float, default=0.0, metavar="W",
                   help="also train on the published λ of the elemental metals (betenet/evaluation/"
                        "elemental_lambda.csv) with this weight of the loss's λ term")
    p.add_argument("overrides", nargs="*", help="train.py overrides on top of experiment=jarvis_tc")
    args = p.parse_args(argv)
    data, work = Path(args.data).resolve(), Path(args.work).resolve()
    with open(data / "labels.csv", newline="") as fh:
        ids = [r["id"] for r in csv.DictReader(fh)]
    work.mkdir(parents=True, exist_ok=True)
    root, extra = data, []
    if args.elements_weight > 0:
        from betenet.evaluation.elemental import with_elemental_labels

        root = work / "data_with_elements"
        ids = ids + with_elemental_labels(data, root)
        extra = [f"model.loss.properties.lambda={args.elements_weight}"]
    split = work / "all_train.json"
    split.write_text(json.dumps({"train": ids, "test": []}))
    overrides = [*args.overrides, *extra]

    def train(seed: int) -> None:
        cmd = [sys.executable, str(ROOT / "train.py"), "experiment=jarvis_tc", f"data.root={root}",
               f"data.splits_file={split}", *overrides, f"seed={seed}", f"hydra.run.dir={work / f'seed_{seed}'}",
               "runtime.threads=1", "logger=none", "trainer.enable_progress_bar=false", "test_after_fit=false"]
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"member {seed} failed:\n{res.stderr[-3000:]}")
        print(f"member {seed}: done")

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(train, range(args.members)))
    res = subprocess.run([sys.executable, "-m", "betenet.cli", "calibrate", "--ensemble", str(work), "--json"],
                         cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"calibrate failed:\n{res.stderr[-3000:]}")
    print(res.stdout)
    if TARGET.exists():
        shutil.rmtree(TARGET)
    for seed in range(args.members):
        for name in MEMBER_FILES:
            dest = TARGET / f"seed_{seed}" / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(work / f"seed_{seed}" / name, dest)
    shutil.copy2(work / "calibration.json", TARGET / "calibration.json")
    card = model_card(work, Path(args.study) if args.study else None, args.study_model, overrides,
                      args.elements_weight > 0)
    (TARGET / "MODEL_CARD.md").write_text(card)
    print(card)
    size = sum(f.stat().st_size for f in TARGET.rglob("*") if f.is_file())
    print(f"shipped {args.members} members to {TARGET.relative_to(ROOT)} ({size / 1e6:.2f} MB)")
    return 0


def _fmt(x, digits: int = 2) -> str:
    return "–" if x is None or x != x else f"{x:.{digits}f}"


def _study_lines(study: Path, model: str) -> list[str]:
    """The cross-validated rows of the study: the recipe (``model``) beside the median and the GBM baselines."""
    import numpy as np

    results = json.loads((study / "results.json").read_text())
    folds = [s for s in results["splits"] if s.startswith("fold")]
    wanted = [m for m in results["models"] if m in (model, PREVIOUS) or m.startswith(("median", "GBM ln(1 + Tc)"))]
    lines = [f"Cross-validated ({len(folds)} folds over the 586 entries, `experiments/jarvis_tc.py`; mean over folds):",
             "", "| model | Tc MAE (K) | RMSE (K) | R² | MAE ≥ 5 K (K) | P / R @ 5 K | AP @ 5 K | AP @ 10 K | "
                 "Spearman | fit ≥ 10 K: median rel. error | elemental λ MAE |",
             "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for name in wanted:
        recs = [results["models"][name][f] for f in folds if f in results["models"][name]]
        recs = [r for r in recs if "top_end" in r]
        if not recs:
            continue

        def mean(get):
            vals = [get(r) for r in recs]
            vals = [v for v in vals if v is not None and v == v]
            return float(np.mean(vals)) if vals else None

        col = TOP_END_COLUMNS  # the study's own getters of each top-end number
        pr5 = col["P / R @ 5 K"]
        lines.append(
            f"| {'this recipe' if name == model else name} | {_fmt(mean(lambda r: r['tc']['mae']))} | "
            f"{_fmt(mean(lambda r: r['tc']['rmse']))} | {_fmt(mean(lambda r: r['tc']['r2']))} | "
            f"{_fmt(mean(col['MAE ≥ 5 K (K)']))} | {_fmt(mean(lambda r: pr5(r)[0]))} / "
            f"{_fmt(mean(lambda r: pr5(r)[1]))} | {_fmt(mean(col['AP @ 5 K']))} | {_fmt(mean(col['AP @ 10 K']))} | "
            f"{_fmt(mean(col['Spearman(pred, ref)']))} | "
            f"{_fmt(mean(lambda r: (r.get('fit') or {}).get('median_relative_error')))} | "
            f"{_fmt(mean(col['elemental λ MAE']))} |")
    return lines + [""]


def model_card(work: Path, study: Path | None, study_model: str, overrides: list[str], with_elements: bool) -> str:
    """The shipped ensemble's model card: recipe, data, cross-validated numbers (from ``study``), and what the
    ensemble in ``work`` does on its own training entries, on elemental metals (a fit when ``with_elements``: it
    trained on them) and with its calibration."""
    import numpy as np

    from betenet.evaluation.elemental import check_ensemble, markdown
    from betenet.evaluation.top_end import fit_of_high
    from betenet.inference import load_ensemble

    with open(evaluate_all(work, work / "eval_all"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows = [r for r in rows if r["tc_K_reported"]]  # the Tc entries (elemental rows carry λ only)
    ref = np.array([float(r["tc_K_reported"]) for r in rows])
    pred = np.array([float(r["tc_K_pred"]) for r in rows])
    fit = fit_of_high(ref, pred)
    worst = sorted((r for r in rows if float(r["tc_K_reported"]) >= 10.0),
                   key=lambda r: float(r["tc_K_pred"]) / float(r["tc_K_reported"]))[:5]
    elemental = check_ensemble(load_ensemble(work))
    calibration = json.loads((work / "calibration.json").read_text())
    lines = ["# Model card: `jarvis-tc`", "",
             "Written by `experiments/ship_jarvis_tc.py` when the ensemble was built; every number below was "
             "computed then.", "",
             f"- **Recipe:** `{' '.join(['experiment=jarvis_tc', *overrides])}` (README, \"Learning "
             "from Tc only\"): coarse site PhDOS and features from SevenNet-0, a per-atom readout into the coupling "
             "head (a2F = α²(ω) × site PhDOS), trained on Tc" + (" and, for the elemental metals, λ." if with_elements
                                                                 else " alone."),
             f"- **Members:** {len(list(work.glob('seed_*/checkpoints/final.ckpt')))}, trained on all "
             f"{len(rows)} Tc entries of `shared/data/jarvis-tc` (JARVIS-DFT, Choudhary & Garrity, npj Comput. Mater. "
             "8, 244 (2022); the leaderboard's test entries were never seen)"
             + (" and the published λ of the 23 elemental metals of the check table." if with_elements else "."),
             f"- **Spread:** Tc std × {_fmt(calibration['scales'].get('tc_K'))} (calibrated on the members' out-of-bag "
             "predictions); λ and ω_log spreads are the members' own.", ""]
    if study is not None:
        lines += _study_lines(study, study_model)
    lines += [f"Fit of its own training entries with JARVIS Tc ≥ 10 K ({fit['n']}): median relative error "
              f"{_fmt(fit['median_relative_error'])}, median predicted/reference {_fmt(fit['median_ratio'])}. "
              "Furthest below:", "", "| id | formula | JARVIS Tc (K) | predicted Tc (K) | λ | ω_log (K) |",
              "|:--|:--|--:|--:|--:|--:|"]
    lines += [f"| {r['id']} | {r['formula']} | {_fmt(float(r['tc_K_reported']), 1)} | {_fmt(float(r['tc_K_pred']), 1)}"
              f" | {_fmt(float(r['lambda_pred']))} | {_fmt(float(r['omega_log_K_pred']), 0)} |" for r in worst]
    lines += ["", "Elemental metals against published λ (`betenet/evaluation/elemental_lambda.csv`; "
                  "`betenet check-elements --ensemble jarvis-tc`)"
              + (": the ensemble trained on these λ, so this is its fit; the held-out λ MAE is the cross-validated "
                 "column above." if with_elements else ", none of them trained on:"), "", markdown(elemental)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
