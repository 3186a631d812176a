"""The Hydra configuration that ships with betenet: where it is, how to compose it, the resolvers it uses.

The tree is the repository's top-level ``conf/``; pyproject maps it onto the package ``betenet.conf``
(package-dir), so the wheel carries the same files and an installed betenet finds them through
``importlib.resources``, editable or not. ``train.py``, ``python -m betenet.train``, the tests and the
benchmarks all compose from :data:`CONF_DIR`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

#: The configuration as an importable package (Hydra's ``pkg://`` search path).
CONF_PACKAGE = "betenet.conf"
#: Its folder on disk (``conf/`` of a checkout, ``site-packages/betenet/conf`` of a wheel).
CONF_DIR = Path(str(resources.files(CONF_PACKAGE)))


def wandb_offline() -> bool:
    """W&B runs offline unless an API key is configured (WANDB_API_KEY) or WANDB_MODE=online."""
    if os.environ.get("WANDB_MODE") == "online":
        return False
    return not os.environ.get("WANDB_API_KEY")


def node_dim(site_dos: str, n_bins: int, features_dim: int = 0) -> int:
    """Width of the node inputs/attributes: one-hot(Z) over 118 elements, the pretrained site features
    (``features_dim``), and the binned site PhDOS (``n_bins`` values) unless ``site_dos`` is ``none``
    (betenet/data/graphs.py)."""
    from betenet.data.structures import MAX_Z

    return MAX_Z + int(features_dim) + (0 if str(site_dos) == "none" else int(n_bins))


def feature_dim(model: str, layers, norms) -> int:
    """Features per atom of a ``features`` config (``none``: 0; betenet/pretrained/settings.py)."""
    from betenet.pretrained.settings import feature_dim as dim

    return dim(str(model), list(layers), bool(norms))


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("wandb_offline"):
        OmegaConf.register_new_resolver("wandb_offline", wandb_offline)
    if not OmegaConf.has_resolver("node_dim"):
        OmegaConf.register_new_resolver("node_dim", node_dim)
    if not OmegaConf.has_resolver("feature_dim"):
        OmegaConf.register_new_resolver("feature_dim", feature_dim)


def compose(overrides=(), return_hydra_config: bool = False) -> DictConfig:
    """The training config with command-line style ``overrides``, as ``train.py`` would see it
    (outside a run; with ``return_hydra_config`` the ``hydra`` node is kept)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=return_hydra_config)


register_resolvers()
