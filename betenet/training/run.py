"""Train one bootstrap member from a composed Hydra config (what train.py calls).

Instantiates the data module, network/LightningModule, callbacks, loggers and trainer from the
config; records the resolved config and the member's bootstrap ids in the run directory; resumes
from `checkpoints/last.ckpt` when the same command is started again; tests the final weights.
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from betenet.config import register_resolvers
from betenet.runtime import configure

log = logging.getLogger(__name__)


def run_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def _instantiate_all(group: DictConfig | None) -> list:
    if not group:
        return []
    return [hydra.utils.instantiate(c) for c in group.values() if c is not None and "_target_" in c]


def train_member(cfg: DictConfig) -> dict:
    """Train (or resume) one member; returns a small summary dict."""
    register_resolvers()
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / "checkpoints" / "final.ckpt"
    if final.exists() and (run_dir / "regimes.json").exists():
        log.info("member already complete: %s", final)
        print(f"member already complete; outputs in {run_dir}")
        return json.loads((run_dir / "regimes.json").read_text())

    runtime = cfg.get("runtime") or {}
    configure(threads=runtime.get("threads"), keep_memory=bool(runtime.get("keep_freed_memory", True)))  # logs it
    pl.seed_everything(int(cfg.seed), workers=True)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")
    with open_dict(cfg):
        if cfg.model.net.get("num_neighbors") is None:
            cfg.model.net.num_neighbors = datamodule.mean_neighbours
        # where the node PhDOS came from (dataset / ML potential + recipe), read back at predict time
        cfg.site_dos_provenance = getattr(datamodule, "site_dos_provenance", None)
    (run_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    member = datamodule.member
    (run_dir / "bootstrap.json").write_text(json.dumps({
        "seed": int(cfg.seed), "mode": datamodule.bootstrap,
        "train_ids": list(member.train_ids), "train_weights": [float(w) for w in member.weights],
        "val_ids": list(member.val_ids), "test_ids": datamodule.split_ids["test"],
        "statistics": datamodule.statistics()}, indent=1))

    model = hydra.utils.instantiate(cfg.model)
    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt_path = str(last) if last.exists() else None
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
        print(f"resuming from {ckpt_path}")
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    summary = json.loads((run_dir / "regimes.json").read_text())
    if cfg.get("test_after_fit", True) and datamodule.split_ids.get("test"):
        result = trainer.test(model, datamodule=datamodule, verbose=False)
        summary["test"] = result[0] if result else {}
        (run_dir / "regimes.json").write_text(json.dumps(summary, indent=2))
    print(f"member {cfg.seed} ({cfg.variant.name}) done: final weights = {summary['final_regime']}; "
          f"outputs in {run_dir}")
    return summary


def train_member_safely(cfg: DictConfig, in_sweep: bool) -> dict | None:
    """In a sweep a failing member is recorded in FAILED.txt and the sweep goes on; alone it raises."""
    try:
        return train_member(cfg)
    except Exception:
        if not in_sweep:
            raise
        run_dir = run_dir_of(cfg)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "FAILED.txt").write_text(traceback.format_exc())
        log.error("member seed=%s failed; see %s", cfg.seed, run_dir / "FAILED.txt")
        return None
