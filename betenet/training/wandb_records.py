"""What W&B records of the science beyond the per-epoch metrics (which Lightning logs).

Per member run (job type ``member``, grouped by ``<name>-<variant>``, tagged with the variant, the
experiment name and the pretrained features: :func:`member_tags`): the whole resolved config (seed,
variant, data settings and root, bootstrap, model, trainer, callbacks such as the tempering patience)
as the run config, with the dataset statistics and the rejected count under ``dataset``; the three
regimes (epoch, smoothed and raw validation loss), the final choice and why training stopped; and at
the end the values *of the weights kept* (``kept_epoch``, ``final_regime``, ``regime_reached``,
``val_loss`` and the out-of-bag MAEs at the kept epoch, the test MAEs) in the run summary, where W&B
would otherwise show the last epoch's; ``double_descent.png`` as an image; and the final checkpoint
with the resolved config, ``regimes.json`` and ``member.json`` as the artifact ``<run name>-final``
(type ``model``; ``logger.wandb.checkpoint_artifact=false`` leaves it out). Per W&B group of a
sweep: one summary run (job type ``sweep-summary``) with the group's overlay figure as an image and
as an artifact beside ``sweep_summary.json``. Each member's run is finished when its training ends,
so the members of a sweep run one after another in one process each get their own run.

W&B runs online when the user is logged in (``wandb login``, i.e. an API key for the W&B host in the
netrc file, or ``WANDB_API_KEY``), offline otherwise: :func:`betenet.config.wandb_offline`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pytorch_lightning.loggers import WandbLogger as LightningWandbLogger

log = logging.getLogger(__name__)

#: Job type of a sweep group's summary run.
SWEEP_JOB_TYPE = "sweep-summary"
#: Artifact type of a member's final checkpoint.
CHECKPOINT_ARTIFACT_TYPE = "model"


class WandbLogger(LightningWandbLogger):
    """Lightning's W&B logger without the ``anonymous`` setting it always hands to ``wandb.init`` (W&B
    then prints a warning that the setting has no effect), plus ``checkpoint_artifact``: whether the
    member's final checkpoint is logged as an artifact at the end (:func:`log_member_close`)."""

    def __init__(self, *args, checkpoint_artifact: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self._wandb_init.pop("anonymous", None)
        self.checkpoint_artifact = bool(checkpoint_artifact)


def member_tags(cfg) -> list[str]:
    """``variant:<name>``, ``experiment:<name>``, ``features:<model>`` of a training config."""
    variant = (cfg.get("variant") or {}).get("name")
    features = (cfg.get("features") or {}).get("name") or (cfg.get("features") or {}).get("model") or "none"
    return [f"variant:{variant}", f"experiment:{cfg.get('name')}", f"features:{features}"]


def log_run_config(loggers, config: dict) -> None:
    """The whole resolved training config (a plain dict) into each W&B run's config."""
    for logger in wandb_loggers(loggers):
        logger.experiment.config.update(dict(config), allow_val_change=True)


def wandb_loggers(loggers) -> list:
    return [lg for lg in loggers or () if isinstance(lg, LightningWandbLogger)]


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


def kept_summary(result: dict) -> dict:
    """Run-summary entries of the weights kept, from a member's closing summary
    (:func:`betenet.training.closing.closing_summary`): they replace the last epoch's values."""
    out = {"kept_epoch": result.get("kept_epoch"), "regime_reached": result.get("regime_reached"),
           "second_descent": result.get("second_descent")}
    oob = result.get("out_of_bag") or {}
    if oob.get("loss") is not None:
        out["val_loss"] = oob["loss"]
    if oob.get("train_loss") is not None:
        out["train_loss"] = oob["train_loss"]
    out.update({f"val_mae_{k}": v for k, v in (oob.get("mae") or {}).items()})
    test = result.get("test") or {}
    if test.get("loss") is not None:
        out["test_loss"] = test["loss"]
    out.update({f"test_mae_{k}": v for k, v in (test.get("mae") or {}).items()})
    return {k: v for k, v in out.items() if v is not None}


def log_member_close(loggers, result: dict, files: list[Path]) -> None:
    """At the end of a member: :func:`kept_summary` into each run's summary and, unless the logger's
    ``checkpoint_artifact`` is off, the ``files`` (the final checkpoint first, then the records beside
    it) as the artifact ``<run name>-final`` of type ``model`` with the kept epoch and regime as metadata."""
    for logger in wandb_loggers(loggers):
        run = logger.experiment
        run.summary.update(kept_summary(result))
        present = [Path(f) for f in files if Path(f).is_file()]
        if not getattr(logger, "checkpoint_artifact", True) or not present:
            continue
        import wandb

        name = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{run.name or run.id}-{present[0].stem}")
        art = wandb.Artifact(name, type=CHECKPOINT_ARTIFACT_TYPE,
                             metadata={k: result.get(k) for k in ("kept_epoch", "kept", "regime_reached")})
        for path in present:
            art.add_file(str(path), name=path.name)
        run.log_artifact(art, aliases=["latest", present[0].stem])


def finish(loggers, exit_code: int = 0) -> None:
    """End each W&B run (the next member of an in-process sweep starts its own); ``exit_code`` 1
    marks a member that failed."""
    for logger in wandb_loggers(loggers):
        if logger._experiment is not None:
            logger.experiment.finish(exit_code=exit_code)


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
