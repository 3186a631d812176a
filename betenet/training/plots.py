"""Training's figures: a member's double-descent curve and the overlay of a sweep's members.

Built on :class:`matplotlib.figure.Figure` directly (no pyplot state, no backend switch), as PNG.
"""

from __future__ import annotations

import csv
from pathlib import Path

from matplotlib.figure import Figure

REGIME_STYLE = {"classical": ("tab:green", "classical min"), "critical": ("tab:red", "critical peak"),
                "modern": ("tab:purple", "modern min")}


def read_metrics_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: (float(v) if k != "regime" and v not in ("", None) else v) for k, v in row.items()}
                for row in csv.DictReader(fh)]


def _save_loss_figure(fig, ax, ylabel: str, title: str, path: Path) -> Path:
    """Log-log loss-against-epoch axes, written to ``path`` (parents created)."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_double_descent(history: list[dict], regimes: dict, path: Path, title: str | None = None) -> Path:
    """Train and validation loss against epoch (log axes) with the regime extrema marked."""
    epochs = [r["epoch"] + 1 for r in history]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(epochs, [r["train_loss"] for r in history], label="train", color="tab:blue", lw=1)
    ax.plot(epochs, [r["val_loss"] for r in history], label="validation (out-of-bag)", color="tab:orange", lw=1)
    if "val_loss_smoothed" in history[0]:
        ax.plot(epochs, [r["val_loss_smoothed"] for r in history], color="tab:orange", lw=2, alpha=0.5)
    for name, rec in regimes.items():
        color, label = REGIME_STYLE[name]
        ax.axvline(rec["epoch"] + 1, color=color, ls="--", lw=1, label=f"{label} (epoch {rec['epoch']})")
    ax.legend(fontsize=7)
    return _save_loss_figure(fig, ax, "loss", title or "double descent", path)


def plot_sweep_overlay(metrics_files: list[Path], path: Path) -> Path:
    """Validation (and faint train) curves of every member of a sweep (one ``metrics.csv`` per
    member) on one log-log figure."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    n = 0
    for csv_path in sorted(map(Path, metrics_files)):
        if not csv_path.exists():
            continue
        rows = read_metrics_csv(csv_path)
        epochs = [r["epoch"] + 1 for r in rows]
        ax.plot(epochs, [r["val_loss"] for r in rows], lw=0.8, alpha=0.7)
        ax.plot(epochs, [r["train_loss"] for r in rows], lw=0.5, alpha=0.25, color="grey")
        n += 1
    return _save_loss_figure(fig, ax, "loss (colour: validation, grey: train)", f"sweep: {n} members", path)
