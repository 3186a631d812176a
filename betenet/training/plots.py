"""Training's figures: a member's double-descent curve and the overlay of a sweep's members.

Built on :class:`matplotlib.figure.Figure` directly (no pyplot state, no backend switch), as PNG. The
epochs are those of ``metrics.csv`` and ``regimes.json`` (from 0), on a linear axis for short runs and a
symmetric-log axis (linear below 1, logarithmic above) for long ones, always with whole-number ticks. The
names of the marked epochs are those of :mod:`betenet.training.closing`. Both functions draw whatever
they are given, an empty or all-NaN history included (the figure then says so), and never raise on it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from betenet.training.run_dir import REGIME_CHECKPOINTS

REGIME_STYLE = {"classical": ("tab:green", "classical minimum"), "critical": ("tab:red", "critical peak"),
                "modern": ("tab:purple", "modern minimum")}
#: Runs at least this long get a symmetric-log epoch axis.
LOG_EPOCHS_FROM = 50
CAPTION = ("out-of-bag loss: validation loss on the entries the member's bootstrap resample left out;\n"
           "smoothed: its exponential moving average, on which the regimes are found")


def read_metrics_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: (_float(v) if k != "regime" else v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _column(history: Sequence[Mapping], key: str) -> np.ndarray:
    return np.array([_float(r.get(key)) for r in history], dtype=float)


def _epoch_axis(ax, max_epoch: float) -> None:
    """Whole-number epoch ticks; symmetric-log for long runs."""
    if np.isfinite(max_epoch) and max_epoch >= LOG_EPOCHS_FROM:
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def _loss_axis(ax, values: np.ndarray) -> None:
    """Log loss axis when there is a positive finite value to show, else linear."""
    finite = values[np.isfinite(values)]
    if finite.size and (finite > 0).all() and finite.max() > finite.min():
        ax.set_yscale("log")


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_double_descent(history: list[dict], regimes: dict, path: Path, title: str | None = None,
                        kept: int | None = None, best_epoch: int | None = None,
                        stop_reason: str | None = None) -> Path:
    """Train and out-of-bag loss against epoch with the regime epochs marked and the kept epoch starred.

    A member whose loss never came down a second time is titled so, and only its classical minimum is
    marked (a "critical peak" on a plateau that never fell again would name nothing). ``kept`` is the
    epoch of the final weights (regimes.json ``kept_epoch``), ``best_epoch`` the best out-of-bag epoch."""
    history = list(history or [])
    regimes = dict(regimes or {})
    epochs = _column(history, "epoch")
    val, train = _column(history, "val_loss"), _column(history, "train_loss")
    smoothed = _column(history, "val_loss_smoothed")
    second = "modern" in regimes
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.subplots()
    if len(history):
        ax.plot(epochs, train, label="train loss", color="tab:blue", lw=1)
        ax.plot(epochs, val, label="out-of-bag loss", color="tab:orange", lw=1)
        if np.isfinite(smoothed).any():
            ax.plot(epochs, smoothed, label="out-of-bag loss, smoothed", color="tab:orange", lw=2, alpha=0.45)
    else:
        ax.text(0.5, 0.5, "no epoch recorded", transform=ax.transAxes, ha="center", va="center")
    shown = REGIME_CHECKPOINTS if second else REGIME_CHECKPOINTS[:1]
    for name in shown:
        if name in regimes and regimes[name].get("epoch") is not None:
            color, label = REGIME_STYLE[name]
            epoch = regimes[name]["epoch"]
            ax.axvline(epoch, color=color, ls="--", lw=1, label=f"{label} (epoch {epoch})")
    if kept is None:
        kept = regimes["modern"]["epoch"] if second else best_epoch
    if best_epoch is not None and best_epoch != kept:
        at = np.flatnonzero(epochs == best_epoch)
        if at.size and np.isfinite(val[at[0]]):
            ax.plot([best_epoch], [val[at[0]]], marker="o", ms=7, mfc="none", mec="k", ls="none", zorder=5,
                    label=f"best out-of-bag epoch ({best_epoch})")
    if kept is not None:
        at = np.flatnonzero(epochs == kept)
        y = val[at[0]] if at.size else math.nan
        if np.isfinite(y):
            ax.plot([kept], [y], marker="*", ms=13, color="k", ls="none", zorder=5,
                    label=f"weights kept (epoch {kept})")
        else:
            ax.axvline(kept, color="k", lw=1.2, label=f"weights kept (epoch {kept})")
    _epoch_axis(ax, np.nanmax(epochs) if np.isfinite(epochs).any() else math.nan)
    _loss_axis(ax, np.concatenate([val, train]))
    ax.set_ylabel("loss")
    if title is None:
        n = len(history)
        if not n:
            title = "no epoch recorded"
        elif second:
            title = f"double descent: a second descent came; weights of epoch {kept} kept"
        elif "critical" in regimes:
            title = (f"no second descent in {n} epochs (the loss rose, then never fell): "
                     f"best out-of-bag epoch {kept} kept")
        else:
            title = f"no second descent in {n} epochs: best out-of-bag epoch {kept} kept"
    ax.set_title(title, fontsize=9, wrap=True)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    caption = CAPTION + (f".\nStopped: {stop_reason}." if stop_reason else ".")
    fig.text(0.01, 0.005, caption, fontsize=6, color="0.3", ha="left", va="bottom")
    fig.get_layout_engine().set(rect=(0, 0.08, 1, 0.92))
    return _save(fig, path)


def _member_curves(item) -> tuple[list[dict], dict]:
    """(metrics rows, regimes.json record) of a run folder (a path, a RunDir, or its metrics.csv)."""
    from betenet.training.run_dir import RunDir

    folder = Path(getattr(item, "path", item))
    if folder.suffix == ".csv":
        folder = folder.parent
    run = RunDir(folder)
    rows = read_metrics_csv(run.metrics) if run.metrics.is_file() else []
    try:
        regimes = run.read_regimes() or {}
    except Exception:  # an unreadable regimes.json only loses the marker
        regimes = {}
    return rows, regimes


def plot_sweep_overlay(groups, path: Path, title: str | None = None) -> Path:
    """The out-of-bag (and faint train) loss of every member of a sweep, one panel and one colour per
    variant (``groups``: variant → run folders, or a plain list of run folders / ``metrics.csv`` files),
    the kept epoch of each member dotted, the panels on shared axes so variants compare."""
    from betenet.training.closing import kept_epoch

    if not isinstance(groups, Mapping):
        groups = {"members": list(groups or [])}
    groups = {str(k): list(v) for k, v in groups.items()} or {"members": []}
    n = len(groups)
    fig = Figure(figsize=(4.6 * n + 0.6, 4.4), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False, sharex=True, sharey=True)[0]
    max_epoch, values, total = math.nan, [], 0
    for i, (ax, (variant, members)) in enumerate(zip(axes, groups.items())):
        colour = f"C{i}"
        drawn = second = 0
        for item in members:
            rows, regimes = _member_curves(item)
            if not rows:
                continue
            epochs, val, train = _column(rows, "epoch"), _column(rows, "val_loss"), _column(rows, "train_loss")
            ax.plot(epochs, train, lw=0.5, alpha=0.35, color="grey", label="train loss" if not drawn else None)
            ax.plot(epochs, val, lw=0.9, alpha=0.75, color=colour,
                    label="out-of-bag loss (one line per member)" if not drawn else None)
            kept = kept_epoch(regimes) if regimes else None
            at = np.flatnonzero(epochs == kept) if kept is not None else np.array([], dtype=int)
            if at.size and np.isfinite(val[at[0]]):
                ax.plot([kept], [val[at[0]]], "o", ms=4, color=colour, mec="k", mew=0.6,
                        label="weights kept" if not second and not drawn else None)
            second += "modern" in (regimes.get("regimes") or {})
            drawn += 1
            values += [val, train]
            if np.isfinite(epochs).any():
                max_epoch = np.nanmax([max_epoch, np.nanmax(epochs)])
        total += drawn
        if drawn:
            ax.set_title(f"{variant}: {drawn} member{'s' * (drawn != 1)}, {second} with a second descent", fontsize=9)
            ax.legend(fontsize=7)
        else:
            ax.set_title(f"{variant}: no member with a loss curve", fontsize=9)
        ax.set_ylabel("loss")
    for ax in axes:
        _epoch_axis(ax, max_epoch)
    _loss_axis(axes[0], np.concatenate(values) if values else np.array([]))
    fig.suptitle(title or f"sweep: {total} member{'s' * (total != 1)}, out-of-bag loss per variant", fontsize=10)
    return _save(fig, path)
