"""Loss landscape of a trained member around its classical, critical and modern checkpoints
(Li, Xu, Taylor, Studer & Goldstein 2018, "Visualizing the loss landscape of neural nets"; paper
Fig. 3 a insets).

For weights θ and two random directions δ, η the surface is L(α, β) = L_train(θ + α δ + β η) on a
square grid α, β ∈ [−span, span], with L_train the member's own training loss (its bootstrap
training set with its duplicate weights, full batch, the loss it was trained with).

Directions are *filter-normalised*: every entry is drawn from N(0, 1), then each filter d_f of a
weight tensor is rescaled to the norm of the matching filter of θ, d_f ← d_f ‖θ_f‖ / ‖d_f‖, so a
step of 1 moves every filter by its own size and landscapes of different checkpoints compare.
A filter is one output unit: a row of a ``torch.nn.Linear`` weight ([out, in]); a column of an
e3nn ``FullyConnectedNet`` layer weight ([in, out], the radial MLP). The e3nn tensor-product and
linear weights are flat vectors of path weights; each such vector is treated as one filter.
Biases get a zero direction (Li et al.'s default, "ignore biasbn"). Buffers (e.g. the
neighbour normalisation) never move. The same seed gives every checkpoint the same raw draws.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from betenet.errors import InputError
from betenet.training.run_dir import REGIME_CHECKPOINTS

log = logging.getLogger(__name__)

__all__ = [
    "REGIMES",
    "filter_normalised_direction",
    "loss_surface",
    "member_training_batch",
    "training_loss",
    "member_landscapes",
    "landscape_figure",
]

REGIMES = REGIME_CHECKPOINTS  # the regimes with a checkpoint (betenet.training.run_dir)


def _filter_axis(module: torch.nn.Module) -> int:
    """Axis of a weight tensor that indexes output units (filters)."""
    return 1 if type(module).__module__.startswith("e3nn.nn._fc") else 0


def filter_normalised_direction(module: torch.nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A random filter-normalised direction, one tensor per trainable parameter (by name)."""
    direction: dict[str, torch.Tensor] = {}
    for mod_name, mod in module.named_modules():
        for p_name, p in mod.named_parameters(recurse=False):
            name = f"{mod_name}.{p_name}" if mod_name else p_name
            theta = p.detach()
            d = torch.randn(theta.shape, generator=generator, dtype=theta.dtype)
            if p_name.endswith("bias") or theta.numel() == 0:
                d = torch.zeros_like(theta)
            elif theta.ndim == 1:
                d = d * theta.norm() / d.norm().clamp_min(torch.finfo(d.dtype).tiny)
            else:
                axis = _filter_axis(mod)
                dims = tuple(i for i in range(theta.ndim) if i != axis)
                d_norm = d.norm(dim=dims, keepdim=True).clamp_min(torch.finfo(d.dtype).tiny)
                d = d * theta.norm(dim=dims, keepdim=True) / d_norm
            direction[name] = d.to(theta.device)
    return direction


@torch.no_grad()
def loss_surface(module: torch.nn.Module, loss_fn: Callable[[torch.nn.Module], float], d1: Mapping[str, torch.Tensor],
                 d2: Mapping[str, torch.Tensor], alphas: Sequence[float], betas: Sequence[float],
                 progress: bool = False) -> np.ndarray:
    """``L[i, j] = loss_fn(module with θ + alphas[i] d1 + betas[j] d2)`` [len(alphas), len(betas)].
    The module's weights are restored afterwards (also on error)."""
    params = dict(module.named_parameters())
    missing = (set(d1) | set(d2)) - set(params)
    if missing:
        raise ValueError(f"directions name parameters the module lacks: {sorted(missing)[:5]}")
    origin = {k: params[k].detach().clone() for k in d1}
    out = np.empty((len(alphas), len(betas)))
    try:
        with tqdm(total=out.size, desc="loss landscape", disable=not progress, leave=False) as bar:
            for i, a in enumerate(alphas):
                for j, b in enumerate(betas):
                    for k, theta in origin.items():
                        params[k].copy_(theta + float(a) * d1[k] + float(b) * d2[k])
                    out[i, j] = float(loss_fn(module))
                    bar.update()
    finally:
        for k, theta in origin.items():
            params[k].copy_(theta)
    return out


def member_training_batch(run_dir, cache_dir=None):
    """The member's training set as one PyG batch with its bootstrap weights, rebuilt from the
    run's config and checked against its bootstrap record (``RunDir``)."""
    from torch_geometric.data import Batch

    from betenet.training.run_dir import RunDir

    run = RunDir(run_dir)
    dm = run.datamodule(stage="fit", cache_dir=cache_dir)
    boot = run.read_bootstrap()
    if boot is not None and list(map(str, boot.get("train_ids", []))) != list(dm.split_ids["train"]):
        raise InputError(run.file(run.BOOTSTRAP), "the rebuilt training set differs from the one this member "
                                                  "trained on (the data or its settings changed)")
    return Batch.from_data_list(dm.graphs_for("train"))


def training_loss(batch) -> Callable[[torch.nn.Module], float]:
    """``loss_fn(module)``: the weighted training loss of a ``BetenetModule`` on ``batch``."""

    @torch.no_grad()
    def loss_fn(module) -> float:
        b = batch.clone()
        pred = module(b)
        loss, _ = module.loss_fn(pred, b)
        return float(loss)

    return loss_fn


def member_landscapes(run_dir, regimes: Iterable[str] = REGIMES, steps: int = 21, span: float = 1.0, seed: int = 0,
                      cache_dir=None, progress: bool = False) -> dict:
    """Loss surfaces of a run's regime checkpoints (``checkpoints/<regime>.ckpt``).

    Returns ``dict(run, alphas, betas, seed, landscapes={regime: dict(losses [steps][steps],
    loss_at_origin, minimum=dict(alpha, beta, loss, distance), epoch, val_loss, cosine)},
    missing={regime: reason})``; ``cosine`` is the cosine of the angle between the two directions
    (near 0: random directions in many dimensions are nearly orthogonal).
    """
    from betenet.training.checkpoints import load_member_checkpoint
    from betenet.training.run_dir import RunDir

    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise InputError(run_dir, "run directory not found")
    if steps < 2 or not np.isfinite(span) or span <= 0:
        raise InputError("landscape", f"need steps >= 2 and span > 0, got steps={steps}, span={span}")
    unknown = [r for r in regimes if r not in REGIMES]
    if unknown:
        raise InputError("landscape", f"unknown regimes {unknown}; use {REGIMES}")
    present, missing = {}, {}
    for regime in regimes:
        path = run.checkpoint(regime)
        if path.is_file():
            present[regime] = path
        else:
            missing[regime] = f"no {run.CHECKPOINTS}/{path.name}: the run never reached the {regime} regime"
    if not present:
        raise InputError(run.path, f"no regime checkpoint ({', '.join(missing.values())})")
    batch = member_training_batch(run.path, cache_dir)
    loss_fn = training_loss(batch)
    axis = np.linspace(-span, span, steps)
    result = {"run": str(run.path), "alphas": axis.tolist(), "betas": axis.tolist(), "seed": seed, "span": span,
              "n_train": int(batch.num_graphs), "landscapes": {}, "missing": missing}
    for regime, path in present.items():
        module, info = load_member_checkpoint(path)
        gen = torch.Generator().manual_seed(seed)
        d1 = filter_normalised_direction(module, gen)
        d2 = filter_normalised_direction(module, gen)
        v1 = torch.cat([v.flatten() for v in d1.values()]).double()
        v2 = torch.cat([v.flatten() for v in d2.values()]).double()
        cosine = float(v1 @ v2 / (v1.norm() * v2.norm()))
        losses = loss_surface(module, loss_fn, d1, d2, axis, axis, progress=progress)
        i, j = np.unravel_index(np.nanargmin(losses), losses.shape)
        rec = info.get("regimes", {}).get(regime, {})
        result["landscapes"][regime] = {
            "checkpoint": str(path), "epoch": rec.get("epoch"), "val_loss": rec.get("raw"),
            "losses": losses.tolist(), "loss_at_origin": loss_fn(module), "cosine": cosine,
            "minimum": {"alpha": float(axis[i]), "beta": float(axis[j]), "loss": float(losses[i, j]),
                        "distance": float(np.hypot(axis[i], axis[j]))},
        }
    return result


def landscape_figure(result: Mapping, path, log_scale: bool = True) -> Path:
    """One row per regime: the loss surface (3-D) and its contour map, the unperturbed weights at
    (0, 0) marked and the grid minimum crossed. ``log_scale`` plots log10 of the loss. All rows share
    one colour scale and one vertical range, so the regimes compare (one colour bar); a surface that
    is flat, holds NaN, or no landscape at all is drawn without error (the figure says so)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    lands = dict(result.get("landscapes") or {})
    a = np.asarray(result.get("alphas", []), dtype=float)
    b = np.asarray(result.get("betas", []), dtype=float)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    zlabel = "log10 training loss" if log_scale else "training loss"
    surfaces = {}
    for regime, rec in lands.items():
        z = np.asarray(rec.get("losses", []), dtype=float)
        if z.shape != aa.shape:
            z = np.full(aa.shape, np.nan)
        if log_scale:
            with np.errstate(invalid="ignore", divide="ignore"):
                z = np.log10(np.where(z > 0, z, np.nan))
        surfaces[regime] = z
    finite = np.concatenate([z[np.isfinite(z)] for z in surfaces.values()]) if surfaces else np.zeros(0)
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    levels = np.linspace(lo, hi, 21)
    rows = max(1, len(lands))
    fig = Figure(figsize=(10.8, 3.7 * rows + 0.4), layout="constrained")
    run_name = Path(str(result.get("run", ""))).name
    if not lands:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no landscape to draw", transform=ax.transAxes, ha="center", va="center")
        ax.set_axis_off()
    contour = None
    for row, (regime, rec) in enumerate(lands.items()):
        z = surfaces[regime]
        masked = np.ma.masked_invalid(z)
        title = regime + (f" (epoch {rec['epoch']})" if rec.get("epoch") is not None else "")
        ax3 = fig.add_subplot(rows, 2, 2 * row + 1, projection="3d")
        if masked.count() and a.size > 1 and b.size > 1:
            ax3.plot_surface(aa, bb, masked.filled(np.nan), cmap="viridis", vmin=lo, vmax=hi, linewidth=0,
                             antialiased=True)
        ax3.set_zlim(lo, hi)
        ax3.set_xlabel("α")
        ax3.set_ylabel("β")
        ax3.set_zlabel("log10 loss" if log_scale else "loss")
        ax3.set_title(title)
        ax = fig.add_subplot(rows, 2, 2 * row + 2)
        if masked.count() and a.size > 1 and b.size > 1:
            contour = ax.contourf(aa, bb, np.clip(masked, lo, hi), levels=levels, cmap="viridis", vmin=lo, vmax=hi)
        else:
            ax.text(0.5, 0.5, "no finite loss", transform=ax.transAxes, ha="center", va="center")
        ax.plot(0, 0, "wo", ms=6, mec="k", label="trained weights")
        minimum = rec.get("minimum") or {}
        if minimum.get("alpha") is not None and minimum.get("beta") is not None:
            ax.plot(minimum["alpha"], minimum["beta"], "rx", ms=8, label="grid minimum")
        ax.set_xlabel("α (filter-normalised direction 1)")
        ax.set_ylabel("β (direction 2)")
        ax.set_aspect("equal")
        ax.legend(fontsize=7, loc="upper right")
        ax.set_title(f"{title}: training loss")
    if contour is not None:
        fig.colorbar(contour, ax=fig.axes, label=f"{zlabel} (one scale for every regime)", shrink=0.8,
                     ticks=MaxNLocator(8))
    fig.suptitle(f"loss landscape: {run_name}" if run_name else "loss landscape")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
