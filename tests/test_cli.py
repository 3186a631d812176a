"""The `betenet` console script: analyze-a2f and kq-grid end to end, and one-line errors on bad input."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from betenet.physics.a2f_files import read_qe_a2f
from betenet.data.structures import load_structure
from betenet.physics.grids import commensurate_kq_grids

KEYS = ["lambda", "omega_log_K", "omega_2_K", "tc_allen_dynes_K", "tc_mcmillan_K", "tc_eliashberg_K"]


def console_script():
    beside = Path(sys.executable).parent / "betenet"
    return str(beside) if beside.exists() else shutil.which("betenet")


def betenet(*args):
    exe = console_script()
    cmd = [exe, *args] if exe else [sys.executable, "-m", "betenet.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_console_script_installed():
    assert console_script(), "the betenet console script is not installed beside this python"
    res = betenet("--help")
    assert res.returncode == 0 and "analyze-a2f" in res.stdout and "kq-grid" in res.stdout


def test_analyze_a2f_on_qe_reference(qe_al_dir):
    path = qe_al_dir / "a2F.dos3"
    res = betenet("analyze-a2f", str(path), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert all(k in out for k in KEYS)
    reported = read_qe_a2f(path).lambda_reported
    assert out["lambda"] == pytest.approx(reported, rel=5e-3)
    assert all(np.isfinite(out[k]) and out[k] >= 0 for k in KEYS)
    # Al at 0.015 Ry: lambda ~ 0.41, weak coupling: all three Tc estimates are a few K at most
    assert out["tc_allen_dynes_K"] < out["omega_log_K"] / 10


def test_analyze_a2f_one_policy_for_negative_values(qe_al_dir, tmp_path):
    """QE's a2F.dos1 (0.005 Ry) has large negative noise: every property, the Eliashberg Tc included,
    integrates it as given (QE's printed lambda), and the CLI says so on stderr and in --json."""
    from betenet.physics.eliashberg_solver import matsubara_lambda

    path = qe_al_dir / "a2F.dos1"
    spec = read_qe_a2f(path)
    res = betenet("analyze-a2f", str(path), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["lambda"] == pytest.approx(spec.lambda_reported, rel=1e-3)
    # the solver's lambda is the same lambda
    assert matsubara_lambda(spec.omega_meV, spec.a2f, 0.0) == pytest.approx(out["lambda"], rel=1e-9)
    columns = tmp_path / "clipped.dat"
    np.savetxt(columns, np.c_[spec.omega_meV, np.clip(spec.a2f, 0, None)])
    clipped = json.loads(betenet("analyze-a2f", str(columns), "--format", "columns", "--json").stdout)["lambda"]
    assert clipped > 1.3 * out["lambda"]  # the choice matters here, so it is stated
    assert len(out["warnings"]) == 1 and "as given" in out["warnings"][0]
    assert f"{clipped:.4g}" in out["warnings"][0]
    assert 0 < out["negative_lambda_fraction"] < 1
    assert "warning" in res.stderr and "as given" in res.stderr
    # a clean spectrum: no warning
    clean = betenet("analyze-a2f", str(qe_al_dir / "a2F.dos10"), "--json")
    assert json.loads(clean.stdout)["warnings"] == [] and clean.stderr == ""


def test_analyze_a2f_columns_and_mu_star(tmp_path):
    w = np.linspace(0.1, 40, 400)
    a2f = 0.8 * np.exp(-((w - 20) / 4) ** 2)
    path = tmp_path / "spec.dat"
    np.savetxt(path, np.c_[w, a2f], header="omega_meV a2F")
    low = json.loads(betenet("analyze-a2f", str(path), "--format", "columns", "--json").stdout)
    high = json.loads(betenet("analyze-a2f", str(path), "--format", "columns", "--json",
                              "--mu-star", "0.2").stdout)
    assert high["lambda"] == low["lambda"]
    assert high["tc_allen_dynes_K"] < low["tc_allen_dynes_K"]
    assert high["tc_eliashberg_K"] < low["tc_eliashberg_K"]
    text = betenet("analyze-a2f", str(path), "--format", "columns")
    assert text.returncode == 0 and re.search(r"^lambda\s+[0-9.]+", text.stdout, re.M)


def test_kq_grid_json(structures_dir):
    path = sorted(structures_dir.glob("*.cif"))[0]
    res = betenet("kq-grid", str(path), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    k, q = commensurate_kq_grids(load_structure(path))
    assert out["k_grid"] == list(k) and out["q_grid"] == list(q)
    res = betenet("kq-grid", str(path), "--k-density", "20", "--q-density", "5", "--json")
    out2 = json.loads(res.stdout)
    assert all(a % b == 0 for a, b in zip(out2["k_grid"], out2["q_grid"]))


@pytest.mark.parametrize("command", ["analyze-a2f", "kq-grid"])
def test_missing_file_one_line_error(command, tmp_path):
    missing = tmp_path / "nope.file"
    res = betenet(command, str(missing))
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and str(missing) in lines[0]


def test_bad_inputs_name_the_file(tmp_path):
    bad = tmp_path / "garbage.dat"
    bad.write_text("this is not\na spectrum\n")
    res = betenet("analyze-a2f", str(bad))
    assert res.returncode != 0 and str(bad) in res.stderr and len(res.stderr.strip().splitlines()) == 1
    empty = tmp_path / "empty.cif"
    empty.write_text("data_empty\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n"
                     "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n")
    res = betenet("kq-grid", str(empty))
    assert res.returncode != 0 and str(empty) in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("rows, what", [
    ("1.0 0.5\n2.0 1e300\n3.0 0.2\n", "a2F values span 0.2 to 1e+300"),
    ("1.0 0.5\n1e300 0.3\n", "frequencies span 1 to 1e+300 meV"),
    ("1e-300 0.5\n2.0 1.0\n3.0 0.2\n", "lambda and Tc are not finite"),
])
def test_analyze_a2f_out_of_range_is_a_one_line_error(tmp_path, rows, what):
    path = tmp_path / "huge.dat"
    path.write_text(rows)
    res = betenet("analyze-a2f", str(path))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == res.stderr.strip().splitlines()[0]  # one line
    assert str(path) in res.stderr and what in res.stderr


def test_analyze_a2f_warns_about_rows_it_leaves_out(tmp_path):
    neg = tmp_path / "neg.dat"
    neg.write_text("-2 0.1\n-1 0.1\n1.0 0.5\n2.0 0.5\n3.0 0.2\n")
    res = betenet("analyze-a2f", str(neg), "--json")
    assert res.returncode == 0
    assert f"warning: {neg}: 2 row(s) at negative frequency (-2 to -1 meV) are left out" in res.stderr
    out = json.loads(res.stdout)
    assert out["lambda"] > 0 and len(out["warnings"]) == 1
    one = tmp_path / "one.dat"
    one.write_text("5.0 0.5\n")
    res = betenet("analyze-a2f", str(one))
    assert res.returncode == 0 and f"warning: {one}: a single row" in res.stderr
    assert "warnings" not in res.stdout  # the table keeps to numbers; warnings go to stderr
    clean = tmp_path / "clean.dat"
    clean.write_text("1.0 0.5\n2.0 0.5\n3.0 0.2\n")
    assert betenet("analyze-a2f", str(clean)).stderr == ""
