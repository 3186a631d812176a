"""Resumable state and runners (betenet.dft.state / runners) on a real material folder whose QE
programs are replaced by a small fake that writes the step's products and logs each call."""

import json
import sys
import textwrap

import pytest
from ase.build import bulk
from ase.io import write

from betenet.dft.inputs import write_inputs
from betenet.dft.runners import StepFailed, command_line, run_material, submit_materials
from betenet.dft.settings import load_settings
from betenet.dft.state import MaterialState, locked
from betenet.dft.workflow import read_workflow
from betenet.errors import InputError

PROGRAMS = ("pw.x", "ph.x", "q2r.x", "matdyn.x", "projwfc.x")

FAKE_QE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    deck = sys.argv[sys.argv.index("-in") + 1]
    step = next(s for s in json.loads(Path("workflow.json").read_text())["steps"] if s["input"] == deck)
    with open("calls.log", "a") as log:
        log.write(f"{step['name']} {os.environ.get('FAKE_MPI_NP', '-')} {os.environ.get('OMP_NUM_THREADS')}\\n")
    if os.environ.get("FAKE_FAIL") == step["name"]:
        print("Error in routine fake"); sys.exit(3)
    for product in step["products"]:
        if os.environ.get("FAKE_SKIP_PRODUCT") != step["name"]:
            Path(product).parent.mkdir(parents=True, exist_ok=True)
            Path(product).write_text("fake")
    if os.environ.get("FAKE_NO_DONE") != step["name"]:
        print("   JOB DONE.")
    """
)

FAKE_MPIRUN = textwrap.dedent(
    """
    import os, sys
    np = sys.argv[sys.argv.index("-np") + 1]
    rest = sys.argv[sys.argv.index("-np") + 2:]
    os.environ["FAKE_MPI_NP"] = np
    os.execvp(rest[0], rest)
    """
)


@pytest.fixture
def material(tmp_path):
    """A qe_example material folder for fcc Al whose programs are the fake."""
    fake = tmp_path / "fake_qe.py"
    fake.write_text(FAKE_QE)
    write(tmp_path / "Al.cif", bulk("Al", "fcc", a=4.05))
    settings = load_settings("qe_example")
    settings.run.executables = {p: f"{sys.executable} {fake}" for p in PROGRAMS}
    settings.run.env = {"OMP_NUM_THREADS": "1"}
    write_inputs(tmp_path / "Al.cif", tmp_path / "Al", settings)
    return tmp_path / "Al"


def calls(folder):
    log = folder / "calls.log"
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def test_runs_every_step_once_then_skips(material):
    steps = [s.name for s in read_workflow(material).steps]
    first = run_material(material)
    assert first["ran"] == steps and first["skipped"] == []
    assert [c[0] for c in calls(material)] == steps
    assert all(c[2] == "1" for c in calls(material))  # run.env reached the programs
    state = json.loads((material / "state.json").read_text())["steps"]
    assert all(state[s]["status"] == "done" and state[s]["attempt"] == 1 for s in steps)
    second = run_material(material)
    assert second["ran"] == [] and second["skipped"] == steps
    assert len(calls(material)) == len(steps)  # nothing was run again


def test_failure_is_recorded_and_the_rerun_resumes_there(material, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "ph")
    with pytest.raises(StepFailed) as err:
        run_material(material)
    assert err.value.subject.endswith("ph.out") and "exit status 3" in err.value.reason
    assert "Error in routine fake" in err.value.reason  # the output's last lines are quoted
    state = MaterialState(material)
    assert [state.status(s) for s in ("scf_la2f", "scf", "ph", "q2r")] == ["done", "done", "failed", "pending"]
    monkeypatch.delenv("FAKE_FAIL")
    out = run_material(material)
    assert out["skipped"] == ["scf_la2f", "scf"] and out["ran"][0] == "ph"
    names = [c[0] for c in calls(material)]
    assert names.count("scf_la2f") == 1 and names.count("ph") == 2
    assert MaterialState(material).steps["ph"]["attempt"] == 2


@pytest.mark.parametrize("mode,reason", [("FAKE_SKIP_PRODUCT", "products missing: ['aluminum.fc']"),
                                         ("FAKE_NO_DONE", "no 'JOB DONE'")])
def test_a_step_is_done_only_with_products_and_job_done(material, monkeypatch, mode, reason):
    monkeypatch.setenv(mode, "q2r")
    with pytest.raises(StepFailed, match=reason.replace("[", r"\[").replace("]", r"\]")):
        run_material(material)
    assert MaterialState(material).status("q2r") == "failed"


def test_done_step_is_never_rerun_even_when_its_products_vanish(material):
    run_material(material)
    (material / "aluminum.fc").unlink()
    with pytest.raises(InputError, match="step q2r is recorded done but \\['aluminum.fc'\\] are gone"):
        run_material(material)
    assert [c[0] for c in calls(material)].count("q2r") == 1


def test_interrupted_step_runs_again(material):
    run_material(material, until="scf")
    state = MaterialState(material)
    state.started("ph", "killed before it finished")  # as left by a job killed mid-step
    out = run_material(material)
    assert out["ran"][0] == "ph" and out["skipped"] == ["scf_la2f", "scf"]


def test_until_and_dry_run(material):
    plan = run_material(material, dry_run=True)
    assert plan["ran"] == [] and not (material / "state.json").exists()
    assert plan["pending"][0].endswith("fake_qe.py -in scf_la2f.in")
    out = run_material(material, until="q2r")
    assert out["ran"] == ["scf_la2f", "scf", "ph", "q2r"]
    assert run_material(material, dry_run=True)["pending"][0].endswith("-in matdyn.in")
    with pytest.raises(InputError, match="no such step"):
        run_material(material, until="bands")


def test_second_runner_is_locked_out(material):
    with locked(material):
        with pytest.raises(InputError, match="another `betenet dft run`"):
            run_material(material)


def test_mpi_prefix_only_for_parallel_programs(material, tmp_path):
    wf = read_workflow(material)
    s = wf.settings
    assert command_line(wf.step("ph"), s, 4)[:3] == ["mpirun", "-np", "4"]
    assert command_line(wf.step("q2r"), s, 4)[-2:] == ["-in", "q2r.in"]
    assert "mpirun" not in command_line(wf.step("q2r"), s, 4)
    assert "mpirun" not in command_line(wf.step("ph"), s, 1)
    # run it: a fake mpirun records the rank count it was asked for
    fake_mpi = tmp_path / "fake_mpirun.py"
    fake_mpi.write_text(FAKE_MPIRUN)
    data = json.loads((material / "workflow.json").read_text())
    data["settings"]["run"]["mpi"] = f"{sys.executable} {fake_mpi} -np {{np}}"
    (material / "workflow.json").write_text(json.dumps(data))
    run_material(material, np=2)
    ranks = {c[0]: c[1] for c in calls(material)}
    parallel = {s.name for s in wf.steps if s.program in ("pw.x", "ph.x", "projwfc.x")}
    assert {n for n, r in ranks.items() if r == "2"} == parallel
    assert {n for n, r in ranks.items() if r == "-"} == {"q2r", "matdyn", "q2r_coarse", "matdyn_coarse"}


def test_submitit_debug_executor_runs_the_material(material, tmp_path):
    jobs = submit_materials([material], cluster="debug", folder=tmp_path / "jobs")
    result = jobs[0].result()
    assert result["ran"] == [s.name for s in read_workflow(material).steps]
    assert MaterialState(material).is_done("projwfc")


def test_submitit_local_executor_resumes(material, tmp_path):
    run_material(material, until="ph")
    jobs = submit_materials([material], cluster="local", folder=tmp_path / "jobs", timeout_min=5)
    result = jobs[0].result()
    assert result["skipped"] == ["scf_la2f", "scf", "ph"] and result["ran"][0] == "q2r"


def test_submit_checks_folders_first(tmp_path):
    with pytest.raises(InputError, match="not a DFT material folder"):
        submit_materials([tmp_path], cluster="debug", folder=tmp_path / "jobs")
