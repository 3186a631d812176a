"""`betenet phonons` at scale (issue 23) and its phonopy files (issue 21): the batched forward pass
equals the one-by-one path, worker processes equal one process, the largest structures go first, the
size limit skips with a reason, a worker that dies takes only its own structure with it, `--cluster
local` runs the submitit job array end to end, phonopy.load reads the written parameters back to the
same force constants, --plot draws a figure, and the progress line.

Potential-level checks use SevenNet-0 / CHGNet (skipped without the optional extra); the rest uses
ASE's EMT on tiny fcc-metal cells.
"""

import dataclasses
import io
import json
import os

import numpy as np
import pytest
from _structures import b2_nial, fcc_al, l12_cu3au, mgb2
from pymatgen.core import Lattice, Structure

from betenet.errors import InputError
from betenet.phonons import PhononSettings

EXTRA = "optional extra betenet[phonons] not installed (pip install 'betenet[phonons]')"
EMT = PhononSettings(potential="emt", mesh=6)


def needs(module):
    return pytest.importorskip(module, reason=EXTRA)


@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    fcc_al().to(filename=str(d / "al.cif"))
    b2_nial().to(filename=str(d / "nial.cif"))
    l12_cu3au().to(filename=str(d / "cu3au.cif"))
    return d


@pytest.fixture
def one_thread():
    """Torch on one thread (as in every --jobs worker): multithreaded reductions are not bit-reproducible,
    so even the one-by-one path differs from itself by ~1e-5 per bin with 2 threads (benchmarks/RESULTS.md)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _site_dos(out):
    return {r["id"]: np.asarray(r["phdos_coarse_site"]) for r in json.loads((out / "labels.json").read_text())}


def _rows(out):
    return {r["id"]: r for r in json.loads((out / "phonons_report.json").read_text())["rows"]}


# --------------------------------------------------------------------------------------------
# batched forces = one-by-one forces
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("potential", ["sevenn", "chgnet"])
def test_batched_forward_pass_equals_the_one_by_one_path(potential, one_thread):
    needs("phonopy")
    needs(potential)
    from betenet.phonons import make_calculator, site_phdos

    calc = make_calculator(potential)
    base = PhononSettings(potential=potential, mesh=8)
    for name, structure in (("al", fcc_al()), ("nial", b2_nial()), ("mgb2", mgb2())):
        one_by_one = site_phdos(structure, "coarse", dataclasses.replace(base, batch_edges=0), calc, name)
        for edges in (None, 300):  # one batch (the default budget) and several small ones
            batched = site_phdos(structure, "coarse", dataclasses.replace(base, batch_edges=edges), calc, name)
            assert np.array_equal(batched.freq_meV, one_by_one.freq_meV)
            assert np.abs(batched.site_dos - one_by_one.site_dos).max() <= 1e-6, (name, edges)
            assert batched.min_freq_meV == pytest.approx(one_by_one.min_freq_meV, abs=1e-6)


def test_batch_edges_is_a_setting_that_does_not_change_the_cache_key():
    from betenet.phonons import cache_key

    assert cache_key(fcc_al(), "coarse", EMT) == cache_key(fcc_al(), "coarse", dataclasses.replace(EMT, batch_edges=0))
    with pytest.raises(InputError, match="batch_edges"):
        PhononSettings(potential="emt", batch_edges=-1)


# --------------------------------------------------------------------------------------------
# worker processes, order, size limit
# --------------------------------------------------------------------------------------------
def test_two_workers_give_what_one_process_gives(inputs, tmp_path):
    needs("phonopy")
    from betenet.phonons.batch import run_batch

    one = run_batch([inputs], tmp_path / "one", EMT, cache_dir=False, echo=lambda _: None)
    two = run_batch([inputs], tmp_path / "two", EMT, cache_dir=False, jobs=2, progress_stream=io.StringIO())
    assert one["computed"] == two["computed"] == 3 and two["jobs"] == 2
    a, b = _site_dos(tmp_path / "one"), _site_dos(tmp_path / "two")
    assert sorted(a) == sorted(b) == ["al", "cu3au", "nial"]
    for k in a:
        assert a[k].shape == b[k].shape and np.abs(a[k] - b[k]).max() <= 1e-6
    # rerun: nothing to do, whatever the number of workers
    again = run_batch([inputs], tmp_path / "two", EMT, cache_dir=False, jobs=2, progress_stream=io.StringIO())
    assert again["done"] == 3 and again["computed"] == 0


def test_largest_first_and_the_size_limit_skips_with_a_reason(inputs, tmp_path, monkeypatch):
    needs("phonopy")
    import betenet.phonons.fill as fill
    from betenet.phonons.batch import run_batch

    order = []
    real = fill.site_phdos
    monkeypatch.setattr(fill, "site_phdos", lambda s, k, st, c, name: order.append(name) or real(s, k, st, c, name))
    lines = []
    summary = run_batch([inputs], tmp_path / "out", dataclasses.replace(EMT, max_atoms=2), cache_dir=False,
                        echo=lines.append)
    assert order == ["nial", "al"]  # 2 atoms, then 1; cu3au (4) is over the limit
    assert summary["skipped"] == 1 and summary["computed"] == 2
    row = _rows(tmp_path / "out")["cu3au"]
    assert row["status"] == "skipped" and row["reason"] == "4 atoms, above the limit of 2 (raise --max-atoms to " \
                                                           "compute it anyway)"
    assert "cu3au: skipped (4 atoms, above the limit of 2" in "\n".join(lines)
    with pytest.raises(InputError, match="no structure succeeded .*1 skipped"):
        run_batch([inputs / "cu3au.cif"], tmp_path / "none", dataclasses.replace(EMT, max_atoms=2), cache_dir=False,
                  echo=lambda _: None)


def test_cli_jobs_max_atoms_and_progress_lines(inputs, tmp_path, capsys):
    needs("phonopy")
    from betenet.cli import main

    args = ["phonons", str(inputs), "--out", str(tmp_path / "out"), "--potential", "emt", "--mesh", "6",
            "--cache-dir", str(tmp_path / "cache"), "--jobs", "2", "--max-atoms", "2", "--progress-every", "1",
            "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["computed"] == 2 and summary["skipped"] == 1 and summary["jobs"] == 2
    err = captured.err.splitlines()
    assert "cu3au: skipped (4 atoms, above the limit of 2 (raise --max-atoms to compute it anyway))" in err
    progress = [line for line in err if line.startswith("phonons: ")]
    assert len(progress) == 3 and progress[-1].startswith("phonons: 3/3 structures (2 computed, 1 skipped)")


def test_device_cuda_is_refused_with_the_reason_without_a_gpu(inputs, tmp_path, capsys):
    import torch

    from betenet.cli import main

    if torch.cuda.is_available():
        pytest.skip("a GPU is present here")
    assert main(["phonons", str(inputs), "--out", str(tmp_path / "out"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "torch sees no CUDA device here; use --device cpu" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cluster_local_runs_the_same_path_as_a_job_array(inputs, tmp_path, capsys):
    needs("phonopy")
    needs("submitit")
    from betenet.cli import main
    from betenet.phonons.batch import run_batch
    from betenet.phonons.cluster import cluster_resources, deal

    here = run_batch([inputs], tmp_path / "here", EMT, cache_dir=False, echo=lambda _: None)
    args = ["phonons", str(inputs), "--out", str(tmp_path / "array"), "--potential", "emt", "--mesh", "6",
            "--cache-dir", str(tmp_path / "cache"), "--cluster", "local", "--jobs", "2", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["computed"] == here["computed"] == 3
    a, b = _site_dos(tmp_path / "here"), _site_dos(tmp_path / "array")
    assert sorted(a) == sorted(b) and all(np.abs(a[k] - b[k]).max() <= 1e-6 for k in a)
    assert len(list((tmp_path / "array" / "cluster").glob("*_result.pkl"))) == 2  # two tasks, one per --jobs
    assert json.loads((tmp_path / "array" / "phonons_report.json").read_text())["cluster"] == "local"
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["done"] == 3  # resumable as ever
    # largest first, dealt round-robin; resources from conf/cluster, overridable, no GPU for --device cpu
    assert deal([5, 4, 3, 2, 1], 2) == [[5, 3, 1], [4, 2]]
    res = cluster_resources(["partition=gpu", "cpus_per_task=8"])
    assert res["partition"] == "gpu" and res["cpus_per_task"] == 8 and res["gpus_per_node"] == 0
    with pytest.raises(InputError, match="KEY=VALUE"):
        cluster_resources(["nodes=3"])


# Worker functions for run_tasks (module level: the spawned workers import this module by name).
def _square_or_die(task):
    if task == "die":
        os._exit(3)  # as if the kernel had killed the worker (out of memory)
    if task == "raise":
        raise RuntimeError("a missing package")
    return task * task


def test_a_dying_worker_takes_only_its_own_task_with_it():
    from betenet.phonons.workers import CRASH_REASON, run_tasks

    done, crashed = {}, {}
    run_tasks([1, 2, "die", 3, 4, 5], _square_or_die, 2, on_done=done.__setitem__, on_crash=crashed.__setitem__)
    assert done == {1: 1, 2: 4, 3: 9, 4: 16, 5: 25}
    assert crashed == {"die": CRASH_REASON}
    with pytest.raises(RuntimeError, match="a missing package"):  # an error that escapes a task stops the run
        run_tasks([1, "raise", 2], _square_or_die, 2, on_done=lambda *a: None, on_crash=lambda *a: None)


# --------------------------------------------------------------------------------------------
# phonopy's files
# --------------------------------------------------------------------------------------------
def test_phonopy_params_load_back_to_the_same_force_constants_and_plot(inputs, tmp_path):
    phonopy = needs("phonopy")
    from pymatgen.io.ase import AseAtomsAdaptor

    from betenet.data.structures import load_structure
    from betenet.phonons import make_calculator
    from betenet.phonons.batch import run_batch
    from betenet.phonons.harmonic import force_constants

    out = tmp_path / "out"
    run_batch([inputs / "nial.cif"], out, EMT, cache_dir=tmp_path / "cache", echo=lambda _: None)
    params = out / "phonopy" / "nial" / "coarse" / "phonopy_params.yaml"
    loaded = phonopy.load(params, log_level=0)
    given = load_structure(inputs / "nial.cif")  # in the file's site order (the CIF writer's, not b2_nial's)
    ours, n_disp = force_constants(AseAtomsAdaptor.get_atoms(given), make_calculator("emt"), (2, 2, 2))
    p2s = ours.primitive.p2s_map
    assert loaded.force_constants.shape == (2, 16, 3, 3)  # compact: the unit cell's rows
    assert np.abs(loaded.force_constants - ours.force_constants[p2s]).max() < 1e-12
    assert len(loaded.dataset["first_atoms"]) == n_disp  # displacements and forces are there too
    assert np.allclose(loaded.primitive.cell, given.lattice.matrix)
    q = [[0.5, 0.5, 0.0], [0.25, 0.0, 0.0]]
    loaded.run_qpoints(q)
    ours.run_qpoints(q)
    assert np.allclose(loaded.qpoints.frequencies, ours.qpoints.frequencies, atol=1e-9)
    state = json.loads((out / "phonons" / "nial.json").read_text())
    assert state["kinds"]["coarse"]["phonopy"] == {"params": "phonopy/nial/coarse/phonopy_params.yaml", "plot": None}
    # --plot on the finished folder: drawn from the cached result, nothing recomputed
    summary = run_batch([inputs / "nial.cif"], out, EMT, cache_dir=tmp_path / "cache", plot=True, echo=lambda _: None)
    assert summary["cached"] == 1
    figure = out / "phonopy" / "nial" / "coarse" / "band_dos.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run_batch([inputs / "nial.cif"], out, EMT, cache_dir=tmp_path / "cache", plot=True,
                     echo=lambda _: None)["done"] == 1


def test_band_path_follows_the_cell_given():
    """The same physical path for the primitive fcc cell and the conventional cubic cell: at each
    labelled point the q-vector in Cartesian coordinates (reciprocal basis without 2π) agrees."""
    from betenet.phonons.phonopy_files import band_path

    prim = fcc_al()
    conv = Structure(Lattice.cubic(4.05), ["Al"] * 4, [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    paths = []
    for s in (prim, conv):
        segments, labels, _ = band_path(s)
        recip = np.linalg.inv(s.lattice.matrix).T  # rows: reciprocal vectors without 2π
        ends = {labels[k][1]: seg[-1] @ recip for k, seg in enumerate(segments)}
        paths.append((labels, ends))
    assert paths[0][0] == paths[1][0] and paths[0][0][0][0] == "Γ"
    for name, q in paths[0][1].items():
        assert np.allclose(q, paths[1][1][name], atol=1e-9), name


# --------------------------------------------------------------------------------------------
# progress line
# --------------------------------------------------------------------------------------------
def test_progress_line_every_n_and_notes_without_a_terminal():
    from betenet.progress import ProgressLine, format_duration

    stream = io.StringIO()
    with ProgressLine(5, "phonons", every=2, stream=stream) as bar:
        for k in range(5):
            if k == 1:
                bar.note("x: failed (why)")
            bar.update(1, {"computed": k + 1, "failed": 0})
    lines = stream.getvalue().splitlines()
    assert lines[0] == "x: failed (why)"
    assert [line.split(" (")[0] for line in lines[1:]] == ["phonons: 2/5 structures", "phonons: 4/5 structures",
                                                           "phonons: 5/5 structures"]
    assert "ETA" in lines[1] and "ETA" not in lines[-1] and "(5 computed)" in lines[-1]
    assert format_duration(3725) == "1 h 02 min" and format_duration(65) == "1 min 05 s"
