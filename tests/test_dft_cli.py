"""`betenet dft inputs | run | collect` handlers (betenet.cli.dft), on a parser built like the main CLI's."""

import argparse
import json

import pytest
from ase.build import bulk
from ase.io import write

from betenet.cli.dft import add_dft_commands
from betenet.errors import InputError


def parse(*argv):
    parser = argparse.ArgumentParser(prog="betenet")
    sub = parser.add_subparsers(dest="command", required=True)
    add_dft_commands(sub)
    return parser.parse_args(list(argv))


@pytest.fixture
def al_cif(tmp_path):
    path = tmp_path / "Al.cif"
    write(path, bulk("Al", "fcc", a=4.05))
    return path


def test_inputs_then_dry_run(al_cif, tmp_path):
    out = tmp_path / "mat"
    args = parse("dft", "inputs", str(al_cif), "--out", str(out), "--profile", "qe_example",
                 "--set", "run.np=3", "--set", "edos.enabled=false", "--id", "al-1")
    res = args.func(args)
    assert res["id"] == "al-1" and res["steps"][-1] == "matdyn_coarse" and res["q_grid"] == [4, 4, 4]
    stored = json.loads((out / "workflow.json").read_text())
    assert stored["settings"]["run"]["np"] == 3 and stored["id"] == "al-1"
    args = parse("dft", "run", str(out), "--dry-run")
    plan = args.func(args)
    assert plan["ran"] == [] and plan["pending"][0] == "mpirun -np 3 pw.x -in scf_la2f.in"
    args = parse("dft", "run", str(out), "--dry-run", "--np", "1")
    assert args.func(args)["pending"][0] == "pw.x -in scf_la2f.in"


def test_collect_reports_unfinished(al_cif, tmp_path):
    out = tmp_path / "mat"
    args = parse("dft", "inputs", str(al_cif), "--out", str(out), "--profile", "qe_example")
    args.func(args)
    args = parse("dft", "collect", str(out), "--out", str(tmp_path / "ds"), "--format", "release")
    res = args.func(args)
    assert res["written"] == [] and "steps not finished" in res["unreadable"][str(out)]


def test_bad_input_raises_input_error(al_cif, tmp_path):
    args = parse("dft", "inputs", str(al_cif), "--out", str(tmp_path / "m"), "--profile", "nope")
    with pytest.raises(InputError, match="unknown DFT profile"):
        args.func(args)
    args = parse("dft", "inputs", str(al_cif), "--out", str(tmp_path / "m"), "--set", "grids.q_density=-1",
                 "--set", "relax.enabled=false")
    with pytest.raises(InputError, match="^grids.q_density: must be above 0, got -1"):
        args.func(args)
    args = parse("dft", "run", str(tmp_path))
    with pytest.raises(InputError, match="not a DFT material folder"):
        args.func(args)
    with pytest.raises(SystemExit):
        parse("dft", "collect", str(tmp_path), "--out", "x", "--format", "csv")
