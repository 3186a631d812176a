"""Predictions you can trust, on the tiny trained demo ensembles: output paths that would destroy a
file are refused, the exit status says when nothing was predicted, unseen elements and atoms
without neighbours are warned about, the largest compatible group of members is kept, and the
Python entry point ``Ensemble.predict_structures`` gives the CLI's table."""

import csv
import math
import shutil

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from betenet.cli import main
from betenet.data.structures import load_structure
from betenet.inference import load_ensemble
from betenet.inference.inputs import SYNTHETIC_WARNING
from betenet.inference.ensemble import PROGRESS_MIN_STRUCTURES
from betenet.training.run_dir import RunDir

pytestmark = pytest.mark.usefixtures("one_thread")

NUMBERS = ["lambda", "lambda_std", "omega_log_K", "omega_log_K_std", "omega_2_K", "omega_2_K_std",
           "tc_allen_dynes_K", "tc_allen_dynes_K_std"]
# H3S (Im-3m primitive cell as a simple cubic A15-like toy: S at the corner, H on the face centres)
H3S = Structure(Lattice.cubic(3.09), ["S", "H", "H", "H"], [[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])
CF = Structure(Lattice.cubic(3.5), ["Cf"], [[0, 0, 0]])
# elemental Cs as in the shared release structure 0.cif (bcc primitive cell, nearest neighbour 4.5 Å)
CS = Structure(Lattice.from_parameters(5.19782, 5.19782, 5.19782, 109.471, 109.471, 109.471), ["Cs"], [[0, 0, 0]])


def run(capsys, *argv):
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def inputs_noted(row) -> str:
    """The warnings about a row's inputs, without the physics flag of the prediction itself (the tiny
    demo members are under-trained, so some of their spectra are rightly flagged implausible) and
    without the note every prediction of demo-trained members carries (test_demo_members_say_so)."""
    return "; ".join(w for w in row["warnings"].split("; ")
                     if w and not w.startswith("implausible spectrum") and w != SYNTHETIC_WARNING)


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def seen_by_all(ens) -> set[str]:
    return set.intersection(*(set(m.train_elements) for m in ens.members))


def clean_structure(demo, ens):
    """A demo structure whose elements every member trained on."""
    common = seen_by_all(ens)
    for path in sorted((demo.demo_dir / "structures").glob("*.cif")):
        s = load_structure(path)
        if {site.specie.symbol for site in s} <= common:
            return path, s
    raise AssertionError("no demo structure made of elements every member saw")


# --------------------------------------------------------------------------------------------
# 7. --out never destroys a file
# --------------------------------------------------------------------------------------------
def test_out_that_would_overwrite_a_file_is_refused(demo, tmp_path, capsys):
    cif = tmp_path / "a.cif"
    shutil.copy(demo.demo_dir / "structures" / "demo-0001.cif", cif)
    original = cif.read_bytes()
    code, _, err = run(capsys, "predict", "--ensemble", demo.sweep("cso"), cif, "--out", cif)
    assert code == 2 and f"{cif}: --out would overwrite the input {cif}" in err and len(err.splitlines()) == 1
    assert cif.read_bytes() == original
    # a CSV named .json would be overwritten by its own spectra
    code, _, err = run(capsys, "predict", "--ensemble", demo.sweep("cso"), cif, "--out", tmp_path / "p.json")
    assert code == 2 and "would be one file" in err and not (tmp_path / "p.json").exists()
    # the spectra file (same name, .json) must not be an input either: here the --labels file
    labels = tmp_path / "labels.json"
    shutil.copy(demo.demo_dir / "labels.json", labels)
    before = labels.read_bytes()
    code, _, err = run(capsys, "predict", "--ensemble", demo.sweep("cpd"), cif, "--labels", labels,
                       "--out", tmp_path / "labels.csv")
    assert code == 2 and "the a2F spectra file" in err and f"would overwrite the input {labels}" in err
    assert labels.read_bytes() == before and not (tmp_path / "labels.csv").exists()
    # a folder: a clear line, not a traceback
    code, _, err = run(capsys, "predict", "--ensemble", demo.sweep("cso"), cif, "--out", tmp_path)
    assert code == 2 and f"{tmp_path}: --out is a folder" in err and len(err.splitlines()) == 1


# --------------------------------------------------------------------------------------------
# 8. exit status
# --------------------------------------------------------------------------------------------
def test_nothing_predicted_exits_non_zero_with_the_rows_written(demo, tmp_path, capsys):
    empty = tmp_path / "empty.cif"
    empty.write_text("")
    out = tmp_path / "p.csv"
    code, _, err = run(capsys, "predict", "--ensemble", demo.sweep("cso"), empty, tmp_path / "absent.cif",
                       "--out", out)
    assert code == 1 and "no input could be predicted" in err and str(out) in err
    assert [(r["id"], r["status"]) for r in read_csv(out)] == [("empty", "file is empty"),
                                                               (str(tmp_path / "absent.cif"), "file not found")]
    code, _, _ = run(capsys, "predict", "--ensemble", demo.sweep("cso"), empty,
                     demo.demo_dir / "structures" / "demo-0001.cif", "--out", out)
    assert code == 0 and [r["status"] for r in read_csv(out)] == ["file is empty", "ok"]


# --------------------------------------------------------------------------------------------
# 9. warnings: unseen elements, atoms without a neighbour
# --------------------------------------------------------------------------------------------
def test_unseen_elements_and_lonely_atoms_are_warned(demo, tmp_path, capsys):
    ens = load_ensemble(demo.sweep("cso"))
    trained = set().union(*(m.train_elements for m in ens.members))
    assert {"H", "S", "Cf", "Cs"}.isdisjoint(trained)  # the demo set holds none of them
    path, clean = clean_structure(demo, ens)
    for name, s in (("h3s", H3S), ("cf", CF), ("cs", CS)):
        s.to(filename=str(tmp_path / f"{name}.cif"))
    out = tmp_path / "p.csv"
    code, _, _ = run(capsys, "predict", "--ensemble", demo.sweep("cso"), tmp_path / "h3s.cif", tmp_path / "cf.cif",
                     tmp_path / "cs.cif", path, "--out", out)
    assert code == 0
    rows = {r["id"]: r for r in read_csv(out)}
    assert all(r["status"] == "ok" for r in rows.values())  # predicted, not refused ...
    assert inputs_noted(rows["h3s"]) == "unseen elements: H, S (in no member's training set)"  # ... but qualified
    assert inputs_noted(rows["cf"]) == "unseen elements: Cf (in no member's training set)"
    assert inputs_noted(rows["cs"]) == ("unseen elements: Cs (in no member's training set); atom 0 (Cs) without a "
                                        "neighbour within 4 Å: only the self-edge is used (as the release did)")
    assert math.isfinite(float(rows["cs"]["lambda"]))
    assert inputs_noted(rows[path.stem]) == ""  # clean: nothing about its inputs
    # an element only some members trained on
    element = next(iter({site.specie.symbol for site in clean}))
    ens.members[1].train_elements = ens.members[1].train_elements - {element}
    table = ens.predict_structures([clean])
    assert inputs_noted(table.iloc[0]) == f"element {element} seen by only 1 of 2 members"


def test_demo_members_say_so_in_every_row(demo, tmp_path, capsys):
    """Members trained on the synthetic demo set predict real crystals only with a warning saying so."""
    ens = load_ensemble(demo.sweep("cso"))
    path, structure = clean_structure(demo, ens)
    out = tmp_path / "p.csv"
    code, _, _ = run(capsys, "predict", "--ensemble", demo.sweep("cso"), path, "--out", out)
    assert code == 0 and read_csv(out)[0]["warnings"].startswith(SYNTHETIC_WARNING)
    assert ens.predict_structures([structure]).loc[0, "warnings"].startswith(SYNTHETIC_WARNING)
    for m in ens.members:  # the same members, as if trained on a real dataset folder
        m.config = {**m.config, "data": {**m.config["data"], "source": "directory"}}
    assert SYNTHETIC_WARNING not in ens.predict_structures([structure]).loc[0, "warnings"]


def test_the_shared_cs_structure_is_predicted(demo, structures_dir, tmp_path, capsys):
    out = tmp_path / "cs.csv"
    code, _, _ = run(capsys, "predict", "--ensemble", demo.sweep("cso"), structures_dir / "0.cif", "--out", out)
    row = read_csv(out)[0]
    assert code == 0 and row["status"] == "ok" and "without a neighbour within 4 Å" in row["warnings"]


# --------------------------------------------------------------------------------------------
# 10. ensemble membership: the largest compatible group
# --------------------------------------------------------------------------------------------
def test_the_largest_compatible_group_is_kept(demo, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(demo.run("cpd", 0), sweep / "seed_0")  # the odd one out comes first
    shutil.copytree(demo.run("cso", 0), sweep / "seed_1")
    shutil.copytree(demo.run("cso", 1), sweep / "seed_2")
    ens = load_ensemble(sweep)
    assert ens.names == ["seed_1", "seed_2"] and ens.variant == "cso"
    reason = dict(ens.skipped)["seed_0"]
    assert reason.startswith("different network: ") and "net.in_dim: 169 here, 118 in the 2 member(s) kept" in reason
    # the same network, but graphs built another way
    run = RunDir(sweep / "seed_0")
    shutil.rmtree(run.path)
    shutil.copytree(demo.run("cso", 0), run.path)
    run.file(run.CONFIG).write_text(run.file(run.CONFIG).read_text().replace("self_loops: true", "self_loops: false"))
    ens = load_ensemble(sweep)
    assert ens.names == ["seed_1", "seed_2"]
    assert dict(ens.skipped)["seed_0"] == ("different graph settings: data.self_loops: false here, true in the 2 "
                                           "member(s) kept")


# --------------------------------------------------------------------------------------------
# The Python entry point and the progress bar
# --------------------------------------------------------------------------------------------
def test_predict_structures_gives_the_cli_table(demo, tmp_path, capsys):
    files = [demo.demo_dir / "structures" / f"demo-000{k}.cif" for k in (1, 2, 3)]
    out = tmp_path / "p.csv"
    assert run(capsys, "predict", "--ensemble", demo.sweep("cso"), *files, "--out", out)[0] == 0
    rows = read_csv(out)
    ens = load_ensemble(demo.sweep("cso"))
    structures = [load_structure(files[0]), load_structure(files[1]).to_ase_atoms(), files[2]]
    table = ens.predict_structures(structures, ids=[p.stem for p in files])
    assert list(table.columns) == list(rows[0])
    assert list(table["id"]) == [r["id"] for r in rows] and list(table["status"]) == ["ok"] * 3
    for col in NUMBERS:
        np.testing.assert_allclose(table[col].to_numpy(), [float(r[col]) for r in rows], rtol=1e-5, atol=1e-9)
    # a dict names the rows; a bad structure gets its reason and NaN, the others are predicted
    broken = load_structure(files[0]).copy()
    broken.replace(0, broken[0].species, [float("nan"), 0, 0])
    table = ens.predict_structures({"good": files[0], "bad": broken})
    assert list(table["id"]) == ["good", "bad"] and table["status"][0] == "ok"
    assert "non-finite coordinate" in table["status"][1] and math.isnan(table["lambda"][1])


def test_progress_bar_on_many_structures(demo, capsys):
    ens = load_ensemble(demo.sweep("cso"))
    s = load_structure(demo.demo_dir / "structures" / "demo-0001.cif")
    capsys.readouterr()
    ens.predict_structures([s] * 5)
    assert "predict" not in capsys.readouterr().err
    table = ens.predict_structures([s] * PROGRESS_MIN_STRUCTURES)
    err = capsys.readouterr().err
    assert "read structures" in err and "predict" in err and len(table) == PROGRESS_MIN_STRUCTURES


def _piled_and_normal(ids):
    """An ensemble prediction (as ``Ensemble.predict`` returns it) of two spectra in the order of
    ``ids``: "piled", its weight in the two softest bins (lambda above 3, omega_log below 30 K: what
    Tc-only training of the spectrum head produced), and "normal", a Gaussian at 25 meV."""
    from types import SimpleNamespace

    from betenet.physics.properties import PROPERTIES, properties
    from betenet.physics.units import BIN_CENTRES_MEV

    piled = np.zeros(51)
    piled[:2] = [2.0, 2.0]
    spectra = {"piled": piled, "normal": np.exp(-(((BIN_CENTRES_MEV - 25.0) / 6.0) ** 2)) * 0.4}
    props = properties(BIN_CENTRES_MEV, np.stack([spectra[i] for i in ids]))
    k = list(ids).index("piled")
    assert props["lambda"][k] > 3 and props["omega_log_K"][k] < 30
    return SimpleNamespace(ids=list(ids), formulas=["Nb" if i == "piled" else "Al" for i in ids], properties=props,
                           properties_std={key: np.zeros(len(ids)) for key in PROPERTIES})


def test_implausible_spectra_are_flagged_in_the_warnings_column():
    """A prediction that reaches its Tc with weight piled into the softest bins (lambda 9, omega_log
    a few K: what Tc-only training of the spectrum head produced) is flagged; a normal one is not."""
    from betenet.inference.inputs import InputRow
    from betenet.inference.predict import prediction_frame

    pred = _piled_and_normal(["piled", "normal"])
    rows = [InputRow("piled", None, graph=object()), InputRow("normal", None, graph=object())]
    table = prediction_frame(rows, pred)
    assert "implausible spectrum" in table.loc[0, "warnings"] and "lambda" in table.loc[0, "warnings"]
    assert table.loc[1, "warnings"] == ""


def test_screen_ranking_flags_implausible_spectra(tmp_path):
    """The screen's ranking carries the same flag as predict's table: an extrapolated spectrum
    (lambda 45 gave a CaBC Tc of 122 K in a JARVIS fold) must not top a ranking unmarked."""
    import csv

    from betenet.inference.candidates import ranked, write_ranking_csv
    from betenet.inference.inputs import InputRow
    from betenet.inference.predict import prediction_frame, read_table, write_csv

    pred = _piled_and_normal(["normal", "piled"])
    rows = [InputRow("normal", None, graph=object()), InputRow("piled", None, graph=object()),
            InputRow("broken", None, status="unreadable")]
    rows[0].warnings = ["element X not seen in training"]
    write_csv(prediction_frame(rows, pred), tmp_path / "predictions.csv")
    ranking = ranked(read_table(tmp_path / "predictions.csv"))
    write_ranking_csv(tmp_path / "candidates.csv", ranking)
    by_id = dict(zip(ranking["id"], ranking["warnings"]))
    assert set(by_id) == {"normal", "piled"}  # the unreadable input is not ranked
    assert by_id["normal"] == "element X not seen in training"
    assert by_id["piled"].startswith("implausible spectrum")
    with open(tmp_path / "candidates.csv", newline="") as fh:
        written = {r["id"]: r["warnings"] for r in csv.DictReader(fh)}
    assert written == by_id
