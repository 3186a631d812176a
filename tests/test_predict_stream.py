"""Streaming, resumable `betenet predict` (issue 23): inputs read in chunks (folders, multi-structure
extxyz, ASE databases, list files), rows and spectra appended per chunk with the ids done, a run killed
half way (a subprocess, SIGKILL) and started again ends with the same files as one uninterrupted run
and says how many inputs it carried over."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _demo_ensemble import copied_pool, read_csv

from betenet.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pool(demo, tmp_path_factory):
    """120 structures: copies of the demo structures under new ids, plus one broken file."""
    return copied_pool(demo, tmp_path_factory.mktemp("pool"), 120)


def _predict(demo, inputs, out, *extra, json_out=True):
    return main(["predict", "--ensemble", str(demo.sweep("cso")), *map(str, inputs), "--out", str(out),
                 *map(str, extra), *(["--json"] if json_out else [])])


def test_killed_mid_pool_and_run_again_equals_one_uninterrupted_run(demo, pool, tmp_path, capsys):
    reference = tmp_path / "reference.csv"
    assert _predict(demo, [pool], reference, "--chunk-size", 4) == 0
    ref_summary = json.loads(capsys.readouterr().out)
    assert ref_summary["inputs"] == 120 and ref_summary["failed"] == 1 and ref_summary["carried_over"] == 0
    assert not (tmp_path / "reference.csv.partial").exists()  # removed once complete

    out = tmp_path / "pred.csv"
    partial = tmp_path / "pred.csv.partial"
    cmd = [sys.executable, "-m", "betenet.cli", "predict", "--ensemble", str(demo.sweep("cso")), str(pool),
           "--out", str(out), "--chunk-size", "4", "--threads", "1", "--json"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = 0
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                done = json.loads((partial / "manifest.json").read_text())["counts"]["inputs"]
            except (OSError, ValueError, KeyError):
                done = 0
            if done >= 12:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed; give it a larger pool"
        proc.send_signal(signal.SIGKILL)  # no clean-up at all
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists() and partial.is_dir()  # nothing final yet, the work so far kept
    # what a rerun carries over: the chunks the manifest records (ids.txt may hold one more, appended when the
    # process was killed before the manifest said so; a rerun cuts it off)
    done = json.loads((partial / "manifest.json").read_text())["counts"]["inputs"]
    assert 12 <= done < 120

    assert _predict(demo, [pool], out, "--chunk-size", 4) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["carried_over"] == done and summary["inputs"] == 120
    assert f"{summary['carried_over']} inputs carried over" in captured.err
    assert {k: summary[k] for k in ("predicted", "failed", "with_warnings")} == \
        {k: ref_summary[k] for k in ("predicted", "failed", "with_warnings")}
    assert out.read_bytes() == reference.read_bytes()
    assert out.with_suffix(".json").read_bytes() == reference.with_suffix(".json").read_bytes()
    assert not partial.exists()
    rows = read_csv(out)
    assert [r["id"] for r in rows] == [f"m{k:04d}" for k in range(120)]
    assert rows[50]["status"].startswith("cannot read structure")


def test_a_different_run_into_the_same_out_starts_afresh(demo, pool, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    partial = tmp_path / "pred.csv.partial"
    partial.mkdir()
    (partial / "manifest.json").write_text(json.dumps({"version": 1, "fingerprint": "another run", "counts": {},
                                                       "bytes": {}}))
    (partial / "ids.txt").write_text("m0000\n")
    assert _predict(demo, [pool / "m0000.cif", pool / "m0001.cif"], out) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["carried_over"] == 0 and summary["predicted"] == 2
    assert [r["id"] for r in read_csv(out)] == ["m0000", "m0001"]


def test_multi_structure_extxyz_database_and_list_file(demo, pool, tmp_path, capsys):
    from ase.db import connect
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    from betenet.data.structures import load_structure

    structures = [load_structure(pool / f"m{k:04d}.cif") for k in range(3)]
    atoms = [AseAtomsAdaptor.get_atoms(s) for s in structures]
    write(tmp_path / "many.extxyz", atoms, format="extxyz")
    with connect(tmp_path / "pool.db") as db:
        for a in atoms[:2]:
            db.write(a)
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# the first two, by path and by glob\n{pool / 'm0000.cif'}\n\n{pool}/m000[1].cif\n")
    out = tmp_path / "pred.csv"
    assert _predict(demo, [tmp_path / "many.extxyz", tmp_path / "pool.db", listing], out, "--chunk-size", 2) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["inputs"] == 7 and summary["predicted"] == 7
    rows = read_csv(out)
    assert [r["id"] for r in rows] == ["many:0", "many:1", "many:2", "pool:1", "pool:2", "m0000", "m0001"]
    by_id = {r["id"]: r for r in rows}
    for frame, plain in (("many:0", "m0000"), ("many:1", "m0001"), ("pool:2", "m0001")):
        assert float(by_id[frame]["lambda"]) == pytest.approx(float(by_id[plain]["lambda"]), rel=1e-5)
    spectra = json.loads(out.with_suffix(".json").read_text())
    assert [e["id"] for e in spectra["entries"]] == [r["id"] for r in rows]


def test_memory_does_not_hold_the_pool(demo, pool, tmp_path, monkeypatch):
    """Each chunk is built, predicted and appended before the next one is read: at most chunk-size
    structures are read at a time."""
    import betenet.inference.inputs as inputs
    from betenet.inference import load_ensemble
    from betenet.inference.predict import predict_files

    sizes = []
    real = inputs.build_rows
    monkeypatch.setattr(inputs, "build_rows", lambda items, *a, **k: sizes.append(len(items)) or real(items, *a, **k))
    done = predict_files(load_ensemble(demo.sweep("cso")), [pool], tmp_path / "p.csv", chunk_size=16)
    assert max(sizes) == 16 and sum(sizes) == 120 and done.summary["inputs"] == 120
    assert len(done.table) == 20  # the preview's rows, not the pool
