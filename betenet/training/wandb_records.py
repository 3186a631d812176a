"""What W&B records of the science beyond the per-epoch metrics (which Lightning logs).

Per member run: the dataset statistics and the rejected count in the run config (``dataset``), the
three regimes (epoch, smoothed and raw validation loss), the final choice and why training stopped in
the run summary, and ``double_descent.png`` as an image. Per W&B group of a sweep: one summary run
(job type ``sweep-summary``) with the group's overlay figure as an image and as an artifact beside
``sweep_summary.json``. Each member's run is finished when its training ends, so the members of a
sweep run one after another in one process each get their own run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: Job type of a sweep group's summary run.
SWEEP_JOB_TYPE = "sweep-summary"


def wandb_loggers(loggers) -> list:
    from pytorch_lightning.loggers import WandbLogger

    return [lg for lg in loggers or () if isinstance(lg, WandbLogger)]


def log_dataset(loggers, statistics: dict) -> None:
    """The data module's statistics (graphs, atoms, labelled entries, ``rejected``, split sizes) into
    each run's config under ``dataset``."""
    for logger in wandb_loggers(loggers):
        logger.log_hyperparams({"dataset": dict(statistics)})


def regime_summary(summary: dict) -> dict:
    """Flat run-summary entries of a member's ``regimes.json`` record (the tempering summary)."""
    out = {}
    for regime, rec in (summary.get("regimes") or {}).items():
        out[f"regime/{regime}_epoch"] = rec["epoch"]
        out[f"regime/{regime}_val_loss_smoothed"] = rec["value"]
        out[f"regime/{regime}_val_loss"] = rec["raw"]
    for key in ("final_regime", "final_reason", "epochs_run", "stop_reason", "best_epoch"):
        if summary.get(key) is not None:
            out[key] = summary[key]
    return out


def log_member_result(loggers, summary: dict, figure: Path | None, step: int) -> None:
    """The regimes and the final choice into each W&B run's summary, the figure as an image."""
    for logger in wandb_loggers(loggers):
        logger.experiment.summary.update(regime_summary(summary))
        if figure is not None and Path(figure).is_file():
            logger.log_image(key="double_descent", images=[str(figure)], step=step)


def finish(loggers, exit_code: int = 0) -> None:
    """End each W&B run (the next member of an in-process sweep starts its own); ``exit_code`` 1
    marks a member that failed."""
    for logger in wandb_loggers(loggers):
        if logger._experiment is not None:
            logger.experiment.finish(exit_code=exit_code)


def sweep_groups(runs) -> dict[tuple[str, str], list]:
    """``{(project, group): [RunDir, ...]}`` of the members whose config logs to W&B."""
    groups: dict[tuple[str, str], list] = {}
    for run in runs:
        wandb_cfg = ((run.read_config() or {}).get("logger") or {}).get("wandb")
        if isinstance(wandb_cfg, dict) and wandb_cfg.get("project") and wandb_cfg.get("group"):
            groups.setdefault((str(wandb_cfg["project"]), str(wandb_cfg["group"])), []).append(run)
    return groups


def log_sweep_group(project: str, group: str, sweep_dir: Path, overlay: Path, status: dict, offline: bool) -> None:
    """One summary run in the W&B group: the overlay as an image and, with ``sweep_summary.json``,
    as the artifact ``<group>-sweep``; member counts in its summary."""
    import wandb

    run = wandb.init(project=project, group=group, name=f"{group}-sweep", job_type=SWEEP_JOB_TYPE,
                     dir=str(sweep_dir), mode="offline" if offline else "online")
    try:
        artifact = wandb.Artifact(f"{group}-sweep", type=SWEEP_JOB_TYPE,
                                  metadata={k: len(v) for k, v in status.items()})
        artifact.add_file(str(overlay), name=overlay.name)
        summary_file = Path(sweep_dir) / "sweep_summary.json"
        if summary_file.is_file():
            artifact.add_file(str(summary_file), name=summary_file.name)
        run.log_artifact(artifact)
        run.log({"double_descent_overlay": wandb.Image(str(overlay))})
        run.summary.update({f"members_{k}": len(v) for k, v in status.items()})
    finally:
        run.finish()


def wandb_disabled() -> bool:
    return os.environ.get("WANDB_MODE") == "disabled"
