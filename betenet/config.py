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


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("wandb_offline"):
        OmegaConf.register_new_resolver("wandb_offline", wandb_offline)


register_resolvers()
