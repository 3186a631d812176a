"""Hydra callback for multiruns: after all members end, summarise the sweep, draw the overlay figure
and give each W&B group of the sweep its summary run (betenet/training/wandb_records.py)."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from betenet.training.run_dir import RunDir

log = logging.getLogger(__name__)

#: The sweep folder's own outputs.
SUMMARY = "sweep_summary.json"
OVERLAY = "double_descent_overlay.png"
STATES = ("complete", "failed", "incomplete")


def sweep_members(sweep_dir: Path) -> dict[str, RunDir]:
    """Every run folder of the sweep at any depth, by its path relative to the sweep folder."""
    sweep_dir = Path(sweep_dir)
    return {run.path.relative_to(sweep_dir).as_posix(): run for run in RunDir.find(sweep_dir)
            if run.path != sweep_dir}


def summarise_sweep(sweep_dir: Path) -> dict:
    """Which members finished (final checkpoint), which failed (FAILED.txt), which are incomplete;
    each named by its folder relative to the sweep folder (``seed_0``, ``cso/seed_0``)."""
    status: dict[str, list[str]] = {state: [] for state in STATES}
    for name, run in sweep_members(sweep_dir).items():
        state = run.status()
        if state is not None:
            status[state].append(name)
    return status


def _log_to_wandb(sweep_dir: Path, members: dict[str, RunDir], status: dict, overlay: Path) -> None:
    """One W&B summary run per (project, group) among the members, with that group's overlay."""
    from betenet.config import wandb_offline
    from betenet.training.plots import plot_sweep_overlay
    from betenet.training.wandb_records import log_sweep_group, sweep_groups, wandb_disabled

    if wandb_disabled():
        return
    names = {run.path: name for name, run in members.items()}
    drawn = set(status["complete"] + status["incomplete"])  # the members in the sweep's overlay
    for (project, group), runs in sweep_groups(members.values()).items():
        mine = {names[r.path] for r in runs}
        if not mine & drawn:
            continue
        counts = {state: [n for n in status[state] if n in mine] for state in STATES}
        with tempfile.TemporaryDirectory() as tmp:
            figure = overlay
            if mine & drawn != drawn:  # the sweep holds several groups: draw this group's members alone
                figure = plot_sweep_overlay([members[n].metrics for n in sorted(mine & drawn)], Path(tmp) / OVERLAY)
            try:
                log_sweep_group(project, group, sweep_dir, figure, counts, offline=wandb_offline())
            except Exception as exc:  # W&B trouble never fails a finished sweep
                log.warning("sweep %s: W&B summary of group %s not logged (%s)", sweep_dir, group, exc)


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from betenet.training.plots import plot_sweep_overlay

        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        members = sweep_members(sweep_dir)
        status = summarise_sweep(sweep_dir)
        (sweep_dir / SUMMARY).write_text(json.dumps(status, indent=2))
        metrics = [members[name].metrics for name in status["complete"] + status["incomplete"]]
        if metrics:
            plot_sweep_overlay(metrics, sweep_dir / OVERLAY)
            _log_to_wandb(sweep_dir, members, status, sweep_dir / OVERLAY)
        log.info("sweep %s: %d complete, %d failed, %d incomplete", sweep_dir, len(status["complete"]),
                 len(status["failed"]), len(status["incomplete"]))
        print(f"sweep {sweep_dir}: {len(status['complete'])} complete, {len(status['failed'])} failed")
