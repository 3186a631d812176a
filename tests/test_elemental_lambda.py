"""The elemental-metal λ check set (betenet/evaluation/elemental_lambda.csv): the table's content, the cells
built from it (atoms, density, nearest-neighbour distance by hand), the scores of ``check_ensemble`` against
hand-computed numbers with a stub ensemble, and one real run of the shipped ensemble on Al and Cu."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Element

from betenet.evaluation.elemental import (WEAK, ElementalLambda, build_structure, check_ensemble, markdown,
                                          read_table)

TABLE = read_table()
BY_ELEMENT = {r.element: r for r in TABLE}


def test_the_table_covers_the_metals_the_issue_names():
    elements = [r.element for r in TABLE]
    assert len(set(elements)) == len(elements) >= 20
    assert {"Na", "K", "Cu", "Ag", "Au", "Al", "Pb", "Nb"} <= set(elements)
    assert set(WEAK) <= set(elements)
    for r in TABLE:
        assert r.source and r.method, r.element
        assert 0 < r.lambda_ < 3, r.element
        assert r.structure in ("bcc", "fcc", "hcp"), r.element
        assert (r.c_A is not None) == (r.structure == "hcp"), r.element
        assert 2 < r.a_A < 6, r.element
        Element(r.element)  # a real element symbol


@pytest.mark.parametrize("row", TABLE, ids=[r.element for r in TABLE])
def test_each_cell_is_the_primitive_cell_of_the_element(row):
    s = build_structure(row)
    assert len(s) == (2 if row.structure == "hcp" else 1)
    assert {str(sp) for sp in s.species} == {row.element}
    reference = Element(row.element).density_of_solid  # kg m^-3 in pymatgen
    if reference is not None:
        assert s.density == pytest.approx(float(reference) / 1000.0, rel=0.05)
    a = row.a_A
    if row.structure == "bcc":
        nn = a * math.sqrt(3) / 2
    elif row.structure == "fcc":
        nn = a / math.sqrt(2)
    else:  # in plane a, or to the other layer sqrt(a^2/3 + c^2/4), whichever is shorter
        nn = min(a, math.sqrt(a ** 2 / 3 + row.c_A ** 2 / 4))
    found = min(n.nn_distance for n in s.get_neighbors(s[0], 1.2 * nn))
    assert found == pytest.approx(nn, abs=1e-6)


def test_cubic_cells_have_the_primitive_volume():
    for r in TABLE:
        if r.structure != "hcp":
            assert build_structure(r).volume == pytest.approx(r.a_A ** 3 / (2 if r.structure == "bcc" else 4))


class _StubEnsemble:
    """Returns the λ it is given, by id, in the shape of ``Ensemble.predict_structures``."""

    def __init__(self, values: dict):
        self.values = values  # element -> (lambda, status)
        self.calls = []

    def predict_structures(self, structures, ids=None, mu_star=None, progress=False, **kwargs):
        self.calls.append((list(ids), len(structures), mu_star))
        recs = []
        for i, s in zip(ids, structures):
            lam, status = self.values[i]
            recs.append({"id": i, "formula": s.composition.reduced_formula, "lambda": lam,
                         "lambda_std": 0.05 if status == "ok" else np.nan, "status": status,
                         "warnings": "" if status == "ok" else np.nan})
        return pd.DataFrame(recs[::-1])  # order must not matter: rows are matched by id


def _row(element, lam):
    base = BY_ELEMENT[element]
    return ElementalLambda(element, base.structure, base.a_A, base.c_A, lam, "test", "test")


ROWS = [_row("Al", 0.43), _row("Cu", 0.14), _row("Pb", 1.55), _row("Na", 0.16), _row("Nb", 1.26)]


def test_check_ensemble_scores_against_hand_computed_numbers():
    stub = _StubEnsemble({"Al": (0.53, "ok"), "Cu": (0.24, "ok"), "Pb": (1.25, "ok"), "Na": (0.10, "ok"),
                          "Nb": (np.nan, "failed")})
    res = check_ensemble(stub, rows=ROWS, mu_star=0.12)
    assert stub.calls == [(["Al", "Cu", "Pb", "Na", "Nb"], 5, 0.12)]
    # errors 0.10, 0.10, 0.30, 0.06 (Nb failed: left out)
    assert res["n"] == 4 and res["n_total"] == 5 and res["n_excluded"] == 1
    assert res["lambda_mae"] == pytest.approx(0.56 / 4)
    assert res["lambda_rmse"] == pytest.approx(math.sqrt((0.01 + 0.01 + 0.09 + 0.0036) / 4))
    # ranks ref Cu<Na<Al<Pb, pred Na<Cu<Al<Pb: d = (-1, 1, 0, 0), rho = 1 - 6*2/(4*15)
    assert res["spearman"] == pytest.approx(0.8)
    assert res["weak"] == {"Cu": pytest.approx(0.24), "Na": pytest.approx(0.10)}
    assert res["weak_all_below_0.3"] is True
    nb = next(d for d in res["rows"] if d["element"] == "Nb")
    assert nb["status"] == "failed" and nb["lambda_pred"] is None and nb["lambda_ref"] == 1.26
    assert [d["element"] for d in res["rows"]] == ["Al", "Cu", "Pb", "Na", "Nb"]
    text = markdown(res)
    assert "| Nb |" in text and "failed" in text and "0.53 ± 0.05" in text and "MAE 0.140" in text


def test_the_weak_flag_fails_on_a_strong_or_unpredicted_weak_metal():
    strong = _StubEnsemble({"Al": (0.43, "ok"), "Cu": (0.35, "ok"), "Pb": (1.55, "ok"), "Na": (0.10, "ok"),
                            "Nb": (1.26, "ok")})
    res = check_ensemble(strong, rows=ROWS)
    assert res["weak_all_below_0.3"] is False and res["n_excluded"] == 0
    assert res["lambda_mae"] == pytest.approx((0.21 + 0.06) / 5)
    missing = _StubEnsemble({"Al": (0.43, "ok"), "Cu": (np.nan, "failed"), "Pb": (1.55, "ok"),
                             "Na": (0.10, "ok"), "Nb": (1.26, "ok")})
    res = check_ensemble(missing, rows=ROWS)
    assert res["weak_all_below_0.3"] is False and res["weak"]["Cu"] is None and res["n"] == 4


def _shipped():
    from betenet.inference import load_ensemble

    try:
        return load_ensemble("jarvis-tc")
    except Exception as err:  # the shipped ensemble (or what it needs) is not there
        pytest.skip(f"the shipped ensemble cannot load: {err}")


@pytest.mark.slow
def test_the_shipped_ensemble_predicts_al_and_cu():
    res = check_ensemble(_shipped(), rows=[BY_ELEMENT["Al"], BY_ELEMENT["Cu"]])
    assert res["n"] == 2, res["rows"]
    for d in res["rows"]:
        assert d["status"] == "ok" and math.isfinite(d["lambda_pred"]) and math.isfinite(d["lambda_std"])
    assert math.isfinite(res["lambda_mae"]) and set(res["weak"]) == {"Cu"}


def test_betenet_check_elements_writes_its_files(tmp_path, monkeypatch, capsys):
    from betenet.cli import main

    stub = _StubEnsemble({r.element: (r.lambda_ + 0.1, "ok") for r in TABLE})
    stub.label = "stub"
    monkeypatch.setattr("betenet.inference.load_ensemble", lambda *args: stub)
    assert main(["check-elements", "--ensemble", "stub", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "λ MAE 0.100" in printed and "lambda_Na" in printed  # the table, then the summary lines
    record = json.loads((tmp_path / "elemental_lambda.json").read_text())
    assert record["lambda_mae"] == pytest.approx(0.1) and record["ensemble"] == "stub"
    assert (tmp_path / "elemental_lambda.md").is_file()


def test_with_elemental_labels_adds_lambda_rows_to_a_dataset(tmp_path):
    from pymatgen.core import Lattice, Structure

    from betenet.data.sources.directory import load_directory
    from betenet.evaluation.elemental import with_elemental_labels

    base = tmp_path / "base"
    (base / "structures").mkdir(parents=True)
    Structure(Lattice.cubic(2.87), ["Fe", "Al"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(
        filename=str(base / "structures" / "FeAl.vasp"), fmt="poscar")
    (base / "labels.csv").write_text("id,tc_K\nFeAl,0.5\n")
    rows = [BY_ELEMENT["Na"], BY_ELEMENT["Cu"]]
    ids = with_elemental_labels(base, tmp_path / "merged", rows)
    assert ids == ["elemental-Na", "elemental-Cu"]
    entries = {e.id: e for e in load_directory(tmp_path / "merged").entries}
    assert set(entries) == {"FeAl", "elemental-Na", "elemental-Cu"}
    assert entries["FeAl"].labels["tc_K"] == 0.5 and not np.isfinite(entries["FeAl"].labels.get("lambda", np.nan))
    na = entries["elemental-Na"]
    assert na.labels["lambda"] == pytest.approx(BY_ELEMENT["Na"].lambda_)
    assert not np.isfinite(na.labels.get("tc_K", np.nan))  # λ only: mixed supervision
    assert len(na.structure) == 1 and na.structure.lattice.volume == pytest.approx(BY_ELEMENT["Na"].a_A ** 3 / 2)
    with_elemental_labels(base, tmp_path / "merged", rows)  # a rerun rewrites the same folder
    assert len(load_directory(tmp_path / "merged").entries) == 3
