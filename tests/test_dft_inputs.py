"""Settings profiles and input decks (betenet.dft.settings / qe_input / inputs): every deck carries the
profile's settings, the k/q grids are betenet.physics.grids' standardized grids, atoms follow the CIF."""

import io
import stat

import numpy as np
import pytest
from ase.io import read
from ase.io.espresso import read_fortran_namelist

from betenet.data.structures import load_structure
from betenet.dft.inputs import write_inputs
from betenet.dft.qe_input import fortran_value, namelist
from betenet.dft.settings import load_settings, profile_names
from betenet.dft.workflow import read_workflow
from betenet.errors import InputError
from betenet.physics.grids import commensurate_kq_grids, target_grid
from betenet.physics.units import CMM1_TO_MEV

#: Real structures from the dataset: a binary, a ternary with 8 atoms, a quaternary (4 elements).
IDS = ("11", "115", "1")


def deck(path):
    """(namelists, card lines) of a deck, read by ASE's independent namelist reader."""
    nl, cards = read_fortran_namelist(io.StringIO(path.read_text()))
    return {k: dict(v) for k, v in nl.items()}, cards


def test_profiles_hold_the_paper_and_example_settings():
    assert {"paper", "qe_example"} <= set(profile_names())
    p = load_settings("paper")
    assert (p.pw.system["ecutwfc"], p.pw.system["ecutrho"]) == (75.0, 350.0)
    assert (p.pw.system["smearing"], p.pw.system["degauss"], p.pw.system["input_dft"]) == ("mp", 0.02, "pbesol")
    assert (p.grids.k_density, p.grids.q_density) == (40.0, 15.0)
    assert (p.ph.inputph["el_ph_sigma"], p.ph.inputph["el_ph_nsigma"]) == (0.001, 30)
    assert p.matdyn.nk == [20, 20, 20] and p.coarse_phdos.q_grid == [2, 2, 2] and p.coarse_phdos.nk == [20, 20, 20]
    assert p.relax.enabled and p.edos.occupations.startswith("tetrahedra") and p.collect.a2f_smearing_Ry == 0.02
    q = load_settings("qe_example")
    assert (q.grids.k_grid, q.grids.phonon_k_grid, q.grids.q_grid) == ([16] * 3, [8] * 3, [4] * 3)
    assert q.pw.system == {"ecutwfc": 15.0, "occupations": "smearing", "smearing": "marzari-vanderbilt",
                           "degauss": 0.05}
    assert q.masses == {"Al": 26.98} and q.pseudo.pattern.format(symbol="Al") == "Al.pz-vbc.UPF"


@pytest.mark.parametrize("override,match", [
    (["pw.sytem.ecutwfc=30"], "sytem"),
    (["pw.system.prefix=x"], "set by the pipeline"),
    (["pw.control.calculation=nscf"], "set per step"),
    (["grids.k_grid=[9,9,9]"], "give both grids.k_grid and grids.q_grid"),
    (["grids.k_grid=[8,8,8]", "grids.q_grid=[3,3,3]"], "not commensurate"),
    (["collect.a2f_smearing_Ry=0.0205"], "not one of the el-ph smearings"),
    (["matdyn.ndos=50"], "exactly one of"),
    (["cell=conventional"], "cell must be"),
    (["run.np=0"], "run.np"),
])
def test_bad_settings_are_refused(override, match):
    with pytest.raises(InputError, match=match):
        load_settings("paper", override)


def test_unknown_profile_and_missing_file():
    with pytest.raises(InputError, match="unknown DFT profile"):
        load_settings("papr")
    with pytest.raises(InputError, match="not found"):
        load_settings("/nonexistent/dft.yaml")


def test_fortran_values_and_namelist():
    assert [fortran_value(v) for v in (True, False, 3, 0.5, 1e-10, "it's")] == \
           [".true.", ".false.", "3", "0.5", "1e-10", "'it''s'"]
    with pytest.raises(InputError):
        fortran_value([1, 2], "nq")
    nl, _ = read_fortran_namelist(io.StringIO(namelist("input", {"la2F": True, "fildyn": "x.dyn", "ndos": 50})))
    assert dict(nl["input"]) == {"la2f": True, "fildyn": "x.dyn", "ndos": 50}


@pytest.mark.parametrize("entry_id", IDS)
def test_paper_decks_from_real_structures(structures_dir, tmp_path, entry_id):
    s = load_settings("paper", ["relax.enabled=false"])
    out = tmp_path / entry_id
    summary = write_inputs(structures_dir / f"{entry_id}.cif", out, s)
    assert summary["notes"]  # the SG15 folder is not on this machine: names not checked, said so
    cell = load_structure(out / "structure.cif")
    k_grid, q_grid = commensurate_kq_grids(cell, 40.0, 15.0)
    assert (summary["k_grid"], summary["q_grid"]) == (list(k_grid), list(q_grid))
    # the input cell and the standard primitive cell are the same crystal
    given = load_structure(structures_dir / f"{entry_id}.cif")
    assert cell.volume * len(given) == pytest.approx(given.volume * len(cell), rel=1e-6)

    nl, cards = deck(out / "scf_la2f.in")
    sysnl = nl["system"]
    assert (sysnl["ecutwfc"], sysnl["ecutrho"], sysnl["degauss"], sysnl["smearing"]) == (75.0, 350.0, 0.02, "mp")
    assert sysnl["input_dft"] == "pbesol" and sysnl["la2f"] is True and sysnl["nat"] == len(cell)
    assert cards[cards.index("K_POINTS automatic") + 1].split() == [str(n) for n in k_grid] + ["0", "0", "0"]
    assert "la2f" not in deck(out / "edos_scf.in")[0]["system"]
    # ASE reads the deck back as the CIF's structure, atom by atom (the order of every site spectrum)
    atoms = read(out / "scf_la2f.in", format="espresso-in")
    assert atoms.get_chemical_symbols() == [site.specie.symbol for site in cell]
    np.testing.assert_allclose(atoms.cell.cellpar(), cell.lattice.parameters, rtol=1e-8)
    d = atoms.get_scaled_positions(wrap=False) - cell.frac_coords
    np.testing.assert_allclose(d - np.round(d), 0.0, atol=1e-8)

    ph = deck(out / "ph.in")[0]["inputph"]
    assert [ph["nq1"], ph["nq2"], ph["nq3"]] == list(q_grid) and ph["ldisp"] is True
    assert (ph["electron_phonon"], ph["el_ph_sigma"], ph["el_ph_nsigma"]) == ("interpolated", 0.001, 30)
    assert deck(out / "q2r.in")[0]["input"]["la2f"] is True
    md = deck(out / "matdyn.in")[0]["input"]
    assert (md["dos"], md["la2f"], md["nk1"], md["nk2"], md["nk3"]) == (True, True, 20, 20, 20)
    assert md["deltae"] == pytest.approx(0.1 / CMM1_TO_MEV)  # 0.1 meV in cm^-1
    coarse = deck(out / "ph_coarse.in")[0]["inputph"]
    assert [coarse["nq1"], coarse["nq2"], coarse["nq3"]] == [2, 2, 2] and "electron_phonon" not in coarse
    assert deck(out / "matdyn_coarse.in")[0]["input"]["fldos"] == "phonon_coarse.dos"
    nscf = deck(out / "edos_nscf.in")[0]
    assert nscf["system"]["occupations"] == "tetrahedra_opt" and "degauss" not in nscf["system"]
    assert nscf["control"]["calculation"] == "nscf" and nscf["control"]["outdir"] == "./tmp_edos/"
    assert nscf["control"]["pseudo_dir"].endswith("pseudo/pseudodojo")  # PseudoDojo for the eDOS


def test_relax_first_writes_only_the_relax_deck(structures_dir, tmp_path):
    s = load_settings("paper")
    out = tmp_path / "115"
    summary = write_inputs(structures_dir / "115.cif", out, s)
    wf = read_workflow(out)
    assert [st.name for st in wf.steps[:3]] == ["relax", "prepare", "scf_la2f"]
    assert sorted(p.name for p in out.glob("*.in")) == ["relax.in"]
    assert "scf_la2f.in" in wf.step("prepare").products
    nl, cards = deck(out / "relax.in")
    assert nl["control"]["calculation"] == "vc-relax" and "cell" in nl and "ions" in nl
    cell = load_structure(out / "structure_initial.cif")
    assert summary["relax_k_grid"] == list(target_grid(cell, 40.0))
    assert not (out / "structure.cif").exists()  # written from the relaxed cell by `prepare`


def test_example_profile_matches_qe_example03(tmp_path):
    from ase.build import bulk
    from ase.io import write
    from ase.units import Bohr

    write(tmp_path / "Al.cif", bulk("Al", "fcc", a=7.5 * Bohr))  # celldm(1) = 7.5 bohr
    out = tmp_path / "Al"
    summary = write_inputs(tmp_path / "Al.cif", out, load_settings("qe_example"))
    assert summary["steps"][:5] == ["scf_la2f", "scf", "ph", "q2r", "matdyn"]
    for name, k in (("scf_la2f.in", "16 16 16"), ("scf.in", "8 8 8")):
        nl, cards = deck(out / name)
        assert cards[cards.index("K_POINTS automatic") + 1] == f"{k} 0 0 0"
        assert nl["electrons"] == {"conv_thr": 1e-8, "mixing_beta": 0.7}
        assert cards[1] == "Al 26.980000 Al.pz-vbc.UPF"
    assert deck(out / "scf_la2f.in")[0]["system"]["la2f"] is True
    assert "la2f" not in deck(out / "scf.in")[0]["system"]
    atoms = read(out / "scf.in", format="espresso-in")
    assert atoms.get_volume() == pytest.approx((7.5 * Bohr) ** 3 / 4, rel=1e-8)  # fcc primitive cell
    ph = deck(out / "ph.in")[0]["inputph"]
    assert (ph["tr2_ph"], ph["fildvscf"], ph["el_ph_sigma"], ph["el_ph_nsigma"]) == (1e-10, "aldv", 0.005, 10)
    assert (out / "ph.in").read_text().splitlines()[0] == "Electron-phonon coefficients for Al"
    md = deck(out / "matdyn.in")[0]["input"]
    assert (md["asr"], md["nk1"], md["ndos"], md["la2f"], md["dos"]) == ("simple", 10, 50, True, True)
    assert deck(out / "q2r.in")[0]["input"]["zasr"] == "simple"
    script = out / "run.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    text = script.read_text()
    assert "dft run ." in text and "ph.x -in ph.in > ph.out" in text


def test_pseudopotentials_checked_when_the_folder_exists(tmp_path):
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "Al.cif", bulk("Al", "fcc", a=4.05))
    (tmp_path / "pseudo").mkdir()
    s = load_settings("paper", [f"pseudo.dir={tmp_path / 'pseudo'}", "relax.enabled=false", "edos.enabled=false"])
    with pytest.raises(InputError, match="Al_ONCV_PBE-1.2.upf"):
        write_inputs(tmp_path / "Al.cif", tmp_path / "out", s)
    (tmp_path / "pseudo" / "Al_ONCV_PBE-1.2.upf").write_text("")
    assert write_inputs(tmp_path / "Al.cif", tmp_path / "out", s)["notes"] == []


def test_started_folder_and_bad_structure_refused(tmp_path):
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "Al.cif", bulk("Al", "fcc", a=4.05))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "state.json").write_text("{}")
    with pytest.raises(InputError, match="started run"):
        write_inputs(tmp_path / "Al.cif", tmp_path / "out", load_settings("qe_example"))
    with pytest.raises(InputError, match="not found"):
        write_inputs(tmp_path / "missing.cif", tmp_path / "new", load_settings("qe_example"))
