"""The run folder: its layout, the member fingerprint (which member a folder holds) and its lock."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
from betenet.config import compose
from betenet.training.run_dir import (MemberMismatch, RunDir, RunDirBusy, RunLock, fingerprint_differences,
                                      member_fingerprint)



def config(*overrides):
    return compose(["experiment=demo_tiny", "data.demo_size=12", *overrides])


@pytest.fixture(autouse=True)
def demo_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BETENET_CACHE", str(tmp_path / "cache"))


# --------------------------------------------------------------------------------------------
# layout
# --------------------------------------------------------------------------------------------
def test_layout_and_status(tmp_path):
    run = RunDir(tmp_path / "seed_0")
    assert run.status() is None and not run.is_run_dir()
    assert run.checkpoint("final") == run.final == tmp_path / "seed_0" / run.CHECKPOINTS / "final.ckpt"
    assert run.checkpoint("modern.ckpt") == run.checkpoint("modern")
    assert RunDir.of_checkpoint(run.last).path == run.path and RunDir.of_checkpoint(tmp_path / "x.ckpt") is None
    run.write_failed("Traceback ...\nRuntimeError: loss is NaN\n")
    assert run.status() == "failed" and run.failure() == "RuntimeError: loss is NaN"
    run.final.parent.mkdir(parents=True)
    run.final.write_bytes(b"")  # a final checkpoint that does not load is no finished member
    assert run.status() == "failed" and "unreadable checkpoint" in run.checkpoint_problem(run.FINAL)
    torch.save({"state_dict": {}}, run.final)
    assert run.status() == "complete" and run.checkpoint_problem(run.FINAL) is None
    run.write_rejected([("a", "file is empty")])
    assert run.read_rejected() == [{"id": "a", "reason": "file is empty"}]


# --------------------------------------------------------------------------------------------
# member fingerprint
# --------------------------------------------------------------------------------------------
def test_fingerprint_names_what_defines_a_member():
    fp = member_fingerprint(config())
    assert fp["seed"] == 0 and fp["variant"]["name"] == "cso" and fp["data"]["source"] == "demo"
    assert fp["data_fingerprint"].startswith("demo:") and fp["model"]["net"]["mul"] == 8
    assert "cache_dir" not in fp["data"] and "fused" not in fp["model"]["net"]
    # where caches live, how fast the network runs, how long training goes: the same member
    assert member_fingerprint(config("paths.cache_dir=/elsewhere", "model.net.fused=false",
                                     "trainer.max_epochs=7")) == fp
    other = member_fingerprint(config("seed=1", "variant=cpd"))
    diffs = fingerprint_differences(fp, other)
    assert "seed: 0 in the folder, 1 requested" in diffs
    assert 'variant.name: "cso" in the folder, "cpd" requested' in diffs
    assert fingerprint_differences(fp, member_fingerprint(config("model.loss.mse=0.5"))) == [
        "model.loss.mse: 1.0 in the folder, 0.5 requested"]


def test_directory_data_fingerprint_follows_the_files(tmp_path):
    data = tmp_path / "data"
    (data / "structures").mkdir(parents=True)
    (data / "structures" / "a.cif").write_text("x")
    fp = member_fingerprint(config("data=directory", f"data.root={data}"))
    moved = tmp_path / "moved"
    shutil.copytree(data, moved, copy_function=shutil.copy)  # same contents, new times: the same data
    assert member_fingerprint(config("data=directory", f"data.root={moved}")) == fp
    (data / "structures" / "a.cif").write_text("y")
    diffs = fingerprint_differences(fp, member_fingerprint(config("data=directory", f"data.root={data}")))
    assert len(diffs) == 1 and "the data's files changed" in diffs[0]


def test_demo_settings_define_only_demo_members(tmp_path):
    data = tmp_path / "data"
    (data / "structures").mkdir(parents=True)
    (data / "structures" / "a.cif").write_text("x")
    fp = member_fingerprint(config("data=directory", f"data.root={data}"))
    assert "demo_size" not in fp["data"] and "demo_seed" not in fp["data"]
    assert member_fingerprint(config())["data"]["demo_size"] == 12
    # a folder whose record still carries the demo settings of another source holds the same member
    run = RunDir(tmp_path / "run")
    run.write_member({**fp, "data": {**fp["data"], "demo_size": 300, "demo_seed": 0}}, ["Al"], "abc")
    run.check_member(fp)


def test_check_member_refuses_another_member(tmp_path):
    run = RunDir(tmp_path / "run")
    fp0 = member_fingerprint(config())
    run.check_member(fp0)  # an empty folder holds no member yet
    run.write_member(fp0, ["Al"], "abc")
    run.check_member(fp0)
    with pytest.raises(MemberMismatch) as err:
        run.check_member(member_fingerprint(config("seed=5", "variant=cpd")))
    msg = str(err.value)
    assert msg.startswith(str(run.path)) and "member.json" in msg and "seed: 0 in the folder, 5 requested" in msg
    assert "variant.name" in msg and "\n" not in msg
    # the fingerprint in a checkpoint counts too, even when member.json is gone
    run.file(run.MEMBER).unlink()
    run.last.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "betenet_member": fp0}, run.last)
    with pytest.raises(MemberMismatch, match="checkpoints/last.ckpt: seed: 0 in the folder, 1 requested"):
        run.check_member(member_fingerprint(config("seed=1")))


def test_folders_from_before_fingerprints_are_checked_by_their_config(tmp_path):
    run = RunDir(tmp_path / "old")
    run.last.parent.mkdir(parents=True)
    torch.save({"state_dict": {}}, run.last)  # a checkpoint without fingerprint
    with pytest.raises(MemberMismatch, match="no record of which member"):
        run.check_member(member_fingerprint(config()))
    run.write_config(config("model.net.num_neighbors=12.5", f"paths.output_dir={run.path}"))  # filled in
    run.check_member(member_fingerprint(config()))
    with pytest.raises(MemberMismatch, match=f"{run.CONFIG}: seed: 0 in the folder, 2 requested"):
        run.check_member(member_fingerprint(config("seed=2")))


def test_wandb_run_id_is_kept(tmp_path):
    run = RunDir(tmp_path / "run")
    first = run.wandb_run_id()
    run.write_member({"seed": 0}, None, first)
    assert run.wandb_run_id() == first and RunDir(tmp_path / "other").wandb_run_id() != first


# --------------------------------------------------------------------------------------------
# lock
# --------------------------------------------------------------------------------------------
def test_lock_is_exclusive_and_names_its_holder(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.lock():
        with pytest.raises(RunDirBusy) as err:
            run.lock().acquire()
        msg = str(err.value)
        assert msg.startswith(str(run.path)) and f"pid {os.getpid()}" in msg and "hydra.run.dir" in msg
    with run.lock():  # released on exit
        pass


HOLD = """
import sys, time
from betenet.training.run_dir import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    path = tmp_path / "run" / RunDir.LOCK
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(RunDirBusy, match=f"pid {proc.pid}"):
            RunLock(path).acquire()
    finally:
        proc.kill()  # SIGKILL: no clean-up, the lock file keeps its holder's record
        proc.wait()
    assert json.loads(path.read_text())["pid"] == proc.pid
    deadline = time.time() + 10
    while True:
        try:
            lock = RunLock(path).acquire()
            break
        except RunDirBusy:
            assert time.time() < deadline
            time.sleep(0.1)
    assert lock.stale["pid"] == proc.pid  # detected as stale and taken over
    lock.release()
    assert path.read_text() == ""


# --------------------------------------------------------------------------------------------
# RunDir is the only place that spells the run folder's file names
# --------------------------------------------------------------------------------------------
def test_only_run_dir_spells_the_run_folder_layout():
    import ast
    from pathlib import Path

    names = [RunDir.MEMBER, RunDir.CONFIG, RunDir.BOOTSTRAP, RunDir.REJECTED, RunDir.METRICS, RunDir.REGIMES,
             RunDir.FIGURE, RunDir.FAILED, RunDir.LOCK, "final.ckpt", "last.ckpt", f"{RunDir.CHECKPOINTS}/"]
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in sorted((root / "betenet").rglob("*.py")) + [root / "train.py"]:
        if path.name == "run_dir.py" or "dft" in path.parts:  # DFT work folders have their own layout
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                offenders += [f"{path.relative_to(root)}:{node.lineno}: {n}" for n in names
                              if n in node.value or node.value in ("checkpoints", "final", "last")]
    assert offenders == []


# --------------------------------------------------------------------------------------------
# finding run folders
# --------------------------------------------------------------------------------------------
def test_run_folders_are_found_at_any_depth(tmp_path):
    sweep = tmp_path / "sweep"
    done = RunDir(sweep / "cso" / "seed_10")
    done.final.parent.mkdir(parents=True)
    torch.save({"state_dict": {}}, done.final)
    RunDir(sweep / "cso" / "seed_2").write_failed("Traceback ...\nValueError: bad\n")
    RunDir(sweep / "fpd" / "a" / "seed_0").write_member({"seed": 0})
    (sweep / "wandb" / "offline-run-x").mkdir(parents=True)   # the sweep's own W&B folder: not a member
    (sweep / "cso" / "seed_10" / "wandb").mkdir()              # nothing inside a run folder is searched
    (sweep / "empty").mkdir()
    assert [r.path for r in RunDir.find(sweep)] == [sweep / "cso" / "seed_2", sweep / "cso" / "seed_10",
                                                    sweep / "fpd" / "a" / "seed_0"]
    assert RunDir.find(done.path) == [done] and RunDir.find(tmp_path / "missing") == []
    assert {r.path.relative_to(sweep).as_posix(): r.status() for r in RunDir.find(sweep)} == {
        "cso/seed_10": "complete", "cso/seed_2": "failed", "fpd/a/seed_0": "incomplete"}


def test_a_member_trained_before_new_default_settings_is_still_the_same_member():
    """Settings that gained a config entry later (phonons.max_atoms, model.loss.property_scales) at their
    default do not make an older folder's member 'another member'; a changed value does."""
    import copy

    from betenet.config import compose
    from betenet.training.run_dir import _comparable, fingerprint_differences, member_fingerprint

    now = member_fingerprint(compose(["experiment=jarvis_tc", "data.root=/nowhere"]), with_data_fingerprint=False)
    stored = copy.deepcopy(now)
    stored["data"]["phonons"].pop("max_atoms", None)
    stored["model"]["loss"].pop("property_scales", None)
    assert fingerprint_differences(_comparable(stored), now) == []
    changed = member_fingerprint(compose(["experiment=jarvis_tc", "data.root=/nowhere", "phonons.max_atoms=20",
                                          "model.loss.property_scales.tc_K=5"]), with_data_fingerprint=False)
    diffs = fingerprint_differences(_comparable(stored), changed)
    assert any("max_atoms" in d for d in diffs) and any("property_scales.tc_K" in d for d in diffs)
