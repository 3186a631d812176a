"""The Hydra configuration that ships with betenet: where it is, how to compose it, the resolvers it uses.

The tree is the repository's top-level ``conf/``; pyproject maps it onto the package ``betenet.conf``
(package-dir), so the wheel carries the same files and an installed betenet finds them through
``importlib.resources``, editable or not. ``train.py``, ``python -m betenet.train``, the tests and the
benchmarks all compose from :data:`CONF_DIR`.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from betenet.conf import CONF_DIR  # its folder on disk (a checkout's conf/, a wheel's betenet/conf)

#: The configuration as an importable package (Hydra's ``pkg://`` search path).
CONF_PACKAGE = "betenet.conf"


#: W&B's own server, where ``WANDB_BASE_URL`` does not name another.
WANDB_DEFAULT_HOST = "https://api.wandb.ai"


def _netrc_path() -> Path:
    """The netrc file W&B reads (``NETRC``, else ``~/.netrc``, else ``~/_netrc`` where only it exists)."""
    if os.environ.get("NETRC"):
        return Path(os.environ["NETRC"]).expanduser()
    unix, windows = Path("~/.netrc").expanduser(), Path("~/_netrc").expanduser()
    return windows if windows.exists() and not unix.exists() else unix


def wandb_logged_in() -> bool:
    """Whether W&B has credentials for its host without asking anyone: ``WANDB_API_KEY`` (or an identity
    token file) set, or an API key for the host (``WANDB_BASE_URL``, default api.wandb.ai) in the netrc
    file ``wandb login`` writes. W&B's own netrc lookup is used where this W&B version has it; nothing
    is sent anywhere."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = os.environ.get("WANDB_BASE_URL") or WANDB_DEFAULT_HOST
    try:
        from wandb.sdk.lib.wbauth import read_netrc_auth

        return bool(read_netrc_auth(host=host))
    except ImportError:
        pass
    except Exception:  # an unreadable entry or an odd host: not logged in, as far as we can tell
        return False
    import netrc
    from urllib.parse import urlsplit

    try:
        creds = netrc.netrc(str(_netrc_path())).authenticators(urlsplit(host).netloc)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(creds and creds[2])


def wandb_offline() -> bool:
    """W&B runs online when logged in (:func:`wandb_logged_in`: ``wandb login`` or ``WANDB_API_KEY``) and
    offline otherwise; ``WANDB_MODE=online`` / ``offline`` (or ``dryrun``) decide instead."""
    mode = os.environ.get("WANDB_MODE")
    if mode == "online":
        return False
    if mode in ("offline", "dryrun"):
        return True
    return not wandb_logged_in()


def node_dim(site_dos: str, n_bins: int, features_dim: int = 0, node_attributes=None) -> int:
    """Width of the node inputs/attributes: the sum of the widths of the node attributes that are on
    (:mod:`betenet.data.attributes`: one-hot(Z), the pretrained site features of width ``features_dim``,
    those named in ``data.node_attributes``, and the binned site PhDOS of ``n_bins`` values unless
    ``site_dos`` is ``none``)."""
    from betenet.data.attributes import NodeSettings, node_width

    return node_width(NodeSettings(site_dos=str(site_dos), n_bins=int(n_bins), features_dim=int(features_dim),
                                   extra=tuple(node_attributes or ())))


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
