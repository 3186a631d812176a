"""Train one BETE-NET bootstrap member (or a sweep with -m). See conf/ and README.md."""

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from betenet.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from betenet.training.run import train_member_safely

    train_member_safely(cfg, in_sweep=HydraConfig.get().mode == RunMode.MULTIRUN)


if __name__ == "__main__":
    main()
