"""Hydra callback for multiruns: after all members end, summarise the sweep and draw the overlay figure."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def summarise_sweep(sweep_dir: Path) -> dict:
    """Which members finished (final.ckpt), which failed (FAILED.txt), which are incomplete."""
    status: dict[str, list[str]] = {"complete": [], "failed": [], "incomplete": []}
    for run in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (run / "checkpoints" / "final.ckpt").exists():
            status["complete"].append(run.name)
        elif (run / "FAILED.txt").exists():
            status["failed"].append(run.name)
        elif (run / ".hydra").exists():
            status["incomplete"].append(run.name)
    return status


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from betenet.evaluation.plots import plot_sweep_overlay

        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        status = summarise_sweep(sweep_dir)
        (sweep_dir / "sweep_summary.json").write_text(json.dumps(status, indent=2))
        runs = [sweep_dir / name for name in status["complete"] + status["incomplete"]]
        if runs:
            plot_sweep_overlay(runs, sweep_dir / "double_descent_overlay.png")
        log.info("sweep %s: %d complete, %d failed, %d incomplete", sweep_dir, len(status["complete"]),
                 len(status["failed"]), len(status["incomplete"]))
        print(f"sweep {sweep_dir}: {len(status['complete'])} complete, {len(status['failed'])} failed")
