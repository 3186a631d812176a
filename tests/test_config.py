"""Every config group composes and every `_target_` resolves, so a typo fails here, not on the cluster."""

import hydra
import pytest
from omegaconf import OmegaConf

from betenet.config import CONF_DIR, compose

GROUPS = ["data", "model", "variant", "trainer", "logger", "callbacks", "paths", "cluster", "experiment"]


def options(group):
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def compose_cfg(overrides):
    return compose(overrides, return_hydra_config=True)


def targets(node, found):
    if OmegaConf.is_dict(node):
        for key, value in node.items_ex(resolve=False):
            if key == "_target_":
                found.append(value)
            else:
                targets(value, found)
    return found


CASES = [(g, o) for g in GROUPS for o in options(g)] + [("hydra/launcher", o) for o in
                                                       ("basic", "joblib", "submitit_local", "slurm")]


@pytest.mark.parametrize("group,option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_group_option_composes(group, option, tmp_path):
    overrides = [f"{group}={option}", f"hydra.run.dir={tmp_path}", f"hydra.runtime.output_dir={tmp_path}"]
    if option in ("directory", "betenet_release", "paper"):
        overrides.append("data.root=/nonexistent")
    cfg = compose_cfg(overrides)
    found = []
    for key in cfg:
        if key != "hydra":
            targets(cfg[key], found)
    targets(cfg.hydra.launcher, found)
    targets(cfg.hydra.callbacks, found)
    assert found
    for target in found:
        if target.startswith("hydra_plugins"):
            continue
        hydra.utils.get_method(target) if not target[0].isupper() else hydra.utils.get_class(target)
    # everything except hydra's own runtime nodes resolves
    OmegaConf.to_container(cfg.model, resolve=True)
    OmegaConf.to_container(cfg.data, resolve=True)


@pytest.mark.parametrize("variant,site_dos,attr_dim", [("cso", "none", 118), ("cpd", "coarse", 169),
                                                       ("fpd", "fine", 169)])
def test_variants_differ_only_in_node_attributes(variant, site_dos, attr_dim, tmp_path):
    base = OmegaConf.to_container(compose_cfg(["variant=cso", f"hydra.runtime.output_dir={tmp_path}"]), resolve=False)
    cfg = compose_cfg([f"variant={variant}", f"hydra.runtime.output_dir={tmp_path}"])
    assert cfg.data.site_dos == site_dos
    assert cfg.model.net.attr_dim == attr_dim
    other = OmegaConf.to_container(cfg, resolve=False)
    for key in other:
        if key not in ("variant", "hydra"):
            assert other[key] == base[key], key


def test_launcher_plugins_resolve(tmp_path):
    for launcher, cls in [("joblib", "JoblibLauncher"), ("submitit_local", "LocalLauncher"),
                          ("slurm", "SlurmLauncher")]:
        cfg = compose_cfg([f"hydra/launcher={launcher}", "cluster.partition=gpu"])
        assert cfg.hydra.launcher._target_.endswith(cls)
        hydra.utils.get_class(cfg.hydra.launcher._target_)
    cfg = compose_cfg(["hydra/launcher=slurm", "cluster.partition=gpu", "cluster.gpus_per_node=2"])
    assert cfg.hydra.launcher.partition == "gpu" and cfg.hydra.launcher.gpus_per_node == 2


def test_wandb_offline_without_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    cfg = compose_cfg([])
    assert cfg.logger.wandb.offline is True
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert compose_cfg([]).logger.wandb.offline is False


def test_wandb_is_online_after_wandb_login(monkeypatch, tmp_path):
    """`wandb login` writes the key into the netrc file (no WANDB_API_KEY): that is logged in, so online;
    another host's entry is not; WANDB_MODE=offline still decides. Nothing is sent: only the file is read."""
    from betenet.config import wandb_logged_in, wandb_offline

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    netrc.write_text(f"machine example.org\n  login user\n  password {'b' * 40}\n")
    assert not wandb_logged_in() and wandb_offline()
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {'a' * 40}\n")
    assert wandb_logged_in() and not wandb_offline()
    assert compose_cfg([]).logger.wandb.offline is False
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_offline()


def test_members_side_by_side_with_one_thread_each(tmp_path):
    """README: several members at once through joblib, each process with one torch thread."""
    cfg = compose_cfg(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "runtime.threads=1"])
    assert cfg.hydra.launcher.n_jobs == 2 and cfg.runtime.threads == 1
    assert compose_cfg([]).runtime == {"threads": None, "keep_freed_memory": True}


@pytest.mark.parametrize("variant,n_bins,width", [("cso", 51, 118), ("cpd", 51, 169), ("fpd", 101, 219)])
def test_node_and_output_widths_follow_variant_and_window(variant, n_bins, width, tmp_path):
    """in_dim / attr_dim are derived from the variant's site PhDOS and the spectrum window, out_dim is
    the window's bin count, and the module's grid is the data's."""
    cfg = compose_cfg([f"variant={variant}", f"data.spectrum.n_bins={n_bins}", "model.net.num_neighbors=12",
                       f"hydra.run.dir={tmp_path}",
                       f"hydra.runtime.output_dir={tmp_path}"])
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    assert net["in_dim"] == net["attr_dim"] == width and net["out_dim"] == n_bins
    module = hydra.utils.instantiate(cfg.model)
    assert module.grid.n_bins == n_bins and module.omega_meV.shape == (n_bins,)
