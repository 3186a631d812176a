"""Hydra/OmegaConf glue: custom resolvers and config composition helpers shared by train.py and tests."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def wandb_offline() -> bool:
    """W&B runs offline unless an API key is configured (WANDB_API_KEY) or WANDB_MODE=online."""
    if os.environ.get("WANDB_MODE") == "online":
        return False
    return not os.environ.get("WANDB_API_KEY")


def node_dim(site_dos: str, n_bins: int) -> int:
    """Width of the node inputs/attributes: one-hot(Z) over 118 elements, plus the binned site PhDOS
    (``n_bins`` values) unless ``site_dos`` is ``none`` (betenet/data/graphs.py)."""
    from betenet.data.structures import MAX_Z

    return MAX_Z if str(site_dos) == "none" else MAX_Z + int(n_bins)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("wandb_offline"):
        OmegaConf.register_new_resolver("wandb_offline", wandb_offline)
    if not OmegaConf.has_resolver("node_dim"):
        OmegaConf.register_new_resolver("node_dim", node_dim)


register_resolvers()
