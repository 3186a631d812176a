"""Nothing silent (issue 20): every wrong input is refused with a one-line reason naming it, and every
output is what it claims. Each test is a finding a careless user met: a batch size of -1 that zeroed
every prediction, a μ* that blanked Tc, a seed or test fraction that ended in a traceback, an --out
that overwrote a run folder's member.json, one flat ASE cell that lost a whole batch, a Tc of 1e9 K
that trained. (Corrupt checkpoints: tests/test_training.py and tests/test_run_dir.py.)

The ensemble here is one untrained member written straight into a run folder: refusals do not need
trained weights, and it takes seconds instead of a training."""

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ase import Atoms
from ase.build import bulk

from _cli import refused, run
from betenet.errors import InputError
from betenet.training.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A sweep folder holding one untrained demo_tiny CSO member (``seed_0``) with its config."""
    from _demo_ensemble import untrained_member

    return untrained_member(tmp_path_factory.mktemp("ensemble"))


@pytest.fixture(scope="module")
def cif(tmp_path_factory) -> Path:
    from pymatgen.io.ase import AseAtomsAdaptor

    path = tmp_path_factory.mktemp("inputs") / "nb.cif"
    AseAtomsAdaptor.get_structure(bulk("Nb", "bcc", a=3.3)).to(filename=str(path))
    return path


# --------------------------------------------------------------------------------------------
# 1. batch size and mu*: refused on the command line and in Python, never a zero or blank result
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("option, value", [("--batch-size", "-1"), ("--batch-size", "0"), ("--mu-star", "-1"),
                                           ("--mu-star", "5"), ("--mu-star", "nan")])
def test_predict_refuses_a_batch_size_or_mu_star_out_of_range(sweep, cif, tmp_path, capsys, option, value):
    """--batch-size -1 zeroed every prediction (lambda 0, Tc 0, status ok, exit 0) and 0 was a
    traceback; --mu-star -1 left Tc blank and 5 gave 0, both with status ok."""
    out = tmp_path / "p.csv"
    code, _, err = run(capsys, "predict", "--ensemble", sweep, cif, "--out", out, option, value)
    assert refused(code, err, option), err
    assert not out.exists()


@pytest.mark.parametrize("command", ["evaluate", "screen", "calibrate"])
def test_every_ensemble_command_refuses_a_negative_batch_size(sweep, cif, tmp_path, capsys, command):
    args = [command, "--ensemble", sweep, "--batch-size", "-1"] + ([] if command == "calibrate" else
                                                                     ["--out", tmp_path / "o"])
    code, _, err = run(capsys, *args)
    assert refused(code, err, "--batch-size"), err
    assert not (tmp_path / "o").exists()


def test_the_python_api_refuses_them_too(sweep, cif):
    from betenet.inference import load_ensemble

    ens = load_ensemble(sweep)
    with pytest.raises(InputError, match="^batch_size: must be at least 1"):
        ens.predict_structures([cif], batch_size=-1)
    with pytest.raises(InputError, match="^batch_size: must be at least 1"):
        ens.predict_members([], batch_size=0)
    with pytest.raises(InputError, match=r"^mu_star: must be in \[0, 0.4\]"):
        ens.predict_structures([cif], mu_star=5)
    table = ens.predict_structures([cif], batch_size=1, mu_star=0.13)  # in range: predicted
    assert table.loc[0, "status"] == "ok" and math.isfinite(table.loc[0, "tc_allen_dynes_K"])


def test_analyze_a2f_names_mu_star_not_the_spectrum(tmp_path, capsys):
    """A bad --mu-star made analyze-a2f blame the spectrum ("check the values")."""
    path = tmp_path / "a2f.dat"
    path.write_text("".join(f"{w} {0.3 * math.exp(-((w - 20.0) / 5.0) ** 2)}\n" for w in range(1, 60)))
    assert run(capsys, "analyze-a2f", path, "--format", "columns")[0] == 0
    for value in ("-1", "0.9"):
        code, _, err = run(capsys, "analyze-a2f", path, "--format", "columns", "--mu-star", value)
        assert refused(code, err, "--mu-star") and str(path) not in err, err


# --------------------------------------------------------------------------------------------
# 2. training settings: seed and test fraction
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, subject", [("seed=-1", "seed"), ("data.test_fraction=1.5", "data.test_fraction"),
                                               ("data.split_seed=-2", "data.split_seed"),
                                               ("data.label_bounds.tc_K=-5", "data.label_bounds.tc_K"),
                                               ("data.subsample_fraction=1.5", "data.subsample_fraction")])
def test_training_refuses_a_setting_out_of_range_in_one_line(tmp_path, override, subject):
    """seed=-1 and data.test_fraction=1.5 ended in tracebacks (after writing into the run folder)."""
    run_dir = tmp_path / "run"
    res = subprocess.run([sys.executable, str(ROOT / "train.py"), "experiment=demo_tiny", "data.demo_size=12",
                          f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}", override],
                         cwd=tmp_path, env=dict(os.environ, WANDB_MODE="disabled"), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"train.py: error: {subject}: "), res.stderr[-2000:]
    assert not (run_dir / RunDir.HYDRA).exists() and not (run_dir / RunDir.LOCK).exists()  # nothing written


def test_the_data_module_refuses_them_from_python(tmp_path):
    from betenet.data.datamodule import BetenetDataModule

    for kwargs, subject in (({"seed": -1}, "seed"), ({"test_fraction": 1.5}, "test_fraction"),
                            ({"test_fraction": 0.0}, "test_fraction"), ({"batch_size": 0}, "batch_size"),
                            ({"label_bounds": {"Tc": 400}}, "label_bounds.Tc"),
                            ({"subsample_fraction": 1.0}, "subsample_fraction")):
        with pytest.raises(InputError) as err:
            BetenetDataModule(source="demo", cache_dir=str(tmp_path), **kwargs)
        assert err.value.subject == subject


# --------------------------------------------------------------------------------------------
# 4. outputs never overwrite a run folder's files
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, clash", [("member.csv", "member.json"), ("metrics.csv", "metrics.csv"),
                                         ("bootstrap.csv", "bootstrap.json"),
                                         ("checkpoints/p.csv", "checkpoints/p.csv")])
def test_predict_never_writes_over_a_run_folders_files(sweep, cif, capsys, name, clash):
    """--out <run>/member.csv wrote its spectra over the run's member.json, after which the run folder
    refused its own member."""
    member = RunDir(sweep / "seed_0")
    before = {p: p.read_bytes() for p in member.path.rglob("*") if p.is_file()}
    code, _, err = run(capsys, "predict", "--ensemble", sweep, cif, "--out", member.path / name)
    assert refused(code, err, str(member.path / clash)), err
    assert f"would overwrite a file of the run folder {member.path}" in err
    assert {p: p.read_bytes() for p in member.path.rglob("*") if p.is_file()} == before


def test_a_new_file_beside_a_run_folders_records_is_allowed(sweep):
    from betenet.inference.predict import check_outputs

    check_outputs([(sweep / "seed_0" / "predictions.csv", "--out")], [])  # no record of the run: fine
    with pytest.raises(InputError, match="would overwrite a file of the run folder"):
        check_outputs([(sweep / "seed_0" / RunDir.HYDRA / "config.yaml", "--out")], [])


# --------------------------------------------------------------------------------------------
# 5. the Python API: one bad structure fails its own row; ids are unique
# --------------------------------------------------------------------------------------------
def test_a_flat_ase_cell_fails_its_own_row_only(sweep):
    """Three lattice vectors in one plane (zero volume) raised LinAlgError and lost the whole batch."""
    from betenet.inference import load_ensemble

    flat = Atoms("Nb", positions=[[0, 0, 0]], cell=[[1, 0, 0], [2, 0, 0], [0, 0, 3]], pbc=True)
    table = load_ensemble(sweep).predict_structures([bulk("Nb", "bcc", a=3.3), flat, bulk("Nb", "bcc", a=3.4)])
    assert list(table["status"]) == ["ok", "lattice is singular (cell volume 0 Å^3)", "ok"]
    assert math.isnan(table.loc[1, "lambda"]) and math.isfinite(table.loc[2, "lambda"])


def test_atoms_too_close_fail_their_own_row(sweep):
    """Atoms 0.3 Å apart were predicted like any crystal (the graph refused only below 0.5 Å, whatever the
    elements); the shared plausibility check names them and the batch goes on."""
    from betenet.inference import load_ensemble

    close = Atoms("Nb2", positions=[[0, 0, 0], [0.3, 0, 0]], cell=[3.3, 3.3, 3.3], pbc=True)
    table = load_ensemble(sweep).predict_structures([bulk("Nb", "bcc", a=3.3), close])
    assert table.loc[0, "status"] == "ok"
    assert table.loc[1, "status"] == ("atoms 0 (Nb) and 1 (Nb) are 0.300 Å apart (below 0.5 x the sum of their "
                                      "covalent radii, 1.64 Å)")


def test_repeated_ids_are_refused(sweep):
    from betenet.inference import load_ensemble

    nb = bulk("Nb", "bcc", a=3.3)
    with pytest.raises(InputError, match="^ids: repeated within one call: a; give each structure its own id"):
        load_ensemble(sweep).predict_structures([nb, nb, nb], ids=["a", "b", "a"])


# --------------------------------------------------------------------------------------------
# 6. labels far outside physical ranges are rejected unless the bound is raised
# --------------------------------------------------------------------------------------------
def test_labels_beyond_their_bounds_are_rejected_unless_raised(tmp_path, caplog):
    """A Tc of 1e9 K (or lambda 50) was accepted and trained to a validation loss of 1.4e9."""
    from pymatgen.io.ase import AseAtomsAdaptor

    from betenet.data.datamodule import BetenetDataModule

    root = tmp_path / "data"
    (root / "structures").mkdir(parents=True)
    labels = {"ok": 9.2, "typo": 1.0e9, "hot": 350.0}
    for k, name in enumerate(labels):
        AseAtomsAdaptor.get_structure(bulk("Nb", "bcc", a=3.3 + 0.1 * k)).to(
            filename=str(root / "structures" / f"{name}.cif"))
    records = [{"id": i, "tc_K": tc} for i, tc in labels.items()]
    records.append({"id": "strong", "lambda": 50.0})
    AseAtomsAdaptor.get_structure(bulk("V", "bcc", a=3.0)).to(filename=str(root / "structures" / "strong.cif"))
    (root / "labels.json").write_text(json.dumps(records))
    (root / "splits.json").write_text(json.dumps({"train": list(labels) + ["strong"], "test": []}))

    def setup(**kw):
        dm = BetenetDataModule(source="directory", root=str(root), cache_dir=str(tmp_path / "c"), filters=[], **kw)
        dm.setup()
        return dm

    with caplog.at_level(logging.WARNING, logger="betenet.data.datamodule"):
        dm = setup()
    rejected = dict(dm.built.rejected)
    assert set(dm.built.graphs) == {"ok"}
    assert rejected["typo"] == "tc_K 1e+09 above the bound 300 (raise data.label_bounds.tc_K if it is real)"
    assert rejected["hot"].startswith("tc_K 350 above the bound 300")
    assert rejected["strong"].startswith("lambda 50 above the bound 10")
    assert "label bounds: 3 entries rejected" in caplog.text
    dm = setup(label_bounds={"tc_K": 400, "lambda": None})  # raised and lifted: a cache of its own
    assert set(dm.built.graphs) == {"ok", "hot", "strong"} and list(dict(dm.built.rejected)) == ["typo"]


def test_ctrl_c_is_one_line_and_status_130(monkeypatch, capsys):
    """An interrupted command (Ctrl-C in a long phonons batch, say) ends with one line, not a traceback."""
    from betenet import cli

    def interrupted(args):
        raise KeyboardInterrupt

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    sub.choices["analyze-a2f"].set_defaults(func=interrupted)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main(["analyze-a2f", "x.dos"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted; what was finished is kept" in err


def test_evaluate_refuses_a_test_split_holding_training_entries(demo, tmp_path, capsys):
    """A "test" split holding entries the members trained on (the demo folder copied with a splits.json that
    calls three of the members' training entries "test", as a changed dataset can) is refused with the count;
    --include-trained scores it and reports how many it holds."""
    import json
    import shutil

    from betenet.cli import main
    from betenet.inference import load_ensemble

    trained, unknown = load_ensemble(demo.sweep("cso")).trained_ids()
    assert trained and not unknown
    folder = tmp_path / "data"
    shutil.copytree(demo.demo_dir, folder)
    ids = sorted(p.stem for p in (folder / "structures").iterdir())
    test = sorted(trained & set(ids))[:3]
    (folder / "splits.json").write_text(json.dumps({"train": [i for i in ids if i not in test], "test": test}))
    args = ["evaluate", "--ensemble", str(demo.sweep("cso")), "--data", str(folder), "--data-source", "directory",
            "--split", "test", "--json"]
    assert main(args + ["--out", str(tmp_path / "e1")]) == 2
    err = capsys.readouterr().err
    assert "3 of its 3 entries are in the members' training set" in err and "--include-trained" in err
    assert not (tmp_path / "e1").exists()
    assert main(args + ["--out", str(tmp_path / "e2"), "--include-trained"]) == 0
    assert json.loads(capsys.readouterr().out)["entries_trained_on"] == 3
