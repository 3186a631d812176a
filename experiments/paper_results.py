"""Collect trained CSO / CPD / FPD sweeps (and the linear baseline) into the paper's Table I,
Fig. 4 and Fig. 5. See experiments/README.md for the commands that train the sweeps.

    python experiments/paper_results.py --sweep CSO=multirun/paper/cso --sweep CPD=multirun/paper/cpd \
        --sweep FPD=multirun/paper/fpd --baseline --out results/paper

Every model is scored on the same materials: the test split of the data the first sweep trained on
(or ``--data``), restricted to the entries every model could predict. Writes into ``--out``:

* ``table1.md`` / ``table1.json``: R², MAE, RMSE of λ, ω_log, ω_2 and T_c per model (Table I);
* ``fig4_parity.png`` (one row per ensemble, columns λ, ω_log, ω_2; Fig. 4 a–i),
  ``fig4_best.png`` / ``fig4_worst.png`` (the six materials with the lowest / highest Δ̄ averaged
  over the ensembles, every ensemble's mean a2F ± std over the DFT one; Fig. 4 j, k),
  ``fig4_per_element.png`` (mean Δ̄ per element and model; Fig. 4 l);
* ``fig5/``: precision–recall screening (``screening.json``, ``pr_curves.png``, confusion
  matrices): the cheap first stage (``--stage1``, default CSO, at precision 1.0), the second stage
  (``--stage2``, default CPD, at the chosen operating point), the two-stage flow, and every other
  model at its operating point (Fig. 5);
* ``models/<name>/``: the full ``betenet evaluate`` report of each model;
* ``summary.json``: which members and materials went in.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from betenet.errors import InputError
from betenet.evaluation import figures
from betenet.evaluation.metrics import best_worst, normalised_error, per_element_error, property_table, table_markdown
from betenet.evaluation.predictions import DEMO_TAG, baseline_split_predictions, ensemble_split_predictions
from betenet.evaluation.reports import evaluation_report, write_json
from betenet.evaluation.screening_report import screening_report
from betenet.evaluation.screening import DEFAULT_THRESHOLD_K
from betenet.physics.properties import MOMENTS
from betenet.physics.units import BIN_CENTRES_MEV, MU_STAR_DEFAULT
from betenet.inference import load_ensemble


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweep", action="append", required=True, metavar="NAME=DIR",
                   help="a model name and its sweep directory (repeat: CSO=..., CPD=..., FPD=...)")
    p.add_argument("--baseline", action="store_true", help="add the linear baseline (needs eDOS in the data)")
    p.add_argument("--data", default=None, help="dataset folder to score on (default: the sweeps' own data)")
    p.add_argument("--data-source", choices=["demo", "directory", "release"], default=None)
    p.add_argument("--cache-dir", default=None, help="graph/demo cache (default: the runs' own)")
    p.add_argument("--checkpoint", default="final", help="which checkpoint of each member (default final)")
    p.add_argument("--mu-star", type=float, default=None, help="mu* of the predicted Tc (default: the members')")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD_K,
                   help="high-Tc criterion on the reference Tc (K)")
    point = p.add_mutually_exclusive_group()
    point.add_argument("--precision", type=float, default=None, help="operating point: least precision (default 0.8)")
    point.add_argument("--recall", type=float, default=None, help="operating point: least recall")
    p.add_argument("--stage1", default="CSO", help="model of the cheap first screening stage")
    p.add_argument("--stage2", default="CPD", help="model of the second screening stage")
    p.add_argument("--top-k", type=int, default=6, help="best and worst spectra to draw")
    p.add_argument("--out", required=True, help="output folder")
    return p.parse_args(argv)


def _sweeps(items: list[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(item, "expected NAME=DIR, e.g. CSO=multirun/paper/cso")
        if name in out:
            raise InputError(item, f"model name {name!r} given twice")
        out[name] = Path(path)
    return out


def parity_figure(models: dict, path: Path) -> Path:
    """Rows: models; columns: λ, ω_log, ω_2 (true against the ensemble mean, ± member spread)."""
    fig = Figure(figsize=(3.6 * len(MOMENTS), 3.7 * len(models)))
    axes = fig.subplots(len(models), len(MOMENTS), squeeze=False)
    for row, p in enumerate(models.values()):
        for col, k in enumerate(MOMENTS):
            figures.parity_plot(p.true[k], p.pred[k], k, ax=axes[row, col], std=None if p.std is None else p.std[k])
            axes[row, col].set_title(p.model)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=figures.DPI)
    return path


def spectra_figures(models: dict, out: Path, k: int) -> dict:
    """Best/worst materials by Δ̄ averaged over the ensembles; every ensemble's spectrum drawn."""
    first = next(iter(models.values()))
    has = np.flatnonzero(np.all(np.isfinite(first.true_a2f), axis=1))
    deltas = np.stack([normalised_error(p.true, p.pred) for p in models.values()])
    mean_delta = np.nanmean(deltas, axis=0) if np.isfinite(deltas).any() else deltas[0]
    ranked = best_worst([first.ids[i] for i in has], mean_delta[has], k=k)
    files, chosen = {}, {}
    for which, rows in ranked.items():
        if not rows:
            continue
        idx = has[[r.index for r in rows]]
        chosen[which] = [dict(id=r.id, mean_delta=r.delta) for r in rows]
        titles = [f"{first.formulas[i]} ({first.ids[i]})  Δ̄ = {r.delta:.2f}" for i, r in zip(idx, rows)]
        files[which] = figures.spectra_panel(
            BIN_CENTRES_MEV, first.true_a2f[idx], {p.model: p.a2f_mean[idx] for p in models.values()},
            {p.model: p.a2f_std[idx] for p in models.values()}, titles, out / f"fig4_{which}.png",
            suptitle=f"{which} {len(rows)} test materials by Δ̄ (mean over models)")
    return {"files": files, "materials": chosen}


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    preds, members = {}, {}
    first_dm = None
    for name, sweep in _sweeps(args.sweep).items():
        ens = load_ensemble(sweep, args.checkpoint)
        dm = ens.datamodule(args.data, args.data_source, args.cache_dir)
        first_dm = first_dm or dm
        label = f"{name}, {DEMO_TAG}" if dm.source == "demo" else name
        preds[name] = ensemble_split_predictions(ens, dm, "test", args.mu_star, name=label, progress=True)
        members[name] = {"sweep": str(sweep), "members": ens.names, "skipped": ens.skipped}
        print(f"{name}: {len(ens)} members ({len(ens.skipped)} skipped), {len(preds[name])} test materials")
    if args.baseline:
        mu = args.mu_star if args.mu_star is not None else next(iter(preds.values())).mu_star
        preds = {"Base": baseline_split_predictions(first_dm, "test", mu if mu is not None else MU_STAR_DEFAULT),
                 **preds}
    # every model on the same materials
    order = next(iter(preds.values())).ids
    id_sets = [set(p.ids) for p in preds.values()]
    common = [i for i in order if all(i in s for s in id_sets)]
    if not common:
        raise InputError("--sweep", "the models share no test material")
    preds = {n: p.subset(common) for n, p in preds.items()}
    ensembles = {n: p for n, p in preds.items() if p.a2f_mean is not None}

    for name, p in preds.items():
        evaluation_report(p, out / "models" / name, k=args.top_k)
    tables = {p.model: property_table(p.true, p.pred) for p in preds.values()}
    (out / "table1.md").write_text(table_markdown(tables))
    write_json(out / "table1.json", {"split": "test", "n": len(common), "models": tables})
    files = {"table1": str(out / "table1.md")}
    if ensembles:
        files["fig4_parity"] = str(parity_figure(ensembles, out / "fig4_parity.png"))
        spectra = spectra_figures(ensembles, out, args.top_k)
        files.update({f"fig4_{k}": str(v) for k, v in spectra["files"].items()})
        per_el = {p.model: per_element_error(p.ids, p.elements, normalised_error(p.true, p.pred))
                  for p in ensembles.values()}
        files["fig4_per_element"] = str(figures.per_element_plot(per_el, out / "fig4_per_element.png",
                                                                 title="mean normalised error per element"))
    stage1 = args.stage1 if args.stage1 in preds else next(iter(ensembles or preds))
    stage2 = args.stage2 if args.stage2 in preds and args.stage2 != stage1 else None
    extra = {n: p for n, p in preds.items() if n not in (stage1, stage2)}
    screening = screening_report(preds[stage1], out / "fig5", args.threshold, args.precision, args.recall,
                                 stage2=None if stage2 is None else preds[stage2], extra=extra)
    files.update({f"fig5_{k}": v for k, v in screening["files"].items()})
    summary = {"n_test": len(common), "models": members, "stage1": stage1, "stage2": stage2,
               "baseline": preds["Base"].notes if "Base" in preds else None, "files": files,
               "best_worst": spectra["materials"] if ensembles else None}
    write_json(out / "summary.json", summary)
    print((out / "table1.md").read_text())
    print(f"Table I, Fig. 4 and Fig. 5 written to {out}")
    return summary


if __name__ == "__main__":
    try:
        main()
    except InputError as err:
        print(f"paper_results: error: {err}", file=sys.stderr)
        sys.exit(2)
