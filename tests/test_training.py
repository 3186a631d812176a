"""train.py end to end with short runs: a demo member, resume after kill, a 2-member submitit_local
sweep, a failing member in a sweep, and mixed supervision on a dataset that carries only `tc_K`."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DEMO_N = 40
COMMON = ["experiment=demo", f"data.demo_size={DEMO_N}", "logger=csv", "trainer.enable_progress_bar=false",
          "test_after_fit=false"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache")
    from betenet.data.sources.demo import load_demo_dataset

    load_demo_dataset(path, n=DEMO_N)
    return path


def train(args, cwd, env=None, wait=True, timeout=600):
    cmd = [sys.executable, str(ROOT / "train.py"), *args]
    env = dict(os.environ, WANDB_MODE="disabled", **(env or {}))
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def read_metrics(run):
    with open(run / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_demo_member_trains_and_writes_its_outputs(cache, tmp_path):
    run = tmp_path / "run"
    res = train(COMMON + [f"paths.cache_dir={cache}", f"hydra.run.dir={run}", "trainer.max_epochs=60",
                          "test_after_fit=true", "runtime.threads=1"], cwd=tmp_path)
    assert str(run) in res.stdout
    assert "runtime: 1 torch threads" in res.stdout
    for name in ("metrics.csv", "double_descent.png", "config_resolved.yaml", "bootstrap.json",
                 "regimes.json", "checkpoints/final.ckpt", "checkpoints/classical.ckpt"):
        assert (run / name).exists(), name
    rows = read_metrics(run)
    assert len(rows) == 60 and {"epoch", "train_loss", "val_loss"} <= set(rows[0])
    val = [float(r["val_loss"]) for r in rows]
    train_loss = [float(r["train_loss"]) for r in rows]
    assert min(val) < 0.95 * val[0], "validation loss did not fall"
    assert train_loss[-1] < 0.2 * train_loss[0], "training loss did not fall"
    ckpt = torch.load(run / "checkpoints" / "final.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["net"]["num_neighbors"] > 1
    info = json.loads((run / "regimes.json").read_text())
    assert "test" in info and info["final_regime"] in ("modern", "best")
    boot = json.loads((run / "bootstrap.json").read_text())
    assert abs(sum(boot["train_weights"]) - len(boot["train_ids"]) - len(boot["val_ids"])) < 1e-9


def test_resume_after_kill_matches_uninterrupted_run(cache, tmp_path):
    args = COMMON + [f"paths.cache_dir={cache}", "trainer.max_epochs=24", "callbacks.last_checkpoint.every_n_epochs=1",
                     "data.demo_size=40"]
    full = tmp_path / "full"
    train(args + [f"hydra.run.dir={full}"], cwd=tmp_path)

    killed = tmp_path / "killed"
    proc = train(args + [f"hydra.run.dir={killed}"], cwd=tmp_path, wait=False)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while time.time() < deadline:
        if last.exists() and len(read_metrics(killed)) >= 8:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "checkpoints" / "final.ckpt").exists(), "run finished before it could be killed"
    res = train(args + [f"hydra.run.dir={killed}"], cwd=tmp_path)
    assert "resuming from" in res.stdout

    a, b = read_metrics(full), read_metrics(killed)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    for ra, rb in zip(a, b):
        assert float(ra["val_loss"]) == pytest.approx(float(rb["val_loss"]), rel=1e-5, abs=1e-9)
    sa = torch.load(full / "checkpoints" / "final.ckpt", weights_only=True)["state_dict"]
    sb = torch.load(killed / "checkpoints" / "final.ckpt", weights_only=True)["state_dict"]
    for key in sa:
        assert torch.allclose(sa[key], sb[key], rtol=1e-5, atol=1e-7), key


def test_two_member_sweep_with_submitit_local(cache, tmp_path):
    res = train(COMMON + [f"paths.cache_dir={cache}", "trainer.max_epochs=5", "seed=0,1",
                          "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=20",
                          f"hydra.sweep.dir={tmp_path / 'sweep'}", "-m"], cwd=tmp_path)
    sweep = tmp_path / "sweep"
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["complete"] == ["seed_0", "seed_1"], res.stdout[-2000:]
    assert (sweep / "double_descent_overlay.png").stat().st_size > 0
    ids0 = json.loads((sweep / "seed_0" / "bootstrap.json").read_text())["train_ids"]
    ids1 = json.loads((sweep / "seed_1" / "bootstrap.json").read_text())["train_ids"]
    assert ids0 != ids1


def test_failed_member_does_not_stop_the_sweep(cache, tmp_path):
    # job 1 uses a 0.5 Å cutoff: every atom is isolated, no entry is usable, the member fails;
    # its failure is recorded and job 0 still completes
    train(COMMON + [f"paths.cache_dir={cache}", "trainer.max_epochs=3", "model.net.r_max=4.0,0.5",
                    "hydra.sweep.subdir=job${hydra:job.num}", f"hydra.sweep.dir={tmp_path / 'sweep'}", "-m"],
          cwd=tmp_path)
    summary = json.loads((tmp_path / "sweep" / "sweep_summary.json").read_text())
    assert summary["complete"] == ["job0"] and summary["failed"] == ["job1"]
    assert "no usable entries" in (tmp_path / "sweep" / "job1" / "FAILED.txt").read_text()


def test_mixed_supervision_with_only_tc_labels(cache, tmp_path):
    from betenet.data.sources.demo import load_demo_dataset
    from betenet.data.sources.directory import load_directory

    demo = load_demo_dataset(cache, n=DEMO_N)
    data = tmp_path / "tc_only"
    shutil.copytree(demo / "structures", data / "structures")
    entries = load_directory(demo).entries
    rows = [{"id": e.id, "tc_K": e.labels["tc_K"]} for e in entries]
    (data / "labels.json").write_text(json.dumps(rows))
    run = tmp_path / "run"
    train(COMMON + [f"paths.cache_dir={tmp_path / 'c'}", "data=directory", f"data.root={data}",
                    "model.loss.mse=0", "model.loss.properties.tc_K=1.0", "trainer.max_epochs=25",
                    f"hydra.run.dir={run}"], cwd=tmp_path)
    metrics = read_metrics(run)
    assert "val_mae_tc_K" in metrics[0] and "val_mae_lambda" not in metrics[0]
    losses = [float(r["train_loss"]) for r in metrics]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert min(losses[-5:]) < losses[0], "Tc-only supervision did not reduce the training loss"
    boot = json.loads((run / "bootstrap.json").read_text())
    assert boot["statistics"]["with_a2f"] == 0 and boot["statistics"]["reported_tc_K"] == DEMO_N


def test_wandb_logs_offline_without_api_key(cache, tmp_path):
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}
    cmd = [sys.executable, str(ROOT / "train.py"), "experiment=demo", f"data.demo_size={DEMO_N}",
           "trainer.enable_progress_bar=false", "test_after_fit=false", "trainer.max_epochs=2",
           f"paths.cache_dir={cache}", f"hydra.run.dir={run}"]
    res = subprocess.run(cmd, cwd=tmp_path, env=env | {"WANDB_SILENT": "true"}, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and any(offline[0].rglob("*.wandb"))
    assert (run / "csv" / "metrics.csv").exists()
