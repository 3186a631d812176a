"""Tempered training: follow the validation curve through its classical, critical and modern regimes.

`TemperedTraining` is a Lightning callback. On every epoch it reads `train_loss` and `val_loss`,
smooths the validation loss with an exponential moving average and moves through three regimes:

* classical — the first descent; its minimum is the classical checkpoint;
* critical — entered once the smoothed validation loss rises a fraction `rise` above the classical
  minimum; its maximum (the peak of the double-descent curve) is the critical checkpoint;
* modern — entered once the smoothed loss falls a fraction `drop` below that peak; its minimum is the
  modern checkpoint, and training stops after `patience` epochs without a new modern minimum
  (5000 in the paper) or at `trainer.max_epochs` (1e5 in the paper).

The member's final weights are the modern minimum; if no second descent came, the best out-of-bag
epoch (lowest unsmoothed validation loss), with the reason recorded (the vocabulary of these epochs:
`betenet.training.closing`). The full history and every regime's weights live in the callback state,
so a killed run resumed from `last.ckpt` ends exactly as an uninterrupted one, with its complete
`metrics.csv`. At the end it writes the regime and final checkpoints, `regimes.json`, `metrics.csv`
and the double-descent figure into the run folder (file names: `betenet.training.run_dir.RunDir`),
and gives the regimes, the final choice and the figure to W&B (`betenet.training.wandb_records`).
`member_info` (set by the training run: the member's fingerprint and training elements) goes into
every checkpoint, Lightning's `last.ckpt` included, so a checkpoint always says which member it is.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import os

import pytorch_lightning as pl
import torch

from betenet.files import to_jsonable
from betenet.runtime import FILE_ONLY
from betenet.training.checkpoints import save_member_checkpoint
from betenet.training.run_dir import CHECKPOINT_KEY, RunDir
from betenet.training.wandb_records import log_member_result

log = logging.getLogger(__name__)

#: Columns written to metrics.csv first; any other logged epoch metric follows.
BASE_COLUMNS = ("epoch", "train_loss", "val_loss", "val_loss_smoothed", "regime")


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


class TemperedTraining(pl.Callback):
    """Three-regime double-descent tracker, regime checkpoints, patience stop, metrics history."""

    def __init__(self, run_dir: str = ".", patience: int = 5000, smoothing: float = 0.9,
                 rise: float = 0.05, drop: float = 0.05, monitor: str = "val_loss", plot: bool = True):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError("smoothing must be in [0, 1)")
        self.run = RunDir(run_dir)
        self.member_info: dict = {}  # {"member": fingerprint, "train_elements": [...]}, set by the training run
        self.patience, self.smoothing, self.rise, self.drop = patience, smoothing, rise, drop
        self.monitor, self.plot = monitor, plot
        self.regime = "classical"
        self.smoothed: float | None = None
        self.best: dict[str, dict] = {}          # regime -> {"epoch", "value", "raw"}
        self.states: dict[str, dict] = {}        # regime -> state_dict at its extremum
        self.overall: dict | None = None         # best raw val loss of the whole run
        self.overall_state: dict | None = None
        self.history: list[dict] = []
        self.last_improvement = 0
        self.stop_reason: str | None = None

    # ---- regime logic --------------------------------------------------------------------
    def update(self, epoch: int, value: float) -> list[str]:
        """Feed one validation value; returns the regimes whose extremum moved to this epoch."""
        s = value if self.smoothed is None else self.smoothing * self.smoothed + (1 - self.smoothing) * value
        self.smoothed = s
        moved = []
        if self.regime == "classical":
            best = self.best.get("classical")
            if best is None or s < best["value"]:
                self.best["classical"] = {"epoch": epoch, "value": s, "raw": value}
                moved.append("classical")
            elif s > best["value"] * (1 + self.rise):
                self.regime = "critical"
        if self.regime == "critical":
            peak = self.best.get("critical")
            if peak is None or s > peak["value"]:
                self.best["critical"] = {"epoch": epoch, "value": s, "raw": value}
                moved.append("critical")
            elif s < peak["value"] * (1 - self.drop):
                self.regime = "modern"
        if self.regime == "modern":
            best = self.best.get("modern")
            if best is None or s < best["value"]:
                self.best["modern"] = {"epoch": epoch, "value": s, "raw": value}
                self.last_improvement = epoch
                moved.append("modern")
        return moved

    def should_stop(self, epoch: int) -> bool:
        return self.regime == "modern" and epoch - self.last_improvement >= self.patience

    # ---- Lightning hooks -----------------------------------------------------------------
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
        if self.monitor not in metrics:
            return
        epoch = trainer.current_epoch
        value = metrics[self.monitor]
        if not math.isfinite(value):
            self.stop_reason = f"{self.monitor} is not finite at epoch {epoch}"
            trainer.should_stop = True
            return
        for regime in self.update(epoch, value):
            self.states[regime] = _cpu_state(pl_module)
        if self.overall is None or value < self.overall["value"]:
            self.overall = {"epoch": epoch, "value": value}
            self.overall_state = _cpu_state(pl_module)
        row = {"epoch": epoch, "train_loss": metrics.get("train_loss", float("nan")), "val_loss": value,
               "val_loss_smoothed": self.smoothed, "regime": self.regime}
        row.update({k: v for k, v in sorted(metrics.items()) if k not in row})
        self.history.append(row)
        if self.should_stop(epoch):
            self.stop_reason = (f"no new modern minimum for {self.patience} epochs "
                                f"(modern minimum at epoch {self.best['modern']['epoch']})")
            trainer.should_stop = True

    def final_choice(self) -> tuple[str, dict, str]:
        """(regime name, state_dict, reason) of the member's final weights: ``modern`` (the modern
        minimum) or ``best`` (the best out-of-bag epoch; vocabulary: betenet/training/closing.py)."""
        if "modern" in self.states:
            return "modern", self.states["modern"], (f"modern minimum at epoch {self.best['modern']['epoch']} "
                                                     "(lowest smoothed out-of-bag loss of the second descent)")
        if self.overall_state is None:
            raise RuntimeError("no validation epoch finished; nothing to choose final weights from")
        reached = "no second descent after the critical peak" if "critical" in self.states \
            else "no rise after the classical minimum, so no second descent"
        return "best", self.overall_state, f"{reached}: kept the best out-of-bag epoch {self.overall['epoch']}"

    def kept_epoch(self) -> int | None:
        """The epoch of the final weights (see :meth:`final_choice`)."""
        if "modern" in self.best:
            return self.best["modern"]["epoch"]
        return self.overall["epoch"] if self.overall else None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self.history:
            return
        self.finish(trainer, pl_module)

    def finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the member's outputs from the history (also called by the training run when a
        resumed trainer had no epoch left to run, so Lightning skipped ``on_train_end``)."""
        regime, state, reason = self.final_choice()
        hparams = to_jsonable(dict(pl_module.hparams))
        info = self.summary() | {"final_regime": regime, "final_reason": reason, "kept_epoch": self.kept_epoch()}
        saved = info | to_jsonable(self.member_info)
        for name, st in self.states.items():
            save_member_checkpoint(self.run.checkpoint(name), st, hparams, saved | {"regime": name})
        save_member_checkpoint(self.run.final, state, hparams, saved | {"regime": regime})
        pl_module.load_state_dict(state)
        self.run.write_regimes(info)
        self.write_metrics_csv()
        log.info("final weights: %s", reason, extra=FILE_ONLY)  # the closing summary says it on the console
        if self.plot:
            from betenet.training.plots import plot_double_descent

            plot_double_descent(self.history, self.best, self.run.figure, kept=info["kept_epoch"],
                                best_epoch=info["best_epoch"], stop_reason=info["stop_reason"])
        for logger in trainer.loggers:
            flat = {f"regime/{k}_epoch": v["epoch"] for k, v in self.best.items()}
            logger.log_metrics(flat, step=trainer.global_step)
        log_member_result(trainer.loggers, info, self.run.figure if self.plot else None, trainer.global_step)

    def summary(self) -> dict:
        return {"regimes": copy.deepcopy(self.best), "epochs_run": len(self.history),
                "stop_reason": self.stop_reason or "max_epochs reached",
                "best_epoch": self.overall["epoch"] if self.overall else None}

    def write_metrics_csv(self) -> None:
        """The whole history to metrics.csv, through a temporary file: a kill never truncates it."""
        columns = list(BASE_COLUMNS)
        for row in self.history:
            columns += [k for k in row if k not in columns]
        path = self.run.metrics
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.history)
        tmp.replace(path)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        # last.ckpt says which member it is; the history is flushed so progress shows in long runs
        if self.member_info.get("member") is not None:
            checkpoint[CHECKPOINT_KEY] = to_jsonable(self.member_info["member"])
        self.write_metrics_csv()

    # ---- state for resume ----------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"regime": self.regime, "smoothed": self.smoothed, "best": self.best, "states": self.states,
                "overall": self.overall, "overall_state": self.overall_state, "history": self.history,
                "last_improvement": self.last_improvement, "stop_reason": self.stop_reason}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)
