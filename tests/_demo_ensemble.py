"""A tiny trained demo ensemble shared by the evaluation tests (not a test module).

``demo_ensembles()`` trains, once, two CSO and two CPD members with ``experiment=demo_tiny``
(40 synthetic structures, a narrow network, 25 epochs) through ``train.py -m`` and returns their
sweep folders. The result lives in the system temp folder under a key hashed from the training
code and configs, so every test file (and later sessions, until that code changes) reuses it; a
file lock keeps parallel test processes from training it twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from betenet.training.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("cso", "cpd")
SEEDS = (0, 1)
OVERRIDES = ["experiment=demo_tiny", f"variant={','.join(VARIANTS)}", f"seed={','.join(map(str, SEEDS))}",
             "hydra.sweep.subdir=${variant.name}/seed_${seed}"]


@dataclass(frozen=True)
class DemoEnsembles:
    root: Path
    cache: Path

    def sweep(self, variant: str) -> Path:
        return self.root / "sweep" / variant

    def run(self, variant: str, seed: int) -> Path:
        return self.sweep(variant) / f"seed_{seed}"

    @property
    def demo_dir(self) -> Path:
        """The generated demo dataset (directory format: structures/, labels.json)."""
        return next(p for p in self.cache.iterdir() if p.name.startswith("demo-") and (p / "labels.json").exists())


def _key() -> str:
    h = hashlib.sha256(" ".join(OVERRIDES).encode())
    files = [ROOT / "train.py"] + sorted((ROOT / "conf").rglob("*.yaml")) + sorted(
        p for sub in ("data", "models", "training", "physics") for p in (ROOT / "betenet" / sub).rglob("*.py"))
    for path in files:
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _prune(base: Path, keep: Path, max_age_s: float = 86400.0) -> None:
    """Remove ensembles of older code (keys) unused for a day; they are rebuilt if ever needed."""
    for other in base.iterdir():
        if other.is_dir() and other != keep and time.time() - other.stat().st_mtime > max_age_s:
            shutil.rmtree(other, ignore_errors=True)
            (base / f"{other.name}.lock").unlink(missing_ok=True)


def demo_ensembles() -> DemoEnsembles:
    base = Path(tempfile.gettempdir()) / "betenet-test-ensembles"
    base.mkdir(parents=True, exist_ok=True)
    root = base / _key()
    done = root / "COMPLETE"
    with open(base / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            cmd = [sys.executable, str(ROOT / "train.py"), "-m", *OVERRIDES, f"hydra.sweep.dir={root / 'sweep'}",
                   f"paths.cache_dir={root / 'cache'}"]
            env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1")
            res = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=900)
            ens = DemoEnsembles(root, root / "cache")
            missing = [str(ens.run(v, s)) for v in VARIANTS for s in SEEDS if not RunDir(ens.run(v, s)).is_complete()]
            if res.returncode != 0 or missing:
                raise RuntimeError(f"demo ensemble training failed (missing {missing}):\n"
                                   f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
            done.write_text("ok\n")
            _prune(base, root)
        os.utime(root)  # marks it as in use
    return DemoEnsembles(root, root / "cache")


def untrained_member(root: Path, overrides=()) -> Path:
    """A sweep folder under ``root`` with one untrained ``experiment=demo_tiny`` member (``seed_0``: its config,
    member record and final checkpoint; trained on "Nb" as far as the record says), for tests that need a loadable
    member, not a good one. ``overrides`` go to the config (e.g. ``variant=cpd``)."""
    import hydra
    import yaml
    from omegaconf import OmegaConf, open_dict

    from betenet.config import compose
    from betenet.training.checkpoints import save_member_checkpoint

    cfg = compose(["experiment=demo_tiny", *overrides, "data.demo_size=12", f"paths.cache_dir={root / 'cache'}"])
    with open_dict(cfg):
        cfg.model.net.num_neighbors = 8.0
    module = hydra.utils.instantiate(cfg.model)
    run = RunDir(root / "sweep" / "seed_0")
    run.checkpoint_dir.mkdir(parents=True)
    plain = {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
             for k in ("seed", "variant", "data", "model", "features")}
    run.file(run.CONFIG).write_text(yaml.safe_dump(plain))
    run.write_member({"seed": 0}, ["Nb"])
    save_member_checkpoint(run.final, module.state_dict(), dict(module.hparams), {"train_elements": ["Nb"]})
    return root / "sweep"


def copied_pool(demo: DemoEnsembles, folder: Path, n: int) -> Path:
    """``n`` structure files in ``folder``: the demo structures copied under new ids ``m0000``..., with
    ``m0050`` a broken CIF (a pool of inputs to predict or screen)."""
    sources = sorted((demo.demo_dir / "structures").glob("*.cif"))
    for k in range(n):
        shutil.copy(sources[k % len(sources)], folder / f"m{k:04d}.cif")
    (folder / "m0050.cif").write_text("data_broken\n_cell_length_a 3.0\n")
    return folder


def read_csv(path) -> list[dict]:
    """The rows of a CSV file as dicts."""
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
