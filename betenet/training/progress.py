"""One line of progress per member instead of Lightning's bars (one per epoch, plus a validation bar each):
on a terminal a single tqdm line over the epochs with the out-of-bag loss and the best so far; elsewhere
(a log file, a cluster job) a plain line every ``every_n_epochs`` epochs. Lightning's own bar is off
(``trainer.enable_progress_bar: false``); ``callbacks.progress: null`` silences this one too."""

from __future__ import annotations

import math
import sys

import pytorch_lightning as pl
from tqdm.auto import tqdm


class EpochProgress(pl.Callback):
    def __init__(self, every_n_epochs: int = 100, tty: bool | None = None):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.every_n_epochs = int(every_n_epochs)
        self.tty = tty
        self.bar = None
        self.best = math.inf

    def on_train_start(self, trainer, pl_module) -> None:
        tty = sys.stderr.isatty() if self.tty is None else self.tty
        if tty:
            self.bar = tqdm(total=trainer.max_epochs, initial=trainer.current_epoch, desc="training", unit="epoch",
                            leave=False, dynamic_ncols=True)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        metrics = trainer.callback_metrics
        val = metrics.get("val_loss")
        val = float(val) if val is not None else math.nan
        if math.isfinite(val):
            self.best = min(self.best, val)
        epoch = trainer.current_epoch + 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"out-of-bag loss {val:.4g}, best {self.best:.4g}", refresh=False)
        elif epoch % self.every_n_epochs == 0:
            print(f"epoch {epoch}: out-of-bag loss {val:.4g} (best {self.best:.4g})", flush=True)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
