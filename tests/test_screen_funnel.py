"""`betenet screen` on unlabelled structures (issue 23): the funnel in one command (a demo-trained CSO ensemble
ranks the pool, the top fraction gets its coarse PhDOS from the phonons engine, here with ASE's EMT, and the
demo CPD ensemble ranks those again; every input that drops out has its reason), streaming and resumable
(a subprocess killed mid-pool and run again ends with the files of one uninterrupted run and says how many
inputs it carried over), `--cluster local` (the submitit job array) giving the same files, and a reused
`--out` never keeping another run's `candidates_stage2.csv`."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _demo_ensemble import copied_pool, read_csv
from pymatgen.core import Lattice, Structure

from betenet.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
EMT_ELEMENTS = {"Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt"}
FINAL = ("candidates_stage1.csv", "candidates_stage2.csv", "dropped.csv", "stage1/predictions.csv",
         "stage1/predictions.json", "stage2/predictions.csv", "stage2/predictions.json")


def screen(capsys, *argv):
    code = main(["screen", *map(str, argv), "--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def fcc(symbol, a):
    return Structure(Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]), [symbol], [[0, 0, 0]])


@pytest.fixture(scope="module")
def pool(demo, tmp_path_factory):
    """Seven inputs: four EMT metals (Cu3Au has 4 atoms: above --max-atoms 3), two demo structures of elements EMT
    does not cover, and a broken file."""
    from betenet.data.structures import load_structure

    folder = tmp_path_factory.mktemp("pool")
    fcc("Al", 4.05).to(filename=str(folder / "al.cif"))
    fcc("Cu", 3.61).to(filename=str(folder / "cu.cif"))
    Structure(Lattice.cubic(2.88), ["Ni", "Al"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(filename=str(folder / "nial.cif"))
    Structure(Lattice.cubic(3.75), ["Au", "Cu", "Cu", "Cu"],
              [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]).to(filename=str(folder / "cu3au.cif"))
    others = [p for p in sorted((demo.demo_dir / "structures").glob("*.cif"))
              if {s.specie.symbol for s in load_structure(p)} - EMT_ELEMENTS and len(load_structure(p)) <= 3]
    for k, path in enumerate(others[:2]):
        shutil.copy(path, folder / f"other{k}.cif")
    (folder / "broken.cif").write_text("data_broken\n_cell_length_a 3.0\n")
    return folder


def funnel_args(demo, pool, out, cache, *extra):
    return ["--ensemble", demo.sweep("cso"), "--ensemble-stage2", demo.sweep("cpd"), pool, "--out", out,
            "--potential", "emt", "--max-atoms", "3", "--stage2-fraction", "0.8", "--chunk-size", "2",
            "--phonons-cache", cache, *extra]


@pytest.fixture(scope="module")
def funnel(demo, pool, tmp_path_factory):
    """One funnel run on the pool, on this machine: (out folder, summary)."""
    base = tmp_path_factory.mktemp("funnel")
    out = base / "out"
    code = main(["screen", *map(str, funnel_args(demo, pool, out, base / "cache")), "--json"])
    assert code == 0
    return out, base


def test_funnel_ranks_the_top_again_and_says_why_every_other_input_dropped(demo, pool, funnel, capsys):
    out, base = funnel
    stage1 = read_csv(out / "candidates_stage1.csv")
    stage2 = read_csv(out / "candidates_stage2.csv")
    dropped = {r["id"]: r for r in read_csv(out / "dropped.csv")}
    ids = {p.stem for p in pool.glob("*.cif")}
    assert len(stage1) == 6 and {r["id"] for r in stage1} == ids - {"broken"}
    tc1 = [float(r["tc_allen_dynes_K"]) for r in stage1]
    assert tc1 == sorted(tc1, reverse=True) and [int(r["rank"]) for r in stage1] == list(range(1, 7))
    # every input exactly once: ranked at the end of the funnel, or dropped with where and why
    assert {r["id"] for r in stage2}.isdisjoint(dropped) and {r["id"] for r in stage2} | set(dropped) == ids
    assert dropped["broken"]["dropped_at"] == "stage 1" and "cannot read" in dropped["broken"]["reason"]
    top = [r["id"] for r in stage1[:5]]  # ceil(0.8 * 6) = 5 go on
    last = stage1[5]["id"]
    assert dropped[last]["dropped_at"] == "cut"
    assert dropped[last]["reason"].startswith("rank 6 of 6: below the top 80 %")
    for ident in top:
        if ident.startswith("other"):
            assert dropped[ident]["dropped_at"] == "phonons" and "does not cover element" in dropped[ident]["reason"]
        elif ident == "cu3au":
            assert dropped[ident]["dropped_at"] == "phonons" and "above the limit of 3" in dropped[ident]["reason"]
        else:
            assert ident not in dropped
    assert {r["id"] for r in stage2} == {i for i in top if i in ("al", "cu", "nial")}
    tc2 = [float(r["tc_allen_dynes_K"]) for r in stage2]
    assert tc2 == sorted(tc2, reverse=True)
    by_rank = {r["id"]: r for r in stage1}
    for r in stage2:
        assert r["stage1_rank"] == by_rank[r["id"]]["rank"]
        assert r["stage1_tc_allen_dynes_K"] == by_rank[r["id"]]["tc_allen_dynes_K"]
        assert "PhDOS origin mismatch" in r["warnings"]  # demo CPD (its dataset's PhDOS) given EMT's
    # stage 2 is the CPD ensemble on the PhDOS the phonons engine wrote
    from betenet.data.sources.directory import read_labels_table
    from betenet.inference import load_ensemble

    phonons = out / "stage2" / "phonons"
    labels = read_labels_table(phonons / "labels.json")
    assert set(labels) == {r["id"] for r in stage2}
    table = load_ensemble(demo.sweep("cpd")).predict_structures(
        {i: phonons / "structures" / f"{i}.cif" for i in labels}, labels=labels)
    for r in stage2:
        expected = float(table.set_index("id").loc[r["id"], "tc_allen_dynes_K"])
        assert float(r["tc_allen_dynes_K"]) == pytest.approx(expected, rel=1e-5, abs=1e-9)
    report = json.loads((out / "candidates.json").read_text())
    assert report["dropped"] == {"stage 1": 1, "cut": 1, "phonons": 5 - len(stage2), "stage 2": 0}
    assert report["stage2"]["phonons"]["potential"] == "emt" and report["stage2"]["phonons"]["kind"] == "coarse"

    # the same command again: nothing recomputed, the same files
    before = {name: (out / name).read_bytes() for name in FINAL}
    code, res, err = screen(capsys, *funnel_args(demo, pool, out, base / "cache"))
    assert code == 0 and res["carried_over"] == 7 and "7 inputs carried over" in err
    assert {name: (out / name).read_bytes() for name in FINAL} == before


def test_cluster_local_runs_the_funnel_as_job_arrays_with_the_same_files(demo, pool, funnel, tmp_path, capsys):
    out, base = funnel
    array = tmp_path / "array"
    code, res, _ = screen(capsys, *funnel_args(demo, pool, array, base / "cache", "--cluster", "local", "--jobs", "2"))
    assert code == 0 and res["array_tasks"] == 2
    assert len(list((array / "stage1" / "cluster").glob("*_result.pkl"))) == 2  # one per --jobs, chunks of 2
    assert sorted(p.name for p in (array / "stage1" / "parts").glob("*.csv")) == ["part_00000.csv", "part_00001.csv"]
    assert json.loads((array / "stage2" / "phonons" / "phonons_report.json").read_text())["cluster"] == "local"
    for name in FINAL:
        assert (array / name).read_bytes() == (out / name).read_bytes(), name


def test_parts_are_whole_chunks():
    from betenet.inference.screen_cluster import plan_parts

    assert plan_parts(7, 2, 2) == [(0, 4), (4, 7)]
    assert plan_parts(10, 3, 4) == [(0, 4), (4, 8), (8, 10)]
    assert plan_parts(3, 8, 256) == [(0, 3)] and plan_parts(0, 2, 2) == []
    for total, tasks, chunk in ((1000, 7, 64), (999, 100, 10)):
        parts = plan_parts(total, tasks, chunk)
        assert len(parts) <= tasks and parts[0][0] == 0 and parts[-1][1] == total
        assert all(a % chunk == 0 and b == c for (a, b), (c, _) in zip(parts, parts[1:]))


def test_a_reused_out_never_keeps_another_runs_stage2(demo, pool, funnel, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(funnel[0], out)
    (out / "candidates.csv").write_text("rank,id\n1,stale\n")  # an older version's table
    assert (out / "candidates_stage2.csv").exists()
    # stage 1 only into the funnel's folder: no stage-2 table, no stage-2 folder, only stage-1 drops
    code, res, err = screen(capsys, "--ensemble", demo.sweep("cso"), pool, "--out", out, "--chunk-size", 2)
    assert code == 0 and res["carried_over"] == 7 and "carried over" in err  # its stage 1 is the funnel's
    assert not (out / "candidates_stage2.csv").exists() and not (out / "stage2").exists()
    assert not (out / "candidates.csv").exists()
    assert [r["dropped_at"] for r in read_csv(out / "dropped.csv")] == ["stage 1"]
    # a funnel whose cut lets nothing through: a stage-2 table with its header only, every candidate dropped
    code, res, _ = screen(capsys, *funnel_args(demo, pool, out, tmp_path / "cache", "--stage1-threshold", "1e6"))
    assert code == 0 and res["sent_to_stage2"] == 0 and res["ranked_stage2"] == 0
    assert read_csv(out / "candidates_stage2.csv") == []
    assert (out / "candidates_stage2.csv").read_text().startswith("rank,id,formula,tc_allen_dynes_K")
    assert sorted(r["dropped_at"] for r in read_csv(out / "dropped.csv")) == ["cut"] * 6 + ["stage 1"]
    # other inputs into the same folder: stage 1 starts afresh
    code, res, _ = screen(capsys, "--ensemble", demo.sweep("cso"), pool / "al.cif", pool / "cu.cif", "--out", out)
    assert code == 0 and res["carried_over"] == 0 and res["inputs"] == 2
    assert {r["id"] for r in read_csv(out / "candidates_stage1.csv")} == {"al", "cu"}
    assert read_csv(out / "dropped.csv") == []


@pytest.fixture(scope="module")
def big_pool(demo, tmp_path_factory):
    """200 structures: copies of the demo structures under new ids, one of them broken."""
    return copied_pool(demo, tmp_path_factory.mktemp("big_pool"), 200)


def test_screen_killed_mid_pool_and_run_again_equals_one_uninterrupted_run(demo, big_pool, tmp_path, capsys):
    reference = tmp_path / "reference"
    code, ref, _ = screen(capsys, "--ensemble", demo.sweep("cso"), big_pool, "--out", reference, "--chunk-size", 4)
    assert code == 0 and ref["inputs"] == 200 and ref["ranked"] == 199 and ref["carried_over"] == 0

    out = tmp_path / "out"
    manifest = out / "stage1" / "predictions.csv.partial" / "manifest.json"
    cmd = [sys.executable, "-m", "betenet.cli", "screen", "--ensemble", str(demo.sweep("cso")), str(big_pool),
           "--out", str(out), "--chunk-size", "4", "--threads", "1", "--json"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    done = 0
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                done = json.loads(manifest.read_text())["counts"]["inputs"]
            except (OSError, ValueError, KeyError):
                done = 0
            if done >= 12:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed; give it a larger pool"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (out / "candidates_stage1.csv").exists() and manifest.exists()  # nothing final, the chunks kept

    code, res, err = screen(capsys, "--ensemble", demo.sweep("cso"), big_pool, "--out", out, "--chunk-size", 4)
    assert code == 0 and 12 <= res["carried_over"] < 200
    assert f"screen stage 1: {res['carried_over']} inputs carried over" in err
    assert "screen stage 1: 200/200 inputs (" in err  # the progress line (a line per chunk off a terminal)
    assert {k: res[k] for k in ("inputs", "predicted", "failed", "ranked", "top")} == \
        {k: ref[k] for k in ("inputs", "predicted", "failed", "ranked", "top")}
    for name in ("candidates_stage1.csv", "dropped.csv", "stage1/predictions.csv", "stage1/predictions.json"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert not (out / "stage1" / "predictions.csv.partial").exists()


def test_refusals_and_a_pool_with_nothing_to_rank(demo, pool, tmp_path, capsys):
    code, _, err = screen(capsys, "--ensemble", demo.sweep("cso"), pool, "--out", tmp_path / "a",
                          "--stage2-fraction", "0.5")
    assert code == 2 and "--stage2-fraction" in err and "--ensemble-stage2" in err
    code, _, err = screen(capsys, "--ensemble", demo.sweep("cso"), "--cluster", "local", "--out", tmp_path / "b")
    assert code == 2 and "INPUTS only" in err
    code, _, err = screen(capsys, "--ensemble", demo.sweep("cso"), pool, "--out", pool)
    assert code == 2 and "input folder" in err
    assert not (tmp_path / "a").exists()
    # nothing predictable: exit status 1, the files written with every input's reason
    code, _, err = screen(capsys, "--ensemble", demo.sweep("cso"), pool / "broken.cif", "--out", tmp_path / "c")
    assert code == 1 and "no input could be predicted" in err and "dropped.csv" in err
    assert read_csv(tmp_path / "c" / "candidates_stage1.csv") == []
    assert [(r["id"], r["dropped_at"]) for r in read_csv(tmp_path / "c" / "dropped.csv")] == [("broken", "stage 1")]
