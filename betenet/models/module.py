"""BetenetModule: the LightningModule that wraps the network, the loss and the optimizer.

Logs per epoch: `train_loss`, `val_loss` (out-of-bag, same loss, unweighted) and validation MAE of
lambda, omega_log, omega_2 and Allen–Dynes Tc of the predicted a2F against the loss's reference
(the properties of the binned target a2F, or the dataset's reported value for entries without one);
testing logs `test_loss` and the same MAEs as `test_mae_<property>`.

``bins`` (start_meV, step_meV, n_bins) is the binned grid the network predicts on; it is stored
with the hyper-parameters, so a checkpoint knows its own frequency axis.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytorch_lightning as pl
import torch

from betenet.errors import InputError
from betenet.models.losses import BetenetLoss, property_matrix
from betenet.models.network import BeteNet
from betenet.models.readout import AtomReadout
from betenet.physics.properties import PROPERTIES
from betenet.physics.units import MU_STAR_DEFAULT, BinGrid


#: The networks a config can name in ``net.arch``: the paper's equivariant network, or the per-atom
#: readout of pretrained site features (betenet/models/readout.py).
NETWORKS = {"betenet": BeteNet, "readout": AtomReadout}


def _target_class(spec: dict, where: str) -> tuple[type, str] | None:
    """The class a config block's ``_target_`` names (a dotted class path, as Hydra spells it: an ablation that
    swaps a class needs no code edit), popped from ``spec``; None without one."""
    if "_target_" not in spec:
        return None
    from hydra.utils import get_class

    target = spec.pop("_target_")
    try:
        return get_class(target), target
    except Exception as exc:  # noqa: BLE001  (Hydra wraps import errors in its own)
        raise InputError(f"{where}._target_", f"cannot import {target!r}: {exc}") from None


def _construct(cls: type, name: str, spec: dict, where: str):
    accepted = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(k for k in spec if k not in accepted)
        if unknown:
            raise InputError(where, f"{name} takes no {', '.join(unknown)} (settings of another class: "
                                    f"drop them, or choose that one in the config)")
    return cls(**spec)


def build_network(net: dict[str, Any]) -> torch.nn.Module:
    """The network of a ``model.net`` config: ``arch`` (a name of :data:`NETWORKS`, default ``betenet``) or
    ``_target_`` (any ``torch.nn.Module`` class path), and its constructor arguments."""
    spec = dict(net)
    arch = spec.pop("arch", "betenet")
    found = _target_class(spec, "model.net")
    if found is None:
        if arch not in NETWORKS:
            raise InputError("model.net.arch", f"must be one of {', '.join(NETWORKS)}, got {arch!r}")
        found = NETWORKS[arch], arch
    return _construct(*found, spec, "model.net")


def build_loss(loss: dict[str, Any] | None, **fixed) -> BetenetLoss:
    """The loss of a ``model.loss`` config: :class:`~betenet.models.losses.BetenetLoss`, or the class its
    ``_target_`` names (e.g. a subclass with a new term), with the config's weights and ``fixed`` (μ*, grid)."""
    spec = dict(loss or {})
    cls, name = _target_class(spec, "model.loss") or (BetenetLoss, "BetenetLoss")
    return _construct(cls, name, {**spec, **fixed}, "model.loss")


class BetenetModule(pl.LightningModule):
    """Network + loss + AdamW. `net` holds the network's constructor arguments and its ``arch`` (plain config)."""

    def __init__(self, net: dict[str, Any], loss: dict[str, Any] | None = None, lr: float = 0.005,
                 weight_decay: float = 0.0, mu_star: float = MU_STAR_DEFAULT, dtype: str = "float32",
                 bins: dict[str, Any] | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.grid = BinGrid.from_config(bins)
        if int(net.get("out_dim", self.grid.n_bins)) != self.grid.n_bins:
            raise ValueError(f"net.out_dim={net.get('out_dim')} differs from the {self.grid.n_bins} bins "
                             f"of {self.grid}")
        self.net = build_network(net)
        self.loss_fn = build_loss(loss, mu_star=mu_star, grid=self.grid)
        if dtype == "float64":
            self.net.double()
        elif dtype != "float32":
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.register_buffer("omega_meV", torch.as_tensor(self.grid.centres, dtype=self._float_dtype),
                             persistent=False)

    @property
    def _float_dtype(self) -> torch.dtype:
        return torch.float64 if self.hparams.dtype == "float64" else torch.float32

    def _cast(self, batch):
        if self._float_dtype == torch.float64:
            for key in ("x", "attr", "edge_vec", "pos", "y", "reported", "weight", "phonon_omega_log_K"):
                if key in batch:
                    batch[key] = batch[key].double()
        return batch

    def forward(self, batch) -> torch.Tensor:
        return self.net(self._cast(batch))

    def _step(self, batch, weighted: bool):
        pred = self(batch)
        loss, parts = self.loss_fn(pred, batch, weighted=weighted)
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
        self._log_property_mae("val", pred, batch)

    def _log_property_mae(self, stage: str, pred: torch.Tensor, batch) -> None:
        """``<stage>_mae_<property>``: MAE of each property of the predicted a2F against the loss's
        reference, over the entries where that reference is known (a Tc-only dataset logs Tc only)."""
        props = property_matrix(pred.detach(), self.omega_meV.to(pred.dtype), self.hparams.mu_star)
        reference = self.loss_fn.reference(batch.y, batch.get("reported"))
        for j, name in enumerate(PROPERTIES):
            known = torch.isfinite(reference[:, j])
            if known.any():
                mae = (props[known, j] - reference[known, j]).abs().mean()
                self.log(f"{stage}_mae_{name}", mae, on_step=False, on_epoch=True, batch_size=int(known.sum()))

    def test_step(self, batch, batch_idx):
        pred, loss, _ = self._step(batch, weighted=False)
        self.log("test_loss", loss, on_step=False, on_epoch=True, batch_size=batch.num_graphs)
        self._log_property_mae("test", pred, batch)

    def predict_step(self, batch, batch_idx):
        return self(batch)

    def configure_optimizers(self):
        # fused: one kernel per step instead of a Python loop over the parameter tensors (the same update to
        # rounding; timing in benchmarks/RESULTS.md); only where torch has that kernel
        fused = all(p.device.type in ("cpu", "cuda") for p in self.parameters()) or None
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                                 fused=fused)
