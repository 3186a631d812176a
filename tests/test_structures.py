"""Structure loading: CIF / POSCAR / extxyz / pymatgen / ASE, and rejection of unusable inputs."""

import warnings

import numpy as np
import pytest
from ase import Atoms
from pymatgen.core import Lattice, Structure

from betenet.data.structures import load_structure
from betenet.errors import InputError

# fcc Al primitive cell, in the format of the BETE-NET release CIFs; {sym} / {occ} are filled in
CIF = """data_image0
_cell_length_a       2.84024
_cell_length_b       2.84024
_cell_length_c       2.84024
_cell_angle_alpha    60
_cell_angle_beta     60
_cell_angle_gamma    60
_space_group_name_H-M_alt    "P 1"
_space_group_IT_number       1
loop_
  _space_group_symop_operation_xyz
  'x, y, z'
loop_
  _atom_site_type_symbol
  _atom_site_label
  _atom_site_symmetry_multiplicity
  _atom_site_fract_x
  _atom_site_fract_y
  _atom_site_fract_z
  _atom_site_occupancy
  {sym}  {sym}1       1.0  0.00000  0.00000  0.00000  {occ}
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


# rock-salt NaCl, primitive fcc cell (a = 5.64 Å), written by hand in VASP 5 format
POSCAR = """NaCl
1.0
0.00 2.82 2.82
2.82 0.00 2.82
2.82 2.82 0.00
Na Cl
1 1
Direct
0.0 0.0 0.0
0.5 0.5 0.5
"""


def nacl() -> Structure:
    lattice = Lattice([[0, 2.82, 2.82], [2.82, 0, 2.82], [2.82, 2.82, 0]])
    return Structure(lattice, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_cif_is_read_without_warnings(tmp_path):
    path = write(tmp_path, "al.cif", CIF.format(sym="Al", occ="1.0000"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning would fail the test
        s = load_structure(path)
    assert s.composition.reduced_formula == "Al" and len(s) == 1
    # primitive fcc: a_conv = sqrt(2) * 2.84024, volume a_conv^3 / 4
    assert s.volume == pytest.approx((np.sqrt(2) * 2.84024) ** 3 / 4, rel=1e-5)


def test_cif_cell_is_kept_not_reduced(tmp_path):
    # conventional bcc cell (2 atoms) of W; its primitive cell would hold 1 atom
    text = CIF.format(sym="W", occ="1.0000").replace("2.84024", "3.16").replace("   60", "   90")
    text += "  W  W2       1.0  0.50000  0.50000  0.50000  1.0000\n"
    s = load_structure(write(tmp_path, "w.cif", text))
    assert len(s) == 2 and s.volume == pytest.approx(3.16**3, rel=1e-9)


@pytest.mark.parametrize("fname", ["POSCAR", "nacl.vasp", "nacl.extxyz"])
def test_other_formats_round_trip(tmp_path, fname):
    ref = nacl()
    path = tmp_path / fname
    if fname.endswith("extxyz"):
        from ase.io import write as ase_write

        ase_write(path, ref.to_ase_atoms(), format="extxyz")
    else:
        path.write_text(POSCAR)
    s = load_structure(path)
    assert s.composition == ref.composition
    np.testing.assert_allclose(s.lattice.matrix, ref.lattice.matrix, atol=1e-6)
    np.testing.assert_allclose(s.frac_coords, ref.frac_coords, atol=1e-6)


def test_objects_are_accepted():
    ref = nacl()
    assert load_structure(ref) is ref
    s = load_structure(ref.to_ase_atoms())
    assert s.composition == ref.composition
    np.testing.assert_allclose(s.cart_coords, ref.cart_coords, atol=1e-9)


@pytest.mark.parametrize(
    "name, text, reason",
    [
        ("broken.cif", CIF.format(sym="Al", occ="1.0000")[:300], "cannot read structure"),
        ("garbage.cif", "this is not a CIF\n", "cannot read structure"),
        ("empty.cif", "", "file is empty"),
        ("blank.vasp", "  \n\n", "file is empty"),
        # two atoms written on one site: said so, not pymatgen's "occupancy exceeded"
        ("twice.cif", CIF.format(sym="Al", occ="1.0000") + "  Cu  Cu1  1.0  0.00000  0.00000  0.00000  1.0000\n",
         r"atoms Al1 and Cu1 are both on site \(0, 0, 0\)"),
        ("nan.cif", CIF.format(sym="Al", occ="1.0000").replace("0.00000  0.00000  0.00000", "nan  0.00000  0.00000"),
         r"atom Al1 has a coordinate that is not a finite number"),
        ("nan.vasp", POSCAR.replace("0.5 0.5 0.5", "nan 0.5 0.5"), r"site 1 \(Cl\) has a non-finite coordinate"),
        ("partial.cif", CIF.format(sym="Al", occ="0.5000"), "partially occupied"),
        ("unknown.cif", CIF.format(sym="Xx", occ="1.0000"), "unknown element or dummy species"),
        ("dummy.cif", CIF.format(sym="X", occ="1.0000"), "unknown element or dummy species"),
        ("bad.extxyz", "2\nnonsense line\nAl 0 0\n", "cannot read structure"),
    ],
)
def test_bad_files_are_rejected_by_name(tmp_path, name, text, reason):
    path = write(tmp_path, name, text)
    with pytest.raises(InputError, match=reason) as err:
        load_structure(path)
    assert err.value.subject == str(path)
    assert "\n" not in str(err.value)  # one line per bad input
    assert "occupancy" not in str(err.value).lower() or "partial" in name


def test_missing_file_and_custom_name(tmp_path):
    with pytest.raises(InputError, match="file not found") as err:
        load_structure(tmp_path / "nope.cif", name="entry 42")
    assert err.value.subject == "entry 42"


@pytest.mark.parametrize(
    "atoms, reason",
    [
        (Atoms(), "no atoms"),
        (Atoms("X", cell=[3, 3, 3], pbc=True), "dummy atom"),
        (Atoms(numbers=[119], cell=[3, 3, 3], pbc=True), "atomic number 119"),
        (Atoms("Al", cell=[3, 3, 3], pbc=[True, True, False]), "not periodic"),
        (Atoms("Al", pbc=True), "no full 3-D cell"),
    ],
)
def test_bad_atoms_are_rejected(atoms, reason):
    with pytest.raises(InputError, match=reason) as err:
        load_structure(atoms, name="candidate 7")
    assert err.value.subject == "candidate 7"


def test_disordered_structure_object_is_rejected():
    s = Structure(Lattice.cubic(3.0), [{"Cu": 0.5, "Au": 0.5}], [[0, 0, 0]])
    with pytest.raises(InputError, match="site 0 is partially occupied"):
        load_structure(s)
    with pytest.raises(InputError, match="cannot read a structure from int"):
        load_structure(3)
