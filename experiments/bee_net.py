"""Collect CSO and CPD sweeps trained with ``experiment=bee_net`` into the table BEE-NET reports
(arXiv 2503.20005), printed beside BEE-NET's own figures. See README ("Training on BEE-NET's data").

    python experiments/bee_net.py --sweep CSO=multirun/bee_net/cso --sweep CPD=multirun/bee_net/cpd \
        --out results/bee_net

Every model is scored on the same materials: the published test split of the data the sweeps
trained on (``indices/idx_test_full_cpd_id.txt``, or ``--data``), restricted to the entries every
model could predict. Each model gets the full ``betenet evaluate`` report (``models/<name>/``:
R², MAE, RMSE of λ, ω_log, ω_2, T_c against the binned reference a2F at the members' μ*, 0.09 for
``experiment=bee_net``; parity plots, spectra, metrics against ensemble size), and the screening
figure BEE-NET quotes: the precision (and recall) of flagging T_c^ML ≥ ``--threshold`` among the
materials with T_c^ref ≥ ``--threshold`` (5 K). Writes ``table.md`` / ``table.json`` (ours beside
BEE-NET's) and ``table1.md`` (λ, ω_log, ω_2, T_c per model, the paper's Table I layout).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from betenet.errors import InputError
from betenet.evaluation.metrics import PROPERTY_LABELS, TABLE_DIGITS, table_markdown
from betenet.evaluation.predictions import ensemble_split_predictions
from betenet.evaluation.reports import evaluation_report, write_json
from betenet.evaluation.screening import DEFAULT_THRESHOLD_K, confusion
from betenet.inference import load_ensemble
from betenet.physics.properties import PROPERTIES

#: BEE-NET's reported test figures (arXiv 2503.20005; 1,049 held-out compounds, 100-member ensembles).
BEE_NET_REPORTED = {
    "CSO": {"tc_K": {"r2": 0.66, "mae": 1.20}},
    "CPD": {"tc_K": {"r2": 0.79, "mae": 0.87}},
}
BEE_NET_PRECISION = 0.86  # at T_c > 5 K
BEE_NET_N_TEST = 1049


def _paper_results():
    """experiments/paper_results.py as a module (its sweep-argument parsing is shared)."""
    spec = importlib.util.spec_from_file_location("paper_results", Path(__file__).with_name("paper_results.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweep", action="append", required=True, metavar="NAME=DIR",
                   help="a model name and its sweep directory (CSO=..., CPD=...; the names BEE-NET's figures are "
                        "matched by)")
    p.add_argument("--data", default=None, help="dataset folder to score on (default: the sweeps' own data)")
    p.add_argument("--data-source", choices=["demo", "directory", "release", "bee_net"], default=None)
    p.add_argument("--cache-dir", default=None, help="graph/demo cache (default: the runs' own)")
    p.add_argument("--checkpoint", default="final", help="which checkpoint of each member (default final)")
    p.add_argument("--mu-star", type=float, default=None, help="mu* of every T_c (default: the members', 0.09)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD_K, help="high-T_c criterion (K)")
    p.add_argument("--top-k", type=int, default=6, help="best and worst spectra to draw")
    p.add_argument("--out", required=True, help="output folder")
    return p.parse_args(argv)


def screening(p, threshold_K: float) -> dict:
    """Precision and recall of flagging T_c^ML ≥ ``threshold_K`` against T_c^ref ≥ ``threshold_K``."""
    c = confusion(p.true["tc_K"], p.pred["tc_K"], threshold_K, threshold_K)
    flagged, positives = c["tp"] + c["fp"], c["tp"] + c["fn"]
    return {**c, "precision": c["tp"] / flagged if flagged else float("nan"),
            "recall": c["tp"] / positives if positives else float("nan")}


def _cell(x, fmt: str) -> str:
    return "–" if x is None or x != x else format(x, fmt)


def _metrics_cell(m: dict | None, digits: int) -> str:
    m = m or {}
    return " / ".join((_cell(m.get("r2"), ".2f"), _cell(m.get("mae"), f".{digits}f"),
                       _cell(m.get("rmse"), f".{digits}f")))


def comparison_markdown(rows: list[dict], threshold_K: float) -> str:
    """R² / MAE / RMSE of λ, ω_log, ω_2, T_c and the screening precision per model, each model's
    row followed by BEE-NET's reported one ("–" where BEE-NET gives no figure)."""
    lines = ["| Model | n | " + " | ".join(PROPERTY_LABELS[k] for k in PROPERTIES)
             + f" | precision (T_c ≥ {threshold_K:g} K) | recall |",
             "|:--|--:|" + "--:|" * (len(PROPERTIES) + 2)]
    for r in rows:
        cells = [_metrics_cell(r.get("metrics", {}).get(k), TABLE_DIGITS[k]) for k in PROPERTIES]
        lines.append(f"| {r['model']} | {r['n']} | " + " | ".join(cells)
                     + f" | {_cell(r.get('precision'), '.2f')} | {_cell(r.get('recall'), '.2f')} |")
    return "\n".join(lines) + "\n\n(each property: R² / MAE / RMSE)\n"


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    preds, members = {}, {}
    for name, sweep in _paper_results()._sweeps(args.sweep).items():
        ens = load_ensemble(sweep, args.checkpoint)
        dm = ens.datamodule(args.data, args.data_source, args.cache_dir)
        preds[name] = ensemble_split_predictions(ens, dm, "test", args.mu_star, name=name, progress=True)
        members[name] = {"sweep": str(sweep), "members": ens.names, "skipped": ens.skipped}
        print(f"{name}: {len(ens)} members ({len(ens.skipped)} skipped), {len(preds[name])} test materials")
    order = next(iter(preds.values())).ids
    common = [i for i in order if all(i in set(p.ids) for p in preds.values())]
    if not common:
        raise InputError("--sweep", "the models share no test material")
    preds = {n: p.subset(common) for n, p in preds.items()}

    tables, rows, models = {}, [], {}
    for name, p in preds.items():
        report = evaluation_report(p, out / "models" / name, k=args.top_k)  # what `betenet evaluate` writes
        tables[name] = report["metrics"]
        screen = screening(p, args.threshold)
        rows.append({"model": f"{name} (ours)", "n": len(p), "metrics": report["metrics"],
                     "precision": screen["precision"], "recall": screen["recall"]})
        reported = BEE_NET_REPORTED.get(name.upper())
        if reported:
            rows.append({"model": f"{name} (BEE-NET)", "n": BEE_NET_N_TEST, "metrics": reported})
        models[name] = {"metrics": report["metrics"], "screening": screen, "mu_star": p.mu_star,
                        "bee_net_reported": reported, **members[name]}
    rows.append({"model": "BEE-NET screening (reported)", "n": BEE_NET_N_TEST, "precision": BEE_NET_PRECISION})
    (out / "table1.md").write_text(table_markdown(tables))
    comparison = comparison_markdown(rows, args.threshold)
    (out / "table.md").write_text(comparison)
    summary = {"split": "test", "n": len(common), "threshold_K": args.threshold, "models": models, "rows": rows,
               "bee_net_reported": {"models": BEE_NET_REPORTED, "precision": BEE_NET_PRECISION,
                                    "n_test": BEE_NET_N_TEST}}
    write_json(out / "table.json", json.loads(json.dumps(summary, default=str)))
    print((out / "table1.md").read_text())
    print(comparison)
    print(f"tables and the per-model reports written to {out}")
    return summary


if __name__ == "__main__":
    try:
        main()
    except InputError as err:
        print(f"bee_net: error: {err}", file=sys.stderr)
        sys.exit(2)
