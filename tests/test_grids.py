"""Tests for betenet.physics.grids: standardized commensurate k/q grids (paper Methods A)."""

import math
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.cell import Cell
from pymatgen.core import Lattice, Structure

from betenet.data.structures import load_structure
from betenet.errors import InputError
from betenet.physics.grids import (
    commensurate_kq_grids,
    commensurate_pair,
    kq_grid_report,
    reciprocal_lengths,
    target_grid,
)

# ---------------------------------------------------------------- hand-derived cases


def test_target_grid_cubic_by_hand():
    # a = 4 Å cubic: |b_i| = 1/4 = 0.25 /Å (no 2π). k: ceil(40 * 0.25) = 10; q: ceil(15 * 0.25) = ceil(3.75) = 4.
    lat = Lattice.cubic(4.0)
    assert target_grid(lat, 40.0) == (10, 10, 10)
    assert target_grid(lat, 15.0) == (4, 4, 4)


def test_target_grid_hexagonal_by_hand():
    # Hexagonal a = 3, c = 5 Å: |b_1| = |b_2| = 2 / (a sqrt 3) = 0.3849 /Å, |b_3| = 1/c = 0.2 /Å.
    # k: ceil(40 * 0.3849) = ceil(15.396) = 16, ceil(40 * 0.2) = 8; q: ceil(5.7735) = 6, ceil(3.0) = 3.
    lat = Lattice.hexagonal(3.0, 5.0)
    np.testing.assert_allclose(reciprocal_lengths(lat), [2 / (3 * math.sqrt(3)), 2 / (3 * math.sqrt(3)), 0.2])
    assert target_grid(lat, 40.0) == (16, 16, 8)
    assert target_grid(lat, 15.0) == (6, 6, 3)


def test_target_grid_is_not_pushed_up_by_float_noise():
    # a = 3.9 Å, density 39: 39 / 3.9 = 10 exactly, but 39 * (1/3.9) evaluates to 10.000000000000002.
    assert target_grid(Lattice.cubic(3.9), 39.0) == (10, 10, 10)


def test_target_grid_at_least_one():
    # a = 100 Å, density 0.5: 0.5 * 0.01 = 0.005 -> ceil = 1; the floor of 1 subdivision is kept.
    assert target_grid(Lattice.cubic(100.0), 0.5) == (1, 1, 1)
    # density 1e-12: 1e-12 * 0.25 is below the float-noise tolerance of ceil, still 1 subdivision.
    assert target_grid(Lattice.cubic(4.0), 1e-12) == (1, 1, 1)


def test_commensurate_cubic_by_hand():
    # k target 10, q target 4 (above). q = 4: 10 % 4 = 2, 11 % 4 = 3, 9 % 4 = 1 -> none.
    # q = 3: 10 % 3 = 1, 11 % 3 = 2, 9 % 3 = 0 -> k = 9, q = 3.
    assert commensurate_kq_grids(Lattice.cubic(4.0)) == ((9, 9, 9), (3, 3, 3))


def test_commensurate_hexagonal_by_hand():
    # In-plane k 16, q 6: 16 % 6 = 4, 17 % 6 = 5, 15 % 6 = 3; q = 5: 16 % 5 = 1, 17 % 5 = 2, 15 % 5 = 0 -> (15, 5).
    # Out of plane k 8, q 3: 8 % 3 = 2, 9 % 3 = 0 -> (9, 3).
    assert commensurate_kq_grids(Lattice.hexagonal(3.0, 5.0)) == ((15, 15, 9), (5, 5, 3))


@pytest.mark.parametrize(
    "k, q, expected, why",
    [
        (12, 4, (12, 4), "already commensurate: unchanged"),
        (7, 2, (8, 2), "both 8 and 6 are even: k + 1 is tried before k - 1"),
        (13, 4, (12, 4), "13 % 4 = 1, 14 % 4 = 2, 12 % 4 = 0: falls back to k - 1"),
        (8, 6, (8, 4), "8, 9, 7 fail for q = 6 (rem 2, 3, 1) and q = 5 (rem 3, 4, 2); 8 % 4 = 0: q drops twice"),
        (1, 3, (2, 2), "k - 1 = 0 is not allowed (0 % 3 == 0 would pass); 1, 2 fail for q = 3; 2 % 2 = 0"),
        (1, 1, (1, 1), "q = 1 divides everything"),
        (5, 1, (5, 1), "q = 1 divides everything"),
    ],
)
def test_commensurate_pair_by_hand(k, q, expected, why):
    assert commensurate_pair(k, q, "test") == expected, why


def test_commensurate_pair_never_needs_q_below_three():
    # Three consecutive integers k - 1, k, k + 1 always contain a multiple of 3 (and two an even one),
    # so q stops at min(q_target, 3) at the latest; q = 1 only when asked for.
    for k in range(2, 200):
        for q in range(1, 30):
            k_out, q_out = commensurate_pair(k, q)
            assert q_out >= min(q, 3)
            assert k_out % q_out == 0 and abs(k_out - k) <= 1


# ---------------------------------------------------------------- error paths


@pytest.mark.parametrize("k, q", [(5, 0), (5, -2), (0, 3), (-1, 1), (2.5, 2), (4, 2.0), (True, 1)])
def test_commensurate_pair_rejects_invalid_subdivisions(k, q):
    with pytest.raises(InputError) as info:
        commensurate_pair(k, q, "Nb3Sn (direction 2)")
    assert info.value.subject == "Nb3Sn (direction 2)"


def test_q_below_one_error_message():
    with pytest.raises(InputError, match=r"^MgB2: q subdivisions fell below 1"):
        commensurate_pair(6, 0, "MgB2")


@pytest.mark.parametrize("density", [0.0, -15.0, float("nan"), float("inf")])
def test_bad_density_names_the_structure(density):
    s = Structure(Lattice.cubic(4.05), ["Al"], [[0, 0, 0]])
    with pytest.raises(InputError, match=r"^Al: point density"):
        commensurate_kq_grids(s, q_density=density)
    with pytest.raises(InputError, match=r"^fcc-Al: point density"):
        commensurate_kq_grids(s, k_density=density, name="fcc-Al")
    with pytest.raises(InputError):
        target_grid(s, density)


def test_non_periodic_atoms_rejected():
    with pytest.raises(InputError, match=r"^H2: .*degenerate"):
        target_grid(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]), 40.0)


def test_unsupported_object_rejected():
    with pytest.raises(InputError, match="expected a pymatgen"):
        target_grid(np.eye(3), 40.0)


@pytest.mark.filterwarnings("ignore:No structure parsed", "ignore:Issues encountered", "ignore:No _symmetry")
def test_file_errors_name_the_path(tmp_path):
    def kq_grid_of_file(path):  # what `betenet kq-grid FILE` does
        return kq_grid_report(load_structure(path), 40.0, 15.0, name=str(path))

    missing = tmp_path / "missing.cif"
    with pytest.raises(InputError) as info:
        kq_grid_of_file(missing)
    assert info.value.subject == str(missing) and "not found" in info.value.reason

    garbage = tmp_path / "garbage.cif"
    garbage.write_text("this is not a crystal\n")
    with pytest.raises(InputError) as info:
        kq_grid_of_file(garbage)
    assert info.value.subject == str(garbage)

    no_atoms = tmp_path / "no_atoms.cif"
    no_atoms.write_text(
        "data_empty\n_cell_length_a 4.0\n_cell_length_b 4.0\n_cell_length_c 4.0\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "_symmetry_space_group_name_H-M 'P 1'\n"
    )
    no_sites = tmp_path / "no_sites.json"
    Structure(Lattice.cubic(4.0), [], []).to(filename=str(no_sites))
    for empty in (no_atoms, no_sites):
        with pytest.raises(InputError) as info:
            kq_grid_of_file(empty)
        assert info.value.subject == str(empty) and info.value.reason.startswith("cannot read structure")


# ---------------------------------------------------------------- input kinds agree


def test_pymatgen_and_ase_inputs_agree(tmp_path):
    # Triclinic cell so that no axis is special; ASE computes b_i from the inverse cell, pymatgen its own way.
    lat = Lattice.from_parameters(3.1, 4.7, 5.9, 81.0, 97.0, 112.0)
    s = Structure(lat, ["Nb", "Se"], [[0, 0, 0], [0.3, 0.4, 0.6]])
    atoms = Atoms("NbSe", scaled_positions=[[0, 0, 0], [0.3, 0.4, 0.6]], cell=lat.matrix, pbc=True)
    path = tmp_path / "nbse.cif"
    s.to(filename=str(path))
    expected = commensurate_kq_grids(s)
    for obj in (lat, atoms, atoms.cell, load_structure(path), load_structure(str(path))):
        assert commensurate_kq_grids(obj) == expected
    np.testing.assert_allclose(reciprocal_lengths(atoms), reciprocal_lengths(s), rtol=1e-12)


# ---------------------------------------------------------------- all real structures


@pytest.fixture(scope="module")
def real_structures(structures_dir):
    """The 806 released CIFs, parsed once (pymatgen's 'rounded to ideal values' notes silenced)."""
    paths = sorted(structures_dir.glob("*.cif"), key=lambda p: int(p.stem))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Issues encountered while parsing CIF")
        return {p: Structure.from_file(str(p)) for p in paths}


def _reciprocal_lengths_by_cross_products(matrix):
    # |b_1| = |a_2 x a_3| / V and cyclic: the textbook definition, independent of pymatgen/ASE.
    a1, a2, a3 = matrix
    volume = abs(np.dot(a1, np.cross(a2, a3)))
    areas = [np.cross(a2, a3), np.cross(a3, a1), np.cross(a1, a2)]
    return np.linalg.norm(areas, axis=1) / volume


def test_real_structures_targets_match_textbook_reciprocal(real_structures):
    assert len(real_structures) == 806
    for path, s in real_structures.items():
        lengths = _reciprocal_lengths_by_cross_products(s.lattice.matrix)
        np.testing.assert_allclose(reciprocal_lengths(s), lengths, rtol=1e-10, err_msg=str(path))
        np.testing.assert_allclose(reciprocal_lengths(Cell(s.lattice.matrix)), lengths, rtol=1e-10)
        for density in (40.0, 15.0):
            expected = tuple(max(1, math.ceil(round(density * b, 9))) for b in lengths)
            assert target_grid(s, density) == expected, path


@pytest.mark.parametrize("k_density, q_density", [(40.0, 15.0), (25.0, 11.0)])
def test_real_structures_grids_properties(real_structures, k_density, q_density):
    for path, s in real_structures.items():
        k_target, q_target = target_grid(s, k_density), target_grid(s, q_density)
        k_grid, q_grid = commensurate_kq_grids(s, k_density, q_density)
        for i in range(3):
            kt, qt, k, q = k_target[i], q_target[i], k_grid[i], q_grid[i]
            where = f"{path} direction {i + 1}: target ({kt}, {qt}) -> ({k}, {q})"
            assert isinstance(k, int) and isinstance(q, int), where
            assert k % q == 0, where
            assert abs(k - kt) <= 1 and k >= 1, where
            assert min(qt, 3) <= q <= qt, where
            # q is the largest value <= target reachable with k in {kt, kt + 1, kt - 1 >= 1} ...
            candidates = [c for c in (kt, kt + 1, kt - 1) if c >= 1]
            for larger_q in range(q + 1, qt + 1):
                assert all(c % larger_q for c in candidates), where
            # ... and k is the first commensurate candidate in the paper's order (k, k + 1, k - 1).
            assert k == next(c for c in candidates if c % q == 0), where


def test_kq_grid_report_on_real_file(real_structures):
    path, s = next(iter(real_structures.items()))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Issues encountered while parsing CIF")
        report = kq_grid_report(load_structure(path), 40.0, 15.0, name=str(path))
    k_grid, q_grid = commensurate_kq_grids(s)
    assert report == dict(
        k_grid=list(k_grid),
        q_grid=list(q_grid),
        k_target=list(target_grid(s, 40.0)),
        q_target=list(target_grid(s, 15.0)),
        formula=s.composition.reduced_formula,
    )
