"""The benchmark scripts run and print their result lines (benchmarks/*.py; figures: benchmarks/RESULTS.md).

Nothing is timed here: tiny inputs, checking only that each script works end to end and that its last
line carries the figure it promises.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(script, *args):
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *map(str, args)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res.stdout


def last_figure(out, name):
    match = re.fullmatch(rf"{name}=([0-9.]+)", out.strip().splitlines()[-1])
    assert match, out[-1000:]
    return float(match.group(1))


def test_epoch_time(structures_dir):
    out = run("epoch_time.py", "--structures", structures_dir, "--limit", 8, "--epochs", 2, "--threads", 1)
    assert "structures=8 " in out and "threads=1 keep_freed_memory=" in out
    assert last_figure(out, "seconds_per_epoch") > 0


def test_members_trains_two_members_side_by_side(structures_dir):
    out = run("members.py", "--structures", structures_dir, "--limit", 8, "--members", 2, "--epochs", 2,
              "--member-epochs", 1000)
    by_member = re.search(r"seconds_per_epoch_by_member=([0-9.,]+)", out).group(1).split(",")
    assert len(by_member) == 2
    per_hour = last_figure(out, "member_epochs_per_hour")
    assert per_hour == pytest.approx(sum(3600 / float(s) for s in by_member), rel=1e-2)
    members = float(re.search(r"members_per_hour=([0-9.]+) \(at 1000 epochs", out).group(1))
    assert members == pytest.approx(per_hour / 1000, rel=1e-2)


def test_inference(structures_dir):
    out = run("inference.py", "--structures", structures_dir, "--limit", 8, "--members", 2, "--threads", 1)
    match = re.search(r"with_graphs=([0-9.]+) without_graphs=([0-9.]+) warm=([0-9.]+) \(structures per second\)",
                      out.strip().splitlines()[-1])
    assert match and all(float(v) > 0 for v in match.groups()), out[-1000:]


def test_phonons_al_against_qe(qe_al_dir):
    pytest.importorskip("phonopy", reason="optional extra betenet[phonons] not installed")
    out = run("phonons.py", "al", "--qe", qe_al_dir, "--potentials", "emt")
    assert re.search(r"QE \(LDA, q 4\^3\): mean [0-9.]+ meV", out) and "emt fine 4x4x4: mean" in out
    assert last_figure(out, "mean_rel_err_emt") >= 0


def test_phonons_speed(structures_dir):
    pytest.importorskip("sevenn", reason="optional extra betenet[phonons] not installed")
    out = run("phonons.py", "speed", "--data", structures_dir.parent, "--limit", 2, "--threads", 1)
    assert "structures=2 " in out and "peak_rss_MB" in out
    assert last_figure(out, "median_seconds_per_structure") > 0


def test_phonons_compare_one_by_one_with_jobs(structures_dir):
    pytest.importorskip("sevenn", reason="optional extra betenet[phonons] not installed")
    out = run("phonons.py", "compare", "--data", structures_dir.parent, "--limit", 2, "--jobs", 2, "--threads", 1)
    assert "structures=2 " in out and "betenet phonons --jobs 2" in out and "same structures on both paths: 2" in out
    match = re.fullmatch(r"ratio=([0-9.]+) max_abs_bin_diff=([0-9.e+-]+)", out.strip().splitlines()[-1])
    assert match and float(match.group(1)) > 0, out[-1000:]
    assert float(match.group(2)) <= 1e-6  # one thread on both paths: the same numbers (rounding of labels.json)


def test_features(structures_dir):
    pytest.importorskip("sevenn")
    out = run("features.py", "--data", structures_dir.parent, "--limit", 3, "--threads", 1)
    assert "width=128" in out and "failed 0" in out
    assert last_figure(out, "median_seconds_per_structure") > 0


def test_screen_stage1_rate_and_memory(demo, structures_dir, tmp_path):
    out = run("screen.py", "--ensemble", demo.sweep("cso"), "--structures", structures_dir, "--sizes", 24, 48,
              "--chunk-size", 8, "--work", tmp_path, "--whole")
    lines = out.strip().splitlines()
    assert re.match(r"N=24 members=2 .* screen_rate=[0-9.]+ forward_rate=[0-9.]+ ratio=[0-9.]+ peak_rss_MB=\d+ "
                    r"whole_rate=", lines[-3]), out[-1000:]
    assert len(list((tmp_path / "pool_48").iterdir())) == 48
    assert re.fullmatch(r"rate_ratio=[0-9.]+ memory_ratio=[0-9.]+", lines[-1]), out[-1000:]
