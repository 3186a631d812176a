"""Tests of betenet.data.filters on synthetic records and on duplicates built from real CIFs."""

import re
from collections import defaultdict

import numpy as np
import pytest

from betenet.data.filters import (
    FILTERS,
    FilterReport,
    apply_filters,
    duplicates,
    entry_ids,
    nan_spectra,
    negative_a2f,
    unstable,
)
from betenet.errors import InputError
from betenet.physics.units import BIN_CENTRES_MEV


def gaussian_a2f(peak_meV=20.25, width_meV=5.0):
    """A Gaussian peaked on a bin centre (20.25 meV), so its maximum is exactly 1."""
    return np.exp(-0.5 * ((BIN_CENTRES_MEV - peak_meV) / width_meV) ** 2)


# ------------------------------------------------------------------------------------------
# unstable
# ------------------------------------------------------------------------------------------


def test_unstable_threshold_and_not_applicable():
    entries = [
        {"id": "stable", "min_phonon_freq_meV": 0.0},
        {"id": "acoustic_noise", "min_phonon_freq_meV": -0.5},
        {"id": "at_threshold", "min_phonon_freq_meV": -1.0},  # "more than 1 meV": kept
        {"id": "soft", "min_phonon_freq_meV": -1.5},
        {"id": "positive", "min_phonon_freq_meV": 3.0},
        {"id": "no_phonons"},
        {"id": "none", "min_phonon_freq_meV": None},
        {"id": "nan", "min_phonon_freq_meV": float("nan")},
    ]
    kept, step = unstable(entries)
    assert kept == ["stable", "acoustic_noise", "at_threshold", "positive", "no_phonons", "none"]
    assert set(step.rejected) == {"soft", "nan"} and step.count == 2
    assert "1.5i meV" in step.rejected["soft"] and "NaN" in step.rejected["nan"]
    assert step.not_applicable == ["no_phonons", "none"]
    assert step.line() == ("unstable (imaginary modes beyond 1 meV): 8 in, 2 rejected, "
                           "6 kept, 2 not applicable")
    kept, step = unstable(entries, threshold_meV=2.0)
    assert "soft" in kept and step.count == 1
    kept, _ = unstable(entries, threshold_meV=0.0)
    assert "acoustic_noise" not in kept and "stable" in kept
    with pytest.raises(ValueError):
        unstable(entries, threshold_meV=-1.0)


# ------------------------------------------------------------------------------------------
# negative a2F and non-finite spectra
# ------------------------------------------------------------------------------------------


def test_negative_a2f_tolerance_is_relative_to_peak():
    clean = gaussian_a2f()
    rounding = clean.copy()
    rounding[-1] = -1e-5  # rounding-level negative value: 1e-5 of the peak (1.0)
    dip = clean.copy()
    dip[5] = -0.05  # 5 % of the peak
    entries = [
        {"id": "clean", "a2f": clean},
        {"id": "rounding", "a2f": rounding},
        {"id": "dip", "a2f": dip},
        {"id": "dip_scaled", "a2f": 1e6 * dip},  # same shape, other units: same verdict
        {"id": "zeros", "a2f": np.zeros(51)},
        {"id": "all_nan", "a2f": np.full(51, np.nan)},
        {"id": "nan_and_dip", "a2f": np.where(np.arange(51) == 0, np.nan, dip)},
        {"id": "no_a2f"},
    ]
    kept, step = negative_a2f(entries)
    assert set(step.rejected) == {"dip", "dip_scaled", "nan_and_dip"}
    assert kept == ["clean", "rounding", "zeros", "all_nan", "no_a2f"]
    assert step.not_applicable == ["all_nan", "no_a2f"]
    assert "-0.05 x max|a2F|" in step.rejected["dip"]
    kept, step = negative_a2f(entries, tol=0.0)
    assert "rounding" not in kept
    kept, step = negative_a2f(entries, tol=0.1)
    assert "dip" in kept and step.count == 0


def test_nan_spectra_checks_every_key_given():
    a2f = gaussian_a2f()
    entries = [
        {"id": 0, "a2f": a2f},
        {"id": 1, "a2f": np.where(np.arange(51) < 3, np.nan, a2f)},
        {"id": 2, "a2f": np.where(np.arange(51) == 7, np.inf, a2f)},
        {"id": 3, "a2f": a2f, "phdos": [[0.1, np.nan], [0.2, 0.3]]},
        {"id": 4},
    ]
    kept, step = nan_spectra(entries)
    assert kept == [0, 3, 4] and step.not_applicable == [4]
    assert step.rejected == {1: "a2f has 3 non-finite of 51 values",
                             2: "a2f has 1 non-finite of 51 values"}
    kept, step = nan_spectra(entries, keys=("a2f", "phdos"))
    assert kept == [0, 4] and step.rejected[3] == "phdos has 1 non-finite of 4 values"


# ------------------------------------------------------------------------------------------
# ids, chaining and the report
# ------------------------------------------------------------------------------------------


def test_entry_ids_default_to_positions_and_must_be_unique():
    assert entry_ids([{}, {"id": "x"}, {}]) == [0, "x", 2]
    with pytest.raises(InputError, match="repeated"):
        entry_ids([{"id": 1}, {}])  # position 1 collides with id 1
    with pytest.raises(InputError, match="entry 1"):
        entry_ids([{}, ("not", "a", "dict")])


def test_apply_filters_chains_and_reports():
    a2f = gaussian_a2f()
    entries = [
        {"min_phonon_freq_meV": 0.2, "a2f": a2f},                   # 0 kept
        {"min_phonon_freq_meV": -30.0, "a2f": a2f},                 # 1 unstable
        {"min_phonon_freq_meV": 0.0, "a2f": a2f - 0.5},             # 2 negative a2F
        {"min_phonon_freq_meV": -30.0, "a2f": np.full(51, np.nan)}, # 3 NaN (first filter)
        {"a2f": 2 * a2f},                                           # 4 kept
    ]
    kept, report = apply_filters(entries)
    assert [s.name for s in report.steps] == list(FILTERS)
    assert report.kept == [0, 4]
    assert all(k is e for k, e in zip(kept, [entries[0], entries[4]]))  # the original records
    assert "id" not in entries[0]
    assert {i: name for i, (name, _) in report.rejected.items()} == {
        3: "nan_spectra", 1: "unstable", 2: "negative_a2f"}
    # each step sees what the previous one kept
    for before, after in zip(report.steps, report.steps[1:]):
        assert after.n_in == len(before.kept)
    lines = str(report).splitlines()
    assert len(lines) == len(FILTERS) and lines[0].startswith("nan_spectra")
    assert report.steps[-1].line().endswith("2 kept, 2 not applicable")  # no structures given

    kept, report = apply_filters(entries, filters=("unstable",), threshold_meV=50.0)
    assert len(kept) == 5 and len(report.lines()) == 1
    kept, report = apply_filters(entries, filters=())
    assert len(kept) == 5 and report.kept == [0, 1, 2, 3, 4] and str(report) == ""
    with pytest.raises(ValueError, match="unknown filters"):
        apply_filters(entries, filters=("dedupe",))
    assert str(FilterReport()) == ""


# ------------------------------------------------------------------------------------------
# duplicates
# ------------------------------------------------------------------------------------------

FORMULA = re.compile(r'^_chemical_formula_sum\s+"?([^"\n]+?)"?\s*$', re.MULTILINE)


@pytest.fixture(scope="module")
def formulas(structures_dir):
    """{id: reduced formula} of every CIF, from its _chemical_formula_sum."""
    from pymatgen.core import Composition

    return {int(p.stem): Composition(FORMULA.search(p.read_text()).group(1)).reduced_formula
            for p in structures_dir.glob("*.cif")}


@pytest.fixture(scope="module")
def ternary(structures_dir, formulas):
    """The lowest-id CIF with three elements and at least four sites."""
    from pymatgen.core import Composition, Structure

    for i in sorted(formulas):
        if len(Composition(formulas[i]).elements) == 3:
            s = Structure.from_file(structures_dir / f"{i}.cif")
            if len(s) >= 4:
                return s
    pytest.skip("no ternary CIF with four sites")


def rotation_matrix(axis, angle_rad):
    """Rodrigues' formula: rotation by angle_rad about axis."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * kx + (1 - np.cos(angle_rad)) * kx @ kx


def test_duplicates_of_a_real_structure(ternary):
    from pymatgen.core import Lattice, Structure

    s = ternary
    r = rotation_matrix([1.0, 2.0, 0.5], 0.7)
    assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)
    rotated = Structure(Lattice(s.lattice.matrix @ r.T), s.species, s.frac_coords)
    rotated.translate_sites(list(range(len(rotated))), [0.13, 0.27, 0.41])  # and another origin
    supercell = s.copy()
    supercell.make_supercell([[1, 1, 0], [0, 1, 0], [0, 0, 2]])
    assert len(supercell) == 2 * len(s)
    present = {el.symbol for el in s.composition.elements}
    other = s.copy()
    other.replace_species({s.composition.elements[0]: "Cs" if "Cs" not in present else "Rb"})
    strained = Structure(Lattice(s.lattice.matrix @ np.diag([1.5, 1.0, 1.0])), s.species,
                         s.frac_coords)  # same formula, 50 % longer along a: not the same crystal

    entries = [{"id": "supercell", "structure": supercell}, {"id": "original", "structure": s},
               {"id": "rotated", "structure": rotated}, {"id": "other", "structure": other},
               {"id": "strained", "structure": strained}, {"id": "no_structure"}]
    kept, step = duplicates(entries)
    assert kept == ["supercell", "other", "strained", "no_structure"]  # the first copy is kept
    formula = s.composition.reduced_formula
    assert step.rejected == {"original": f"duplicate of supercell ({formula})",
                             "rotated": f"duplicate of supercell ({formula})"}
    assert step.not_applicable == ["no_structure"]
    with pytest.raises(InputError, match="entry 0"):
        duplicates([{"id": 0, "structure": "Fe2O3"}])


def test_duplicates_compare_only_equal_reduced_formulas(ternary):
    class MatchEverything:
        def __init__(self):
            self.calls = 0

        def fit(self, a, b):
            self.calls += 1
            return True

    s = ternary
    double = s.copy()
    double.make_supercell([1, 1, 2])  # same reduced formula
    other = s.copy()
    other.remove_sites([0])  # another formula
    assert other.composition.reduced_formula != s.composition.reduced_formula
    matcher = MatchEverything()
    kept, step = duplicates([{"structure": s}, {"structure": other}, {"structure": double}],
                            matcher=matcher)
    assert kept == [0, 1] and list(step.rejected) == [2] and matcher.calls == 1


@pytest.mark.filterwarnings("ignore:Issues encountered while parsing CIF")
def test_duplicates_among_real_same_formula_structures(structures_dir, formulas):
    """All CIFs sharing a reduced formula with another: polymorphs stay, copies go.

    The data hold one copy: ids 18 and 22 are both rocksalt CdTe (Fm-3m); 22 is a 4-atom
    tetragonal cell of the same crystal (c/a = 6.00789 / 4.23733 = 1.0025 * sqrt(2), volume per
    atom 26.97 vs 26.96 A^3). The other groups differ in space group or volume per atom.
    """
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    groups = defaultdict(list)
    for i in sorted(formulas):
        groups[formulas[i]].append(i)
    ids = [i for members in groups.values() if len(members) > 1 for i in members]
    structures = {i: Structure.from_file(structures_dir / f"{i}.cif") for i in ids}
    kept, step = duplicates([{"id": i, "structure": structures[i]} for i in ids])
    assert step.rejected == {22: "duplicate of 18 (CdTe)"}

    # independent check: a copy has the original's space group and volume per atom
    def signature(i):
        s = structures[i]
        return SpacegroupAnalyzer(s).get_space_group_number(), s.volume / len(s)

    for copy, reason in step.rejected.items():
        original = int(reason.split()[2])
        (sg_c, v_c), (sg_o, v_o) = signature(copy), signature(original)
        assert sg_c == sg_o and abs(v_c / v_o - 1) < 0.01
