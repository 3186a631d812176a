"""train.py end to end with short runs: a demo member, resume after kill, a 2-member submitit_local
sweep, a failing member in a sweep, mixed supervision on a dataset that carries only `tc_K`, and the
run folder's guards: it knows its member, it is locked while a training runs, it keeps one complete
metrics log and one W&B run id across resumes, and records the entries the data left out."""

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

from betenet.training.run_dir import RunDir
from _wandb_offline import recorded

ROOT = Path(__file__).resolve().parents[1]
DEMO_N = 40
COMMON = ["experiment=demo", f"data.demo_size={DEMO_N}", "logger=csv", "trainer.enable_progress_bar=false",
          "test_after_fit=false"]
#: The same for data=directory (the demo generator's settings exist only for data=demo).
ON_DIRECTORY = [a for a in COMMON if not a.startswith("data.demo_")]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache")
    from betenet.data.sources.demo import load_demo_dataset

    load_demo_dataset(path, n=DEMO_N)
    return path


def train(args, cwd, env=None, wait=True, timeout=600, check=True, entry=(str(ROOT / "train.py"),)):
    cmd = [sys.executable, *entry, *args]
    env = dict(os.environ, WANDB_MODE="disabled", **(env or {}))
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def read_metrics(run):
    with open(RunDir(run).metrics) as fh:
        return list(csv.DictReader(fh))


def snapshot(folder: Path) -> dict:
    """Every file of a run folder (the lock file aside) with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != RunDir.LOCK}


def as_if_killed(run: RunDir) -> None:
    """Remove what only the end of training writes: the folder is then that of a run killed after its
    last checkpoint."""
    run.final.unlink()
    run.file(run.REGIMES).unlink()


def test_demo_member_trains_and_writes_its_outputs(cache, tmp_path):
    run = tmp_path / "run"
    res = train(COMMON + [f"paths.cache_dir={cache}", f"hydra.run.dir={run}", "trainer.max_epochs=60",
                          "test_after_fit=true", "runtime.threads=1"], cwd=tmp_path)
    assert str(run) in res.stdout
    assert "runtime: 1 torch threads" in res.stdout
    rd = RunDir(run)
    for path in (rd.metrics, rd.figure, rd.file(rd.CONFIG), rd.file(rd.BOOTSTRAP), rd.file(rd.REGIMES),
                 rd.file(rd.MEMBER), rd.file(rd.REJECTED), rd.final, rd.checkpoint("classical")):
        assert path.exists(), path
    member = rd.read_member()
    assert member["fingerprint"]["seed"] == 0 and member["train_elements"] == rd.read_bootstrap()["train_elements"]
    assert torch.load(rd.final, weights_only=True)["betenet"]["member"] == member["fingerprint"]
    rows = read_metrics(run)
    assert len(rows) == 60 and {"epoch", "train_loss", "val_loss"} <= set(rows[0])
    val = [float(r["val_loss"]) for r in rows]
    train_loss = [float(r["train_loss"]) for r in rows]
    assert min(val) < 0.95 * val[0], "validation loss did not fall"
    assert train_loss[-1] < 0.2 * train_loss[0], "training loss did not fall"
    ckpt = torch.load(rd.final, weights_only=True)
    assert ckpt["hyper_parameters"]["net"]["num_neighbors"] > 1
    info = rd.read_regimes()
    assert "test" in info and info["final_regime"] in ("modern", "best")
    boot = rd.read_bootstrap()
    assert abs(sum(boot["train_weights"]) - len(boot["train_ids"]) - len(boot["val_ids"])) < 1e-9
    # the closing summary, printed and kept in member.json, in physical units
    result = rd.read_member_result()
    assert result["kept_epoch"] == info["kept_epoch"]
    assert result["regime_reached"] in ("classical", "critical", "modern")
    assert {"lambda", "omega_log_K", "tc_K"} <= set(result["out_of_bag"]["mae"]) <= set(result["test"]["mae"])
    assert result["test"]["entries"] == len(boot["test_ids"])
    assert result["out_of_bag"]["entries"] == len(boot["val_ids"])
    assert info["test"]["test_mae_tc_K"] == pytest.approx(result["test"]["mae"]["tc_K"])
    out = res.stdout
    assert f"member 0 (cso) done: kept the weights of epoch {result['kept_epoch']}, " in out
    assert "regime reached: " in out and "why: " in out
    test_row = next(line for line in out.splitlines() if line.startswith("  test "))
    assert f"{result['test']['mae']['tc_K']:.3g}" in test_row and f"({len(boot['test_ids'])} entries)" in test_row


def test_the_installed_entry_trains_from_any_folder(cache, tmp_path):
    """`python -m betenet.train` finds the shipped configuration (betenet.conf) outside the repository."""
    away = tmp_path / "elsewhere"
    away.mkdir()
    res = train(["experiment=demo_tiny", "trainer.max_epochs=2", f"paths.cache_dir={cache}", "data.demo_size=40"],
                cwd=away, entry=("-m", "betenet.train"))
    run = RunDir(away / "outputs" / "demo_tiny" / "cso" / "seed_0")
    assert run.is_complete(), res.stdout[-2000:]
    assert [r["epoch"] for r in read_metrics(run.path)] == ["0", "1"]


def test_resume_after_kill_matches_uninterrupted_run(cache, tmp_path):
    args = COMMON + [f"paths.cache_dir={cache}", "trainer.max_epochs=24", "callbacks.last_checkpoint.every_n_epochs=1",
                     "data.demo_size=40"]
    full = tmp_path / "full"
    train(args + [f"hydra.run.dir={full}"], cwd=tmp_path)

    killed = tmp_path / "killed"
    proc = train(args + [f"hydra.run.dir={killed}"], cwd=tmp_path, wait=False)
    last = RunDir(killed).last
    deadline = time.time() + 300
    while time.time() < deadline:
        if last.exists() and RunDir(killed).metrics.exists() and len(read_metrics(killed)) >= 8:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not RunDir(killed).final.exists(), "run finished before it could be killed"
    res = train(args + [f"hydra.run.dir={killed}"], cwd=tmp_path)
    assert "resuming from" in res.stdout

    a, b = read_metrics(full), read_metrics(killed)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b] == [str(e) for e in range(24)]  # one complete log
    assert not (killed / "csv").exists()  # no second, partial CSV log
    for ra, rb in zip(a, b):
        assert float(ra["val_loss"]) == pytest.approx(float(rb["val_loss"]), rel=1e-5, abs=1e-9)
    sa = torch.load(RunDir(full).final, weights_only=True)["state_dict"]
    sb = torch.load(RunDir(killed).final, weights_only=True)["state_dict"]
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
    ids0 = RunDir(sweep / "seed_0").read_bootstrap()["train_ids"]
    ids1 = RunDir(sweep / "seed_1").read_bootstrap()["train_ids"]
    assert ids0 != ids1


def test_failed_member_does_not_stop_the_sweep(cache, tmp_path):
    # job 1 uses a 0.5 Å cutoff: every atom is isolated, no entry is usable, the member fails;
    # its failure is recorded, job 0 still completes, and the command says so and exits 1
    res = train(COMMON + [f"paths.cache_dir={cache}", "trainer.max_epochs=3", "data.r_max=4.0,0.5",
                          "hydra.sweep.subdir=job${hydra:job.num}", f"hydra.sweep.dir={tmp_path / 'sweep'}", "-m"],
                cwd=tmp_path, check=False)
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((tmp_path / "sweep" / "sweep_summary.json").read_text())
    assert summary["complete"] == ["job0"] and summary["failed"] == ["job1"]
    assert "no usable entries" in RunDir(tmp_path / "sweep" / "job1").failure()
    assert f"sweep {tmp_path / 'sweep'}: 1 complete, 1 failed/refused (1 failed)" in res.stdout
    failed = next(line for line in res.stdout.splitlines() if line.lstrip().startswith("failed"))
    assert "job1 (data.r_max=0.5)" in failed and "no usable entries" in failed


def test_a_refused_member_is_counted_and_the_sweep_exits_non_zero(cache, tmp_path):
    """Two seeds per variant into one folder per variant: seed 1 finds seed 0's folder and is refused.
    The summary counts it (not what lies on disk), says why, groups by variant, and the command exits 1."""
    sweep = tmp_path / "sweep"
    res = train(COMMON + [f"paths.cache_dir={cache}", "trainer.max_epochs=2", "variant=cso,cpd", "seed=0,1",
                          f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${variant.name}", "-m"],
                cwd=tmp_path, check=False)
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["counts"] == {"complete": 2, "failed": 0, "refused": 2, "incomplete": 0}
    assert summary["complete"] == ["cso", "cpd"] and summary["refused"] == ["cso", "cpd"]
    for variant in ("cso", "cpd"):
        assert summary["by_variant"][variant]["counts"] == {"complete": 1, "failed": 0, "refused": 1, "incomplete": 0}
    refused = [j for j in summary["jobs"] if j["state"] == "refused"]
    assert [j["seed"] for j in refused] == [1, 1] and all("holds another member" in j["reason"] for j in refused)
    out = res.stdout
    assert f"sweep {sweep}: 2 complete, 2 failed/refused (2 refused)" in out
    assert "  cpd: 1 complete, 1 refused" in out and "  cso: 1 complete, 1 refused" in out
    assert "refused    cso (variant=cso seed=1): " in out
    assert (sweep / "double_descent_overlay.png").stat().st_size > 0


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
    res = train(ON_DIRECTORY + [f"paths.cache_dir={tmp_path / 'c'}", "data=directory", f"data.root={data}",
                                "model.loss.mse=0", "model.loss.properties.tc_K=1.0", "trainer.max_epochs=25",
                                "test_after_fit=true", f"hydra.run.dir={run}"], cwd=tmp_path)
    metrics = read_metrics(run)
    assert "val_mae_tc_K" in metrics[0] and "val_mae_lambda" not in metrics[0]
    # the closing summary reports Tc only: λ and ω_log were never known
    result = RunDir(run).read_member_result()
    assert set(result["out_of_bag"]["mae"]) == set(result["test"]["mae"]) == {"tc_K"}
    header = next(line for line in res.stdout.splitlines() if line.startswith("  MAE "))
    assert header.split() == ["MAE", "Tc", "(K)"]
    losses = [float(r["train_loss"]) for r in metrics]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert min(losses[-5:]) < losses[0], "Tc-only supervision did not reduce the training loss"
    boot = RunDir(run).read_bootstrap()
    assert boot["statistics"]["with_a2f"] == 0 and boot["statistics"]["reported_tc_K"] == DEMO_N


def test_wandb_logs_offline_and_a_resumed_member_keeps_its_run_id(cache, tmp_path):
    run = RunDir(tmp_path / "run")
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}
    cmd = [sys.executable, str(ROOT / "train.py"), "experiment=demo", f"data.demo_size={DEMO_N}",
           "trainer.enable_progress_bar=false", "test_after_fit=false", "callbacks.last_checkpoint.every_n_epochs=1",
           f"paths.cache_dir={cache}", f"hydra.run.dir={run.path}"]
    for epochs in (2, 4):
        res = subprocess.run(cmd + [f"trainer.max_epochs={epochs}"], cwd=tmp_path,
                             env=env | {"WANDB_SILENT": "true"}, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        if epochs == 2:
            as_if_killed(run)  # the second command resumes from last.ckpt
    assert "resuming from" in res.stdout
    run_id = run.read_member()["wandb_run_id"]
    offline = sorted((run.path / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(p.name.endswith(f"-{run_id}") for p in offline)  # one run id, resumed
    assert any(offline[0].rglob("*.wandb"))
    assert [r["epoch"] for r in read_metrics(run.path)] == ["0", "1", "2", "3"]
    assert not (run.path / "csv").exists()  # metrics.csv is the one metrics log
    # the science in the run: dataset in the config, regimes and final choice in the summary, the figure
    record = recorded(offline[-1])
    regimes = run.read_regimes()
    assert record["config"]["dataset"]["rejected"] == len(run.read_rejected())
    assert record["config"]["dataset"]["graphs"] == DEMO_N - len(run.read_rejected())
    summary = record["summary"]
    assert summary["final_regime"] == regimes["final_regime"] and summary["final_reason"] == regimes["final_reason"]
    for regime, rec in regimes["regimes"].items():
        assert summary[f"regime/{regime}_epoch"] == rec["epoch"]
        assert summary[f"regime/{regime}_val_loss_smoothed"] == pytest.approx(rec["value"])
    assert summary["double_descent/_type"] == "images/separated"
    assert list((offline[-1] / "files" / "media" / "images").glob("double_descent_*.png"))
    # the whole resolved config, so runs filter by any setting
    config = record["config"]
    assert config["seed"] == 0 and config["variant"]["name"] == "cso" and config["name"] == "demo"
    assert config["data"]["demo_size"] == DEMO_N and "root" in config["data"] and "bootstrap" in config["data"]
    assert config["trainer"]["max_epochs"] == 4 and config["callbacks"]["tempering"]["patience"] == 300
    assert list(record["run"].tags) == ["variant:cso", "experiment:demo", "features:none"]
    assert record["run"].run_group == "demo-cso" and record["run"].job_type == "member"
    # the summary holds the kept weights' values, not the last epoch's
    result = run.read_member_result()
    kept_row = next(r for r in read_metrics(run.path) if int(r["epoch"]) == result["kept_epoch"])
    assert summary["kept_epoch"] == result["kept_epoch"] == regimes["kept_epoch"]
    assert summary["val_loss"] == pytest.approx(float(kept_row["val_loss"]))
    assert summary["val_mae_tc_K"] == pytest.approx(float(kept_row["val_mae_tc_K"]))
    assert summary["regime_reached"] == result["regime_reached"]
    # the final checkpoint and its records as an artifact
    assert (f"demo-cso-seed0-{run.final.stem}", "model",
            sorted([run.final.name, RunDir.CONFIG, RunDir.REGIMES, RunDir.MEMBER])) in \
        [(name, kind, sorted(paths)) for name, kind, paths in record["artifacts"]]


def test_the_checkpoint_artifact_can_be_left_out(cache, tmp_path):
    run = RunDir(tmp_path / "run")
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"} | {"WANDB_SILENT": "true"}
    res = subprocess.run([sys.executable, str(ROOT / "train.py"), "experiment=demo_tiny", "logger=wandb",
                          f"data.demo_size={DEMO_N}", f"paths.cache_dir={cache}", "trainer.max_epochs=2",
                          "logger.wandb.checkpoint_artifact=false", f"hydra.run.dir={run.path}"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    (offline,) = (run.path / "wandb").glob("offline-run-*")
    record = recorded(offline)
    assert record["artifacts"] == [] and record["summary"]["kept_epoch"] == run.read_regimes()["kept_epoch"]


def test_a_nested_sweep_is_summarised_and_each_wandb_group_gets_its_overlay(cache, tmp_path):
    """README's screening layout (hydra.sweep.subdir=${variant.name}/seed_${seed}): the summary finds
    the members at depth, and each variant's W&B group gets a summary run with its overlay artifact."""
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"} | {"WANDB_SILENT": "true"}
    sweep = tmp_path / "sweep"
    res = subprocess.run([sys.executable, str(ROOT / "train.py"), "experiment=demo_tiny", "logger=default",
                          f"data.demo_size={DEMO_N}", f"paths.cache_dir={cache}", "trainer.max_epochs=3",
                          "variant=cso,cpd", "seed=0", f"hydra.sweep.dir={sweep}",
                          "hydra.sweep.subdir=${variant.name}/seed_${seed}", "-m"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 complete, 0 failed/refused" in res.stdout
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["counts"] == {"complete": 2, "failed": 0, "refused": 0, "incomplete": 0}
    assert summary["complete"] == ["cso/seed_0", "cpd/seed_0"]
    assert {v: t["complete"] for v, t in summary["by_variant"].items()} == {"cpd": ["cpd/seed_0"],
                                                                            "cso": ["cso/seed_0"]}
    groups = {}
    for folder in (sweep / "wandb").glob("offline-run-*"):
        record = recorded(folder)
        groups[record["run"].run_group] = record
        assert record["run"].job_type == "sweep-summary"
        assert record["artifacts"] == [(f"{record['run'].run_group}-sweep", "sweep-summary",
                                        ["double_descent_overlay.png", "sweep_summary.json"])]
        assert record["summary"]["members_complete"] == 1
    assert sorted(groups) == ["demo_tiny-cpd", "demo_tiny-cso"]


# --------------------------------------------------------------------------------------------
# The run folder knows its member, is locked while in use, records rejected entries
# --------------------------------------------------------------------------------------------
def test_a_run_folder_resumes_or_completes_only_its_own_member(cache, tmp_path):
    run = RunDir(tmp_path / "x")
    args = COMMON + [f"paths.cache_dir={cache}", f"hydra.run.dir={run.path}", "trainer.max_epochs=4",
                     "callbacks.last_checkpoint.every_n_epochs=1"]
    train(args + ["seed=0"], cwd=tmp_path)
    as_if_killed(run)
    before = snapshot(run.path)
    res = train(args + ["seed=1"], cwd=tmp_path, check=False)
    assert res.returncode == 2 and "resuming" not in res.stdout
    assert f"{run.path}: this run folder holds another member" in res.stderr
    assert "seed: 0 in the folder, 1 requested" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert snapshot(run.path) == before  # nothing written
    assert "resuming from" in train(args + ["seed=0"], cwd=tmp_path).stdout  # its own member resumes
    assert run.is_complete()
    before = snapshot(run.path)
    res = train(args + ["seed=5", "variant=cpd"], cwd=tmp_path, check=False)
    assert res.returncode == 2 and "already complete" not in res.stdout
    assert "seed: 0 in the folder, 5 requested" in res.stderr and 'variant.name: "cso" in the folder' in res.stderr
    assert snapshot(run.path) == before
    res = train(args + ["seed=0"], cwd=tmp_path)
    assert "member already complete" in res.stdout
    assert "regime reached: " in res.stdout and "out-of-bag " in res.stdout  # what it reached, shown again


def truncate(path: Path) -> None:
    """Cut a file in half, as a full disk or a copy cut short leaves it."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_checkpoint_that_does_not_load_is_set_aside_and_the_member_trains_again(cache, tmp_path):
    """A truncated final.ckpt is no complete member, and a truncated last.ckpt no point to resume from
    (it was warned about, then resumed from: an OSError traceback): each is moved aside with a line
    saying so, and the member trains again to a final checkpoint that loads."""
    run = RunDir(tmp_path / "x")
    args = COMMON + [f"paths.cache_dir={cache}", f"hydra.run.dir={run.path}", "trainer.max_epochs=3",
                     "callbacks.last_checkpoint.every_n_epochs=1"]
    train(args, cwd=tmp_path)
    truncate(run.final)
    truncate(run.last)
    assert not run.is_complete() and run.status() == "incomplete"
    res = train(args, cwd=tmp_path)
    assert "already complete" not in res.stdout and "resuming from" not in res.stdout
    assert f"{run.final} does not load (unreadable checkpoint" in res.stdout
    assert "the member is not complete and trains again" in res.stdout
    assert f"{run.last} does not load" in res.stdout and "training starts again from the first epoch" in res.stdout
    assert run.is_complete() and run.checkpoint_problem(run.LAST) is None
    assert [r["epoch"] for r in read_metrics(run.path)] == ["0", "1", "2"]
    truncate(run.final)  # the resume checkpoint is fine: the member resumes from it and completes
    res = train(args, cwd=tmp_path)
    assert "the member is not complete and trains again" in res.stdout and "resuming from" in res.stdout
    assert run.is_complete()


def test_a_second_training_of_a_busy_folder_stops_and_touches_nothing(cache, tmp_path):
    run = RunDir(tmp_path / "busy")
    args = COMMON + [f"paths.cache_dir={cache}", f"hydra.run.dir={run.path}", "runtime.threads=1",
                     "callbacks.last_checkpoint.every_n_epochs=1", "callbacks.tempering.patience=100000"]
    first = train(args + ["trainer.max_epochs=100000"], cwd=tmp_path, wait=False)
    try:
        deadline = time.time() + 300
        while not run.last.exists():
            assert time.time() < deadline and first.poll() is None, "first training did not checkpoint"
            time.sleep(0.2)
        res = train(args + ["trainer.max_epochs=3"], cwd=tmp_path, check=False)
        assert res.returncode == 2
        assert f"{run.path}: another training is using this run folder (pid {first.pid}" in res.stderr
        assert "max_epochs=3" not in (run.path / RunDir.HYDRA / "overrides.yaml").read_text()
        assert (run.path / "train.log").read_text().count("runtime: ") == 1  # the second never started
        assert not run.final.exists() and run.failure() is None
    finally:
        first.kill()  # SIGKILL: the lock file keeps the dead holder's record
        first.wait()
    assert json.loads(run.file(run.LOCK).read_text())["pid"] == first.pid
    epoch = torch.load(run.last, weights_only=True)["epoch"]
    res = train(args + [f"trainer.max_epochs={epoch + 3}"], cwd=tmp_path)  # a stale lock does not block
    assert "resuming from" in res.stdout and run.is_complete()
    assert [int(r["epoch"]) for r in read_metrics(run.path)] == list(range(epoch + 3))


def test_rejections_and_the_users_split_reach_every_run_folder(cache, tmp_path):
    from betenet.data.sources.demo import load_demo_dataset

    demo = load_demo_dataset(cache, n=DEMO_N)
    data = tmp_path / "data"
    shutil.copytree(demo / "structures", data / "structures")
    shutil.copy(demo / "labels.json", data / "labels.json")
    (data / "structures" / "broken.cif").write_text("")
    ids = sorted(p.stem for p in demo.joinpath("structures").glob("*.cif"))
    (data / "splits.json").write_text(json.dumps({"train": ids[:30], "test": []}))
    for name in ("a", "b"):  # b reads the graph cache a built
        run = RunDir(tmp_path / name)
        res = train(ON_DIRECTORY + [f"paths.cache_dir={tmp_path / 'c'}", "data=directory", f"data.root={data}",
                              "trainer.max_epochs=2", f"hydra.run.dir={run.path}"], cwd=tmp_path)
        assert "rejected broken: structures/broken.cif: file is empty" in res.stdout
        assert run.read_rejected() == [{"id": "broken", "reason": "structures/broken.cif: file is empty"}]
        boot = run.read_bootstrap()
        assert boot["test_ids"] == [] and set(boot["train_ids"]) | set(boot["val_ids"]) == set(ids[:30])
        assert f"{DEMO_N - 30} entries are in no split" in res.stdout
