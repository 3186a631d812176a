"""A member's closing summary: what training reached, which epoch's weights were kept and why, and
how good they are in physical units (MAE of λ, ω_log and Tc on the out-of-bag and test entries).

One vocabulary for the epochs of a run (``regimes.json`` and the double-descent figure use the same):

* **out-of-bag loss**: the validation loss on the entries the member's bootstrap resample left out,
  one value per epoch (``val_loss`` in ``metrics.csv``); the tempering callback follows its
  exponential moving average (``val_loss_smoothed``);
* **classical minimum**: the lowest smoothed out-of-bag loss of the first descent;
* **critical peak**: the highest smoothed out-of-bag loss after it, once it rose above that minimum;
* **modern minimum**: the lowest smoothed out-of-bag loss of the second descent (after the peak);
* **best out-of-bag epoch** (``best_epoch``): the lowest unsmoothed out-of-bag loss of the whole run;
* **kept epoch**: the weights in ``checkpoints/final.ckpt``: the modern minimum when a second descent
  came, else the best out-of-bag epoch.

:func:`closing_summary` builds the record (written to ``member.json`` under ``result``);
:func:`closing_lines` the few lines printed at the end of training.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["SUMMARY_PROPERTIES", "closing_summary", "closing_lines", "kept_epoch", "read_metrics_rows"]

#: The properties of the summary, with their console headers (ASCII: any terminal prints them).
SUMMARY_PROPERTIES = {"lambda": "lambda", "omega_log_K": "omega_log (K)", "tc_K": "Tc (K)"}
#: What each kept choice is called (``final_regime`` of regimes.json → words).
KEPT_NAMES = {"modern": "the modern minimum", "best": "the best out-of-bag epoch"}


def _number(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def read_metrics_rows(path) -> list[dict]:
    """``metrics.csv`` as a list of dicts (empty when absent)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def kept_epoch(regimes: Mapping) -> int | None:
    """The epoch whose weights the member kept: ``kept_epoch`` of regimes.json, else (records written
    before it) the modern minimum or the best out-of-bag epoch."""
    if regimes.get("kept_epoch") is not None:
        return int(regimes["kept_epoch"])
    if regimes.get("final_regime") == "modern" and "modern" in (regimes.get("regimes") or {}):
        return int(regimes["regimes"]["modern"]["epoch"])
    best = regimes.get("best_epoch")
    return None if best is None else int(best)


def _maes(values: Mapping, prefix: str) -> dict[str, float]:
    """``{property: MAE}`` of every ``<prefix>_mae_<property>`` with a finite value (properties without
    a known reference, e.g. λ of a Tc-only dataset, are never logged, so never here)."""
    head = f"{prefix}_mae_"
    out = {}
    for key, value in values.items():
        v = _number(value)
        if key.startswith(head) and v is not None:
            out[key[len(head):]] = v
    return out


def closing_summary(regimes: Mapping, metrics_rows: Sequence[Mapping] = (), n_out_of_bag: int | None = None,
                    n_test: int | None = None, test_note: str | None = None) -> dict:
    """The closing record of a member from its ``regimes.json`` record (with its ``test`` metrics, when
    it was tested) and its ``metrics.csv`` rows; ``test_note`` says why there is no test score."""
    found = dict(regimes.get("regimes") or {})
    final = regimes.get("final_regime")
    kept = kept_epoch(regimes)
    second = "modern" in found
    reached = "modern" if second else "critical" if "critical" in found else "classical"
    epochs = {"classical_minimum": (found.get("classical") or {}).get("epoch"),
              "critical_peak": (found.get("critical") or {}).get("epoch"),
              "modern_minimum": (found.get("modern") or {}).get("epoch"),
              "best_out_of_bag": regimes.get("best_epoch"), "run": regimes.get("epochs_run")}
    if final == "modern":
        why = "tempered training keeps the modern minimum, the lowest point of the second descent"
    else:
        why = ("without a second descent there is no modern minimum; the best out-of-bag epoch has the lowest "
               "out-of-bag loss seen")
    row = next((r for r in metrics_rows if _number(r.get("epoch")) == kept), {}) if kept is not None else {}
    out_of_bag = {"epoch": kept, "entries": n_out_of_bag, "loss": _number(row.get("val_loss")),
                  "train_loss": _number(row.get("train_loss")), "mae": _maes(row, "val")}
    tested = regimes.get("test")
    test = None
    if isinstance(tested, Mapping) and tested:
        test = {"entries": n_test, "loss": _number(tested.get("test_loss")), "mae": _maes(tested, "test")}
        test_note = None
    return {"kept_epoch": kept, "kept": KEPT_NAMES.get(final, str(final)), "why": why,
            "regime_reached": reached, "second_descent": second, "epochs": epochs,
            "stop_reason": regimes.get("stop_reason"), "out_of_bag": out_of_bag, "test": test,
            "test_note": test_note if test is None else None}


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def closing_lines(result: Mapping, member: str, outputs) -> list[str]:
    """The closing summary as printed: a head line, the regime reached, the epochs, an MAE table
    (out-of-bag at the kept epoch, test) and where the outputs are."""
    e = result["epochs"]
    kept = result["kept_epoch"]
    lines = [f"{member} done: kept the weights of epoch {kept}, {result['kept']}"]
    if result["second_descent"]:
        reached = f"modern (a second descent came after the critical peak at epoch {e['critical_peak']})"
    elif result["regime_reached"] == "critical":
        reached = (f"critical (the out-of-bag loss rose above its classical minimum at epoch {e['classical_minimum']}"
                   " and never came down again: no second descent)")
    else:
        reached = "classical (the out-of-bag loss never rose above its first minimum: no second descent)"
    lines.append(f"  regime reached: {reached}; stopped: {result.get('stop_reason') or 'unknown'}")
    named = [f"classical minimum {e['classical_minimum']}"]
    if result["second_descent"]:
        named += [f"critical peak {e['critical_peak']}", f"modern minimum {e['modern_minimum']}"]
    lines.append(f"  epochs: {', '.join(named)} (smoothed out-of-bag loss); best out-of-bag epoch "
                 f"{e['best_out_of_bag']} (unsmoothed); {e['run']} epochs run")
    lines.append(f"  why: {result['why']}")
    oob, test = result["out_of_bag"], result.get("test")
    names = [k for k in SUMMARY_PROPERTIES if k in oob["mae"] or (test and k in test["mae"])]
    if names:
        lines.append("  MAE          " + "".join(f"{SUMMARY_PROPERTIES[k]:>15}" for k in names))
        where = f"epoch {kept}" + (f", {oob['entries']} entries" if oob.get("entries") is not None else "")
        lines.append("  out-of-bag   " + "".join(f"{_fmt(oob['mae'].get(k)):>15}" for k in names) + f"   ({where})")
        if test:
            where = f"{test['entries']} entries" if test.get("entries") is not None else "test split"
            lines.append("  test         " + "".join(f"{_fmt(test['mae'].get(k)):>15}" for k in names)
                         + f"   ({where})")
    else:
        lines.append(f"  out-of-bag loss {_fmt(oob.get('loss'))} at epoch {kept}"
                     + (f"; test loss {_fmt(test.get('loss'))}" if test else ""))
    if not test:
        lines.append(f"  test: {result.get('test_note') or 'not run'}")
    lines.append(f"  outputs in {outputs}")
    return lines
