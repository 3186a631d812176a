"""Nothing silent, part 2 (issue 20): inputs that cannot be physical are refused with one line naming the
input, wherever they enter. Structures (atoms closer than half their covalent radii, an absurd volume
per atom, more atoms than the phonons limit) in every reader, phonons before any force and DFT inputs;
site PhDOS scaled by 1e6, negative, on a cm^-1 grid; a labels row of another structure (a recorded
structure hash, or a labels folder whose own structure of that id differs); DFT settings out of range
before anything runs; analyze-a2f on a spectrum with weight at omega -> 0 or at 40,000 meV warns.
Each test is a finding that passed silently before."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from _cli import refused, run
from betenet.data.structures import load_structure, structure_hash
from betenet.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")


def pair(d: float, element: str = "Al", a: float = 4.05) -> Structure:
    """Two atoms ``d`` Å apart in a cubic cell."""
    return Structure(Lattice.cubic(a), [element, element], [[0, 0, 0], [d / a, 0, 0]])


def cif(structure: Structure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    structure.to(filename=str(path))
    return path


# --------------------------------------------------------------------------------------------
# 1. structures: one check, in every reader
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("d", [0.1, 0.3, 0.6])
def test_atoms_too_close_are_refused_by_the_reader(d):
    """Atoms 0.1 / 0.3 / 0.6 Å apart went on to phonons (MemoryError, 4.45 GiB, a grid to 301,082 meV)."""
    with pytest.raises(InputError, match=rf"^close: atoms 0 \(Al\) and 1 \(Al\) are {d:.3f} Å apart \(below 0.5 x "
                                         r"the sum of their covalent radii, 1.21 Å\)$"):
        load_structure(pair(d), name="close")


def test_real_structures_pass_and_absurd_cells_do_not(structures_dir):
    for path in sorted(structures_dir.glob("*.cif"))[:40]:  # the paper's structures come no closer than 0.75
        load_structure(path)
    load_structure(pair(2.0))  # 2.0 Å: above 1.21
    with pytest.raises(InputError, match=r"atom 0 \(Nb\) is 0.330 Å from its own periodic image"):
        load_structure(Structure(Lattice.cubic(0.33), ["Nb"], [[0, 0, 0]]))  # a cell in nm read as Å
    with pytest.raises(InputError, match=r"8e\+03 Å\^3 per atom, above 1000 Å\^3"):
        load_structure(Structure(Lattice.cubic(20.0), ["Al"], [[0, 0, 0]]))
    with pytest.raises(InputError, match=r"0.343 Å\^3 per atom, below 0.5 Å\^3"):
        load_structure(Structure(Lattice.cubic(0.7), ["H"], [[0, 0, 0]]))


def test_a_batch_reports_the_structure_and_goes_on(tmp_path):
    from betenet.data.sources.directory import load_directory

    root = tmp_path / "data"
    cif(pair(2.0), root / "structures" / "ok.cif")
    cif(pair(0.3), root / "structures" / "close.cif")
    data = load_directory(root)
    assert [e.id for e in data.entries] == ["ok"]
    assert dict(data.rejected)["close"].startswith("structures/close.cif: atoms 0 (Al) and 1 (Al) are 0.300 Å apart")


@pytest.mark.parametrize("d", [0.1, 0.3, 0.6])
def test_phonons_refuse_close_atoms_before_any_force(tmp_path, d):
    from betenet.phonons.batch import run_batch
    from betenet.phonons.fill import PhDOSProvider
    from betenet.phonons.settings import PhononSettings

    class NoForces:  # any force calculation fails the test
        def get_forces(self, atoms=None):
            raise AssertionError("a force was computed")

        def __getattr__(self, name):
            raise AssertionError(f"the calculator was used ({name})")

    settings = PhononSettings(potential="emt", mesh=4)
    path = cif(pair(d), tmp_path / "in" / "close.cif")
    with pytest.raises(InputError, match="no structure succeeded"):
        run_batch([str(path)], tmp_path / "out", settings, cache_dir=False, calculator=NoForces(),
                  echo=lambda _: None)
    row = json.loads((tmp_path / "out" / "phonons_report.json").read_text())["rows"][0]
    assert row["status"] == "failed" and row["reason"].startswith(f"atoms 0 (Al) and 1 (Al) are {d:.3f} Å apart")
    with pytest.raises(InputError, match=f"^close: atoms 0 \\(Al\\) and 1 \\(Al\\) are {d:.3f} Å apart"):
        PhDOSProvider(settings, cache_dir=False, calculator=NoForces()).get(pair(d), "coarse", name="close")


def test_phonons_refuse_a_cell_above_their_atom_limit(tmp_path):
    from betenet.phonons.fill import PhDOSProvider
    from betenet.phonons.settings import PhononSettings

    big = Structure(Lattice.cubic(4.05), ["Al"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    settings = PhononSettings(potential="emt", mesh=4, max_atoms=3)
    with pytest.raises(InputError, match=r"^al4: 4 atoms, above the limit of 3 \(raise phonons.max_atoms"):
        PhDOSProvider(settings, cache_dir=False, calculator=object()).get(big, "coarse", name="al4")
    assert PhononSettings(potential="emt").key() == PhononSettings(potential="emt", max_atoms=7).key()  # same result
    with pytest.raises(InputError, match="phonons.max_atoms"):
        PhononSettings(potential="emt", max_atoms=0)


def test_dft_inputs_refuse_close_atoms_and_write_nothing(tmp_path, capsys):
    path = cif(pair(0.3), tmp_path / "close.cif")
    code, _, err = run(capsys, "dft", "inputs", path, "--out", tmp_path / "m", "--profile", "qe_example")
    assert refused(code, err, str(path)) and "0.300 Å apart" in err, err
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------------------------
# 2. spectra: PhDOS scaled, negative, in cm^-1; a2F scaled
# --------------------------------------------------------------------------------------------
NB = Structure(Lattice.cubic(3.3), ["Nb", "Nb"], [[0, 0, 0], [0.5, 0.5, 0.5]])
GRID = np.arange(0.0, 40.0, 0.5)


def site_dos(scale: float = 1.0, grid=GRID) -> list:
    """Two sites, each a Gaussian at 20 meV integrating to 3 (times ``scale``)."""
    g = np.exp(-0.5 * ((GRID - 20.0) / 3.0) ** 2)
    g *= 3.0 / np.trapezoid(g, grid) * scale
    return [g.tolist(), g.tolist()]


def phdos(scale=1.0, grid=GRID, rows=None) -> dict:
    return {"phdos_coarse_freq_meV": list(grid), "phdos_coarse_site": rows or site_dos(scale, grid)}


def test_site_phdos_that_cannot_be_real_is_rejected_with_the_entry_named(tmp_path):
    """PhDOS x 1e6, negative DOS values, a cm^-1 grid and NaN in labels were accepted (NaN was already not)."""
    from betenet.data.sources.directory import load_directory

    negative = site_dos()
    negative[1][30] = -0.5
    records = {"ok": phdos(), "scaled": phdos(1e6), "negative": phdos(rows=negative),
               "cm": phdos(grid=GRID / 0.1239841984), "nan": phdos(rows=[[float("nan")] * len(GRID)] * 2)}
    root = tmp_path / "data"
    for name in records:
        cif(NB, root / "structures" / f"{name}.cif")
    (root / "labels.json").write_text(json.dumps([{"id": k, **v} for k, v in records.items()]))
    data = load_directory(root)
    rejected = dict(data.rejected)
    assert [e.id for e in data.entries] == ["ok"]
    assert rejected["scaled"] == ("phdos_coarse_site: site 0 integrates to 3e+06 states, not 3 (one per vibrational "
                                  "mode; accepted within a factor 1000): scaled values?")
    assert rejected["negative"].startswith("phdos_coarse_site: site 1 has DOS -0.5 at 15 meV; a density of states "
                                           "is never negative")
    assert rejected["cm"].startswith("phdos_coarse_freq_meV: weight up to 2")
    assert "above any phonon of a crystal whose lightest atom is Nb (114 meV): frequencies in cm^-1?" in rejected["cm"]
    assert "NaN" in rejected["nan"]


def test_an_a2f_scaled_by_a_million_is_held_to_the_lambda_bound():
    """An a2F x 1e6 without a lambda label trained to a lambda of millions."""
    from betenet.data.sources.base import LABEL_BOUNDS, beyond_bounds, build_entry

    a2f = 0.3 * np.exp(-0.5 * ((GRID[1:] - 20.0) / 3.0) ** 2)
    fine = build_entry("fine", NB, "Nb", {"a2f_freq_meV": GRID[1:], "a2f": a2f})
    assert beyond_bounds(fine, LABEL_BOUNDS) is None
    scaled = build_entry("scaled", NB, "Nb", {"a2f_freq_meV": GRID[1:], "a2f": 1e6 * a2f})
    reason = beyond_bounds(scaled, LABEL_BOUNDS, "data.label_bounds")
    assert reason == "lambda 231061 (of its a2F) above the bound 10 (raise data.label_bounds.lambda if it is real)"
    with pytest.raises(InputError, match="^cm: a2f_freq_meV: weight up to"):
        build_entry("cm", NB, "Nb", {"a2f_freq_meV": GRID[1:] / 0.1239841984, "a2f": a2f})


# --------------------------------------------------------------------------------------------
# 3. a labels row of another structure
# --------------------------------------------------------------------------------------------
NABI = Structure(Lattice.cubic(3.6), ["Na", "Bi"], [[0, 0, 0], [0.5, 0.5, 0.5]])
SCPT = Structure(Lattice.cubic(3.3), ["Sc", "Pt"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_a_recorded_structure_hash_must_be_the_structures(tmp_path):
    from betenet.data.sources.directory import load_directory

    root = tmp_path / "data"
    cif(NABI, root / "structures" / "x.cif")
    cif(NABI, root / "structures" / "y.cif")
    own = structure_hash(load_structure(root / "structures" / "x.cif"))
    (root / "labels.json").write_text(json.dumps([{"id": "x", "structure_hash": own, **phdos()},
                                                  {"id": "y", "structure_hash": structure_hash(SCPT), **phdos()}]))
    data = load_directory(root)
    assert [e.id for e in data.entries] == ["x"]
    assert dict(data.rejected)["y"].startswith(f"structure_hash {structure_hash(SCPT)[:12]}... of its labels row is "
                                               "not that of its structure")


def test_labels_of_another_dataset_whose_ids_collide_are_refused(tmp_path):
    """NaBi was given ScPt's PhDOS (same id, two sites each) from another folder's labels.json without a word."""
    from betenet.data.sources.directory import check_labels_structure

    other = tmp_path / "scpt"
    cif(SCPT, other / "structures" / "x.cif")
    (other / "labels.json").write_text(json.dumps([{"id": "x", **phdos()}]))
    mine = cif(NABI, tmp_path / "nabi" / "x.cif")
    with pytest.raises(InputError, match=r"^x: its row in .*scpt/labels.json belongs to .*scpt/structures/x.cif, "
                                         r"another structure \(site 0 is Na here, Sc there \(NaBi vs ScPt\)\)"):
        check_labels_structure("x", load_structure(mine), other / "labels.json", mine)
    same = other / "structures" / "x.cif"
    check_labels_structure("x", load_structure(same), other / "labels.json", same)  # its own: fine
    copy = cif(SCPT, tmp_path / "copy" / "x.cif")
    check_labels_structure("x", load_structure(copy), other / "labels.json", copy)  # the same structure elsewhere
    with pytest.raises(InputError, match=r"another cell \(a b c 3.4 3.4 3.4 Å here, a b c 3.3 3.3 3.3 Å there\)"):
        check_labels_structure("x", load_structure(cif(SCPT.copy().scale_lattice(3.4**3), tmp_path / "big" / "x.cif")),
                               other / "labels.json")


@pytest.fixture(scope="module")
def cpd_sweep(tmp_path_factory) -> Path:
    """One untrained demo_tiny CPD member (reads the coarse site PhDOS) in a run folder."""
    from _demo_ensemble import untrained_member

    return untrained_member(tmp_path_factory.mktemp("cpd"), ["variant=cpd"])


def test_predict_names_the_labels_file_of_a_refused_phdos(cpd_sweep, tmp_path, capsys):
    """A CPD prediction took ScPt's PhDOS for NaBi, and PhDOS x 1e6, without a word."""
    import pandas as pd

    other = tmp_path / "scpt"
    cif(SCPT, other / "structures" / "x.cif")
    cif(NB, other / "structures" / "nb.cif")
    labels = other / "labels.json"
    labels.write_text(json.dumps([{"id": "x", **phdos()}, {"id": "nb", **phdos(1e6)}]))
    inputs = [cif(NABI, tmp_path / "nabi" / "x.cif"), other / "structures" / "nb.cif"]
    out = tmp_path / "p.csv"
    code, _, _ = run(capsys, "predict", "--ensemble", cpd_sweep, *inputs, "--labels", labels, "--out", out)
    status = dict(zip(*pd.read_csv(out)[["id", "status"]].T.values))
    assert status["x"].startswith(f"its row in {labels} belongs to {other / 'structures' / 'x.cif'}, another")
    assert status["nb"].startswith(f"labels {labels}: phdos_coarse_site: site 0 integrates to 3e+06 states")


# --------------------------------------------------------------------------------------------
# 4. DFT settings before anything runs
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("grids.q_density=-5", "grids.q_density: must be above 0, got -5"),
    ("relax.k_density=0", "relax.k_density: must be above 0, got 0"),
    ("symprec=-1", "symprec: must be above 0"),
    ("ph.inputph.el_ph_sigma=0", "ph.inputph.el_ph_sigma: must be above 0"),
    ("collect.negative_a2f_tol=-1", "collect.negative_a2f_tol: must be at least 0"),
])
def test_dft_inputs_refuse_a_setting_out_of_range_up_front(tmp_path, capsys, override, message):
    """--set grids.q_density=-5 was accepted and failed only after the relaxation had run."""
    structure = cif(Structure(Lattice.cubic(4.05), ["Al"], [[0, 0, 0]]), tmp_path / "al.cif")
    code, _, err = run(capsys, "dft", "inputs", structure, "--out", tmp_path / "m", "--set", override)
    assert refused(code, err, message.split(":")[0]) and message in err, err
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------------------------
# 5. analyze-a2f: absurd spectra carry warnings; the numbers stay exact
# --------------------------------------------------------------------------------------------
def write_columns(path: Path, rows) -> Path:
    path.write_text("".join(f"{w} {a}\n" for w, a in rows))
    return path


def test_analyze_a2f_warns_about_weight_at_zero_frequency_and_far_above_any_phonon(tmp_path, capsys):
    """a2F 0.5 at 1e-12 meV reported lambda 5e12, and a spectrum reaching 40,000 meV a Tc of ~1900 K, as if fine."""
    zero = write_columns(tmp_path / "zero.dat", [(1e-12, 0.5), (10, 0.1), (20, 0.2), (30, 0.1)])
    code, out, err = run(capsys, "analyze-a2f", zero, "--format", "columns", "--json")
    result = json.loads(out)
    assert code == 0 and result["lambda"] > 1e11  # exact, as given
    assert [w.split(": ", 1)[1][:56] for w in result["warnings"]] == [
        "100 % of lambda comes from frequencies below 1 meV (the "]
    assert "where a real a2F vanishes as omega^2" in err
    wide = write_columns(tmp_path / "wide.dat", [(w, 0.3 * math.exp(-((w - 20000) / 8000) ** 2))
                                                 for w in range(100, 40001, 100)])
    code, out, err = run(capsys, "analyze-a2f", wide, "--format", "columns", "--json")
    assert code == 0 and "a2F has weight up to 37,100 meV, above any phonon" in err
    assert len(json.loads(out)["warnings"]) == 1
    fine = write_columns(tmp_path / "fine.dat", [(w, 0.3 * math.exp(-((w - 20.0) / 5.0) ** 2)) for w in range(1, 60)])
    code, out, err = run(capsys, "analyze-a2f", fine, "--format", "columns", "--json")
    assert code == 0 and err == "" and json.loads(out)["warnings"] == []


def test_analyze_a2f_gives_tc_zero_not_nan_as_lambda_vanishes(tmp_path, capsys):
    for value in (0.0, 1e-300):
        path = write_columns(tmp_path / "flat.dat", [(w, value) for w in range(1, 60)])
        code, out, _ = run(capsys, "analyze-a2f", path, "--format", "columns", "--json")
        result = json.loads(out)
        assert code == 0 and result["tc_allen_dynes_K"] == 0.0 and result["tc_eliashberg_K"] == 0.0
        assert result["negative_lambda_fraction"] == 0.0 and not str(result["negative_lambda_fraction"]).startswith("-")
