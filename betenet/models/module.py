"""BetenetModule: the LightningModule that wraps the network, the loss and the optimizer.

Logs per epoch: `train_loss`, `val_loss` (out-of-bag, same loss, unweighted) and validation MAE of
lambda, omega_log, omega_2 and Allen–Dynes Tc computed from the predicted a2F through the
differentiable physics.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from betenet.models.losses import LABEL_NAMES, BetenetLoss, predicted_properties
from betenet.models.network import BeteNet
from betenet.physics.units import BIN_CENTRES_MEV, MU_STAR_DEFAULT

MAE_NAMES = {"lambda": "val_mae_lambda", "omega_log_K": "val_mae_omega_log_K",
             "omega_2_K": "val_mae_omega_2_K", "tc_K": "val_mae_tc_K"}


class BetenetModule(pl.LightningModule):
    """Network + loss + AdamW. `net` holds BeteNet's constructor arguments (plain config)."""

    def __init__(self, net: dict[str, Any], loss: dict[str, Any] | None = None, lr: float = 0.005,
                 weight_decay: float = 0.0, mu_star: float = MU_STAR_DEFAULT, dtype: str = "float32"):
        super().__init__()
        self.save_hyperparameters()
        self.net = BeteNet(**dict(net))
        self.loss_fn = BetenetLoss(**dict(loss or {}), mu_star=mu_star)
        if dtype == "float64":
            self.net.double()
        elif dtype != "float32":
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.register_buffer("omega_meV", torch.as_tensor(BIN_CENTRES_MEV, dtype=self._float_dtype),
                             persistent=False)

    @property
    def _float_dtype(self) -> torch.dtype:
        return torch.float64 if self.hparams.dtype == "float64" else torch.float32

    def _cast(self, batch):
        if self._float_dtype == torch.float64:
            for key in ("x", "z", "edge_vec", "pos", "y", "labels", "weight"):
                if key in batch:
                    batch[key] = batch[key].double()
        return batch

    def forward(self, batch) -> torch.Tensor:
        return self.net(self._cast(batch))

    def _step(self, batch, weighted: bool):
        pred = self(batch)
        weight = batch.weight if weighted and "weight" in batch else None
        loss, parts = self.loss_fn(pred, batch.y, batch.labels, weight)
        return pred, loss, parts

    def training_step(self, batch, batch_idx):
        _, loss, parts = self._step(batch, weighted=True)
        n = batch.num_graphs
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=n)
        for name, value in parts.items():
            if len(parts) > 1:
                self.log(f"train_{name}", value, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def validation_step(self, batch, batch_idx):
        pred, loss, _ = self._step(batch, weighted=False)
        n = batch.num_graphs
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        props = predicted_properties(pred.detach(), self.omega_meV.to(pred.dtype), self.hparams.mu_star)
        for j, name in enumerate(LABEL_NAMES):
            known = torch.isfinite(batch.labels[:, j])
            if known.any():
                mae = (props[known, j] - batch.labels[known, j]).abs().mean()
                self.log(MAE_NAMES[name], mae, on_step=False, on_epoch=True, batch_size=int(known.sum()))

    def test_step(self, batch, batch_idx):
        pred, loss, _ = self._step(batch, weighted=False)
        self.log("test_loss", loss, on_step=False, on_epoch=True, batch_size=batch.num_graphs)

    def predict_step(self, batch, batch_idx):
        return self(batch)

    def configure_optimizers(self):
        # fused: one kernel per step instead of a Python loop over the parameter tensors (the same update to
        # rounding; timing in benchmarks/RESULTS.md); only where torch has that kernel
        fused = all(p.device.type in ("cpu", "cuda") for p in self.parameters()) or None
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                                 fused=fused)
