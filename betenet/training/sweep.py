"""Hydra callback for multiruns: after all members end, summarise the sweep and draw the overlay figure."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from betenet.training.run_dir import RunDir

log = logging.getLogger(__name__)

#: The sweep folder's own outputs.
SUMMARY = "sweep_summary.json"
OVERLAY = "double_descent_overlay.png"


def summarise_sweep(sweep_dir: Path) -> dict:
    """Which members finished (final checkpoint), which failed (FAILED.txt), which are incomplete."""
    status: dict[str, list[str]] = {"complete": [], "failed": [], "incomplete": []}
    for path in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir() and not p.name.startswith(".")):
        state = RunDir(path).status()
        if state is not None:
            status[state].append(path.name)
    return status


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from betenet.training.plots import plot_sweep_overlay

        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        status = summarise_sweep(sweep_dir)
        (sweep_dir / SUMMARY).write_text(json.dumps(status, indent=2))
        metrics = [RunDir(sweep_dir / name).metrics for name in status["complete"] + status["incomplete"]]
        if metrics:
            plot_sweep_overlay(metrics, sweep_dir / OVERLAY)
        log.info("sweep %s: %d complete, %d failed, %d incomplete", sweep_dir, len(status["complete"]),
                 len(status["failed"]), len(status["incomplete"]))
        print(f"sweep {sweep_dir}: {len(status['complete'])} complete, {len(status['failed'])} failed")
