"""Train one bootstrap member, or a sweep with ``-m``: ``python -m betenet.train variant=fpd seed=3``.

The repository's ``train.py`` calls the same :func:`main`; the configuration is the installed
``betenet.conf`` (betenet/config.py), so the command works from any folder once betenet is installed.
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import InterpolationResolutionError

from betenet.config import CONF_PACKAGE, register_resolvers
from betenet.errors import InputError

register_resolvers()


@hydra.main(version_base="1.3", config_path=f"pkg://{CONF_PACKAGE}", config_name="config")
def main(cfg: DictConfig) -> dict | None:
    """Train the member; returns its outcome (complete, failed or refused: what a sweep counts,
    betenet/training/sweep.py)."""
    from betenet.runtime import quiet_third_parties
    from betenet.training.run import train_member_safely

    quiet_third_parties()
    try:
        return train_member_safely(cfg, in_sweep=HydraConfig.get().mode == RunMode.MULTIRUN)
    except InputError as err:  # bad input, a busy run folder, another member in it: one line, exit 2
        print(f"train.py: error: {err}", file=sys.stderr)
        sys.exit(2)
    except InterpolationResolutionError as err:  # a resolver refused a setting (e.g. features.layers): one line
        reason = str(err).splitlines()[0].split("while resolving interpolation: ", 1)[-1]
        print(f"train.py: error: {reason}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
