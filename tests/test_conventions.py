"""What a scientist meets first (issue 21): ``betenet --version``, defaults in every ``--help``, a
table of the predictions on stdout, ``--out -``, CSV numbers at a readable precision, one name for the
Allen–Dynes Tc in every command, a short ``repr`` of an ensemble, the spectra from Python, and NaN
(not 0) as the spread of a single member."""

import argparse
import csv
import io
import json
import logging
import math
import re
import shutil
from importlib import metadata

import numpy as np
import pandas as pd
import pytest

from betenet.cli import build_parser, main
from betenet.data.structures import load_structure
from betenet.inference import load_ensemble
from betenet.physics.properties import a2f_properties
from betenet.physics.units import BIN_CENTRES_MEV

pytestmark = pytest.mark.usefixtures("one_thread")

TC = "tc_allen_dynes_K"


def run(capsys, *argv):
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def significant_digits(cell: str) -> int:
    mantissa = re.split(r"[eE]", cell.lstrip("-"))[0].replace(".", "").lstrip("0")
    return len(mantissa)


@pytest.fixture
def inputs(demo, tmp_path):
    """Three demo structures and one unreadable file."""
    files = [demo.demo_dir / "structures" / f"demo-000{k}.cif" for k in (1, 2, 3)]
    bad = tmp_path / "broken.cif"
    bad.write_text("data_broken\n_cell_length_a 3.0\n")
    return files + [bad]


# --------------------------------------------------------------------------------------------
# 1. --version
# --------------------------------------------------------------------------------------------
def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"betenet {metadata.version('betenet')}"


# --------------------------------------------------------------------------------------------
# 4. --help: defaults, help on every option, descriptions that are whole sentences
# --------------------------------------------------------------------------------------------
def subcommands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from subcommands(sub, (*prefix, name))


def test_every_help_shows_defaults_and_explains_every_option():
    commands = dict(subcommands(build_parser()))
    assert {("predict",), ("phonons",), ("analyze-a2f",), ("dft", "run"), ("landscape",)} <= set(commands)
    for name, parser in commands.items():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"{' '.join(name)} {action.option_strings or action.dest}: no help text"
            nothing = action.default is None or action.default is False or action.default in ([], argparse.SUPPRESS)
            if action.option_strings and not nothing:
                entry = parser._get_formatter()._format_action(action)
                assert "default" in entry, f"{' '.join(name)} {action.option_strings[0]}: default not shown"
        assert parser.description and parser.description.rstrip().endswith("."), name
        assert parser.description.strip() in text or " ".join(parser.description.split()) in text
    phonons = " ".join(commands[("phonons",)].format_help().split())
    for flag, default in (("--supercell", "2"), ("--mesh", "20"), ("--sigma", "1.0")):
        assert re.search(rf"{flag} \S+ .*?\(default: {re.escape(default)}\)", phonons), flag
    landscape = " ".join(commands[("landscape",)].format_help().split())
    assert "(default: 21)" in landscape and "random directions (default: 0)" in landscape  # --steps, --seed
    assert "auto" in commands[("analyze-a2f",)].format_help() and "columns:" in commands[("analyze-a2f",)].format_help()


# --------------------------------------------------------------------------------------------
# 2. predict shows its result
# --------------------------------------------------------------------------------------------
def test_predict_prints_a_table_of_the_predictions(demo, inputs, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    code, stdout, _ = run(capsys, "predict", "--ensemble", demo.sweep("cso"), *inputs, "--out", out)
    assert code == 0
    rows = read_csv(out)
    lines = stdout.splitlines()
    assert lines[0].split() == ["id", "formula", "λ", "ω_log", "(K)", "Tc", "(K)", "status"]
    for r, line in zip(rows, lines[1:5]):
        assert line.startswith(r["id"]) and r["formula"] in line
        if r["status"] == "ok":
            assert f"{float(r[TC]):.2f} ± {float(r[TC + '_std']):.2f}" in line and line.rstrip().endswith("ok")
        else:
            assert "—" in line and "cannot read structure" in line
    assert re.search(r"^predicted\s+3$", stdout, re.M)  # the summary follows
    # --json: nothing but the JSON summary
    code, stdout, _ = run(capsys, "predict", "--ensemble", demo.sweep("cso"), *inputs, "--out", out, "--json")
    assert code == 0 and json.loads(stdout)["predicted"] == 3


def test_preview_is_short():
    from betenet.inference.predict import preview

    n = 25
    table = pd.DataFrame({"id": [f"m{k}" for k in range(n)], "formula": ["Nb"] * n, "lambda": np.linspace(0.2, 1, n),
                          "omega_log_K": [200.0] * n, TC: [5.0] * n, f"{TC}_std": [np.nan] * n, "status": ["ok"] * n})
    lines = preview(table).splitlines()
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "... 5 more"
    assert "5.00 ± —" in lines[1]  # no spread (one member): shown as missing, not 0
    assert len(preview(table.head(3)).splitlines()) == 4


# --------------------------------------------------------------------------------------------
# 3. --out -: the CSV to stdout and nothing else
# --------------------------------------------------------------------------------------------
def test_out_dash_writes_the_csv_to_stdout(demo, inputs, tmp_path, capsys, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    code, stdout, err = run(capsys, "predict", "--ensemble", demo.sweep("cso"), *inputs, "--out", "-")
    assert code == 0
    assert list(work.iterdir()) == []  # no file named "-" or "-.json"
    assert "spectra JSON is not written" in err and len(err.strip().splitlines()) == 1
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert [r["id"] for r in rows] == ["demo-0001", "demo-0002", "demo-0003", "broken"]
    assert list(rows[0])[:3] == ["id", "formula", "lambda"] and rows[3]["lambda"] == ""
    reference = tmp_path / "p.csv"  # the same CSV as a file
    assert run(capsys, "predict", "--ensemble", demo.sweep("cso"), *inputs, "--out", reference, "--json")[0] == 0
    assert rows == read_csv(reference)
    # --json would print on stdout too: refused in one line, nothing written
    code, stdout, err = run(capsys, "predict", "--ensemble", demo.sweep("cso"), *inputs, "--out", "-", "--json")
    assert code == 2 and stdout == "" and "--json" in err and len(err.strip().splitlines()) == 1
    assert list(work.iterdir()) == []


# --------------------------------------------------------------------------------------------
# 5. CSV numbers at 6 significant digits
# --------------------------------------------------------------------------------------------
def test_csv_cell():
    from betenet.files import csv_cell

    assert csv_cell(1.4239199298004355e-113) == "1.42392e-113"
    assert csv_cell(0.1 + 0.2) == "0.3" and csv_cell(2.0) == "2" and csv_cell(-1 / 3) == "-0.333333"
    assert csv_cell(float("nan")) == csv_cell(None) == csv_cell(float("inf")) == ""
    assert csv_cell("ok") == "ok" and csv_cell(np.float32(0.5)) == "0.5"


def test_prediction_and_ranking_csvs_use_6_significant_digits(demo, inputs, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    assert run(capsys, "predict", "--ensemble", demo.sweep("cso"), *inputs, "--out", out)[0] == 0
    code, _, _ = run(capsys, "screen", "--ensemble", demo.sweep("cso"), *inputs, "--out", tmp_path / "rank")
    assert code == 0
    for path in (out, tmp_path / "rank" / "candidates_stage1.csv"):
        rows = read_csv(path)
        numbers = [v for r in rows for k, v in r.items() if k not in ("id", "formula", "status", "warnings", "rank")
                   and v != ""]
        assert numbers and all(significant_digits(v) <= 6 for v in numbers), path
        assert max(significant_digits(v) for v in numbers) > 3, path  # precision kept, not truncated to nothing
    from betenet.evaluation.screening_report import write_ranking

    write_ranking(tmp_path / "r.csv", ["a", "b"], ["Nb", "Al"], [1 / 3, 1e-113], [2 / 3, 0.0])
    assert [(r[TC], r[f"{TC}_std"]) for r in read_csv(tmp_path / "r.csv")] == [("0.333333", "0.666667"),
                                                                               ("1e-113", "0")]


# --------------------------------------------------------------------------------------------
# 6. one name for the Allen–Dynes Tc
# --------------------------------------------------------------------------------------------
def test_predict_and_screen_name_the_tc_alike(demo, inputs, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    assert run(capsys, "predict", "--ensemble", demo.sweep("cso"), *inputs, "--out", out)[0] == 0
    code, stdout, _ = run(capsys, "screen", "--ensemble", demo.sweep("cso"), *inputs, "--out", tmp_path / "rank",
                          "--json")
    assert code == 0
    predicted = {r["id"]: r for r in read_csv(out)}
    ranked = read_csv(tmp_path / "rank" / "candidates_stage1.csv")
    assert {TC, f"{TC}_std"} <= set(ranked[0]) and "tc_K" not in ranked[0] and "tc_K_std" not in ranked[0]
    for r in ranked:
        assert float(r[TC]) == pytest.approx(float(predicted[r["id"]][TC]), rel=1e-5)
    ranking = json.loads((tmp_path / "rank" / "candidates.json").read_text())["stage1"]["top"]
    assert {TC, f"{TC}_std"} <= set(ranking[0])
    summary = json.loads(stdout)
    assert summary["top"] == ranked[0]["id"] and summary[f"top_{TC}"] == pytest.approx(float(ranked[0][TC]), rel=1e-5)
    analyzed = np.c_[BIN_CENTRES_MEV, np.exp(-(((BIN_CENTRES_MEV - 20) / 5) ** 2))]
    np.savetxt(tmp_path / "a2f.dat", analyzed)
    code, stdout, _ = run(capsys, "analyze-a2f", tmp_path / "a2f.dat", "--format", "columns", "--json")
    assert code == 0 and TC in json.loads(stdout)


# --------------------------------------------------------------------------------------------
# 7. Python: a short repr, and the spectra beside the table
# --------------------------------------------------------------------------------------------
def test_ensemble_repr_is_one_short_line(demo):
    ens = load_ensemble(demo.sweep("cso"))
    text = repr(ens)
    assert len(text) < 300 and "\n" not in text and str(ens) == text
    for part in ("2 members", "variant cso", "checkpoint final.ckpt", "not calibrated", str(demo.sweep("cso"))):
        assert part in text, part
    assert "features" not in text  # trained without pretrained features
    one = load_ensemble(demo.run("cpd", 0))
    assert "1 member," in repr(one) and "variant cpd" in repr(one)


def test_predict_structures_returns_the_spectra_on_request(demo):
    ens = load_ensemble(demo.sweep("cso"))
    good = load_structure(demo.demo_dir / "structures" / "demo-0001.cif")
    broken = good.copy()
    broken.replace(0, broken[0].species, [float("nan"), 0, 0])
    plain = ens.predict_structures({"good": good, "bad": broken})
    assert isinstance(plain, pd.DataFrame)  # unchanged without spectra=True
    table, spectra = ens.predict_structures({"good": good, "bad": broken}, spectra=True)
    pd.testing.assert_frame_equal(table, plain)
    assert spectra.ids == list(table["id"]) == ["good", "bad"]
    np.testing.assert_allclose(spectra.omega_meV, BIN_CENTRES_MEV)
    assert spectra.a2f_mean.shape == spectra.a2f_std.shape == (2, len(BIN_CENTRES_MEV))
    assert np.isfinite(spectra.a2f_mean[0]).all() and np.isnan(spectra.a2f_mean[1]).all()
    assert (spectra.a2f_std[0] >= 0).all() and np.isnan(spectra.a2f_std[1]).all()
    # the table's lambda is that of the mean spectrum returned
    assert a2f_properties(spectra.omega_meV, spectra.a2f_mean[0])["lambda"] == pytest.approx(table["lambda"][0],
                                                                                              rel=1e-9)


# --------------------------------------------------------------------------------------------
# 8. a single member has no spread
# --------------------------------------------------------------------------------------------
def test_a_single_member_reports_nan_spread_with_one_warning(demo, caplog):
    one = load_ensemble(demo.run("cso", 0))
    structure = load_structure(demo.demo_dir / "structures" / "demo-0001.cif")
    with caplog.at_level(logging.WARNING, logger="betenet"):
        table, spectra = one.predict_structures([structure, structure], ids=["a", "b"], spectra=True)
    notes = [r.getMessage() for r in caplog.records if "a single member has no spread" in r.getMessage()]
    assert len(notes) == 1
    stds = [c for c in table.columns if c.endswith("_std")]
    assert len(stds) == 4 and table[stds].isna().all().all()
    assert np.isnan(spectra.a2f_std).all() and np.isfinite(spectra.a2f_mean).all()
    assert math.isfinite(table["lambda"][0])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="betenet"):
        two = load_ensemble(demo.sweep("cso")).predict_structures([structure])
    assert not [r for r in caplog.records if "no spread" in r.getMessage()]
    assert (two[stds].to_numpy() >= 0).all()


def test_a_single_member_csv_leaves_the_spread_empty(demo, tmp_path, capsys, caplog):
    cif = tmp_path / "one.cif"
    shutil.copy(demo.demo_dir / "structures" / "demo-0001.cif", cif)
    out = tmp_path / "p.csv"
    with caplog.at_level(logging.WARNING, logger="betenet"):
        code, _, _ = run(capsys, "predict", "--ensemble", demo.run("cso", 0), cif, "--out", out)
    assert code == 0 and sum("a single member has no spread" in r.getMessage() for r in caplog.records) == 1
    row = read_csv(out)[0]
    assert row["lambda"] != "" and all(row[c] == "" for c in row if c.endswith("_std"))
