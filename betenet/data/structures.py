"""Read a crystal structure from a file, a pymatgen Structure or ASE Atoms, and reject unusable ones.

``load_structure`` returns an ordered, fully periodic pymatgen ``Structure`` whose sites are all
real elements (1 ≤ Z ≤ 118). Anything else raises ``InputError(name, reason)`` naming the input.
Supported files: CIF (``.cif``, read by pymatgen with the cell and coordinates as written: no reduction to
a primitive cell, no snapping of coordinates to "ideal" fractions), VASP POSCAR/CONTCAR/``.vasp`` (pymatgen), extended XYZ (``.xyz``/``.extxyz``,
read by ASE); other suffixes are tried with ``ase.io.read``. pymatgen's CIF-parsing warnings are
silenced; when parsing fails they are appended to the error's reason.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from pymatgen.core import Element, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifParser

from betenet.errors import InputError

MAX_Z = 118
_VASP_NAMES = ("POSCAR", "CONTCAR")
_VASP_SUFFIXES = (".vasp", ".poscar")
_XYZ_SUFFIXES = (".xyz", ".extxyz")


def load_structure(src, name: str | None = None) -> Structure:
    """Return a validated pymatgen ``Structure`` from ``src`` (Structure, ASE Atoms, or a path).

    ``name`` labels the input in error messages (default: the path, or "structure").
    """
    from ase import Atoms  # local: keeps ``import betenet.data.structures`` light

    if isinstance(src, Structure):
        label = name or "structure"
        structure = src
    elif isinstance(src, Atoms):
        label = name or "structure"
        structure = _from_atoms(src, label)
    elif isinstance(src, (str, Path)):
        label = name or str(src)
        structure = _read_file(Path(src), label)
    else:
        raise InputError(name or "structure", f"cannot read a structure from {type(src).__name__}")
    validate_structure(structure, label)
    return structure


def validate_structure(structure: Structure, name: str) -> None:
    """Raise ``InputError`` unless the structure is non-empty, ordered, periodic and all-element."""
    if len(structure) == 0:
        raise InputError(name, "structure has no atoms")
    if not structure.is_ordered:
        k = next(i for i, site in enumerate(structure) if not site.is_ordered)
        raise InputError(
            name, f"site {k} is partially occupied ({structure[k].species}); disordered structures are not supported"
        )
    for k, site in enumerate(structure):
        sp = site.specie
        el = getattr(sp, "element", sp)  # Species -> Element; DummySpecies has no real element
        if not isinstance(el, Element):
            raise InputError(name, f"site {k} holds {sp}: unknown element or dummy species")
        if not 1 <= el.Z <= MAX_Z:
            raise InputError(name, f"site {k} has atomic number {el.Z}, outside 1..{MAX_Z}")
    vol = structure.lattice.volume
    if not np.isfinite(vol) or vol <= 1e-6:
        raise InputError(name, f"lattice is singular (cell volume {vol:.3g} Å^3)")


def _from_atoms(atoms, name: str) -> Structure:
    if len(atoms) == 0:
        raise InputError(name, "structure has no atoms")
    numbers = np.asarray(atoms.numbers)
    bad = np.flatnonzero((numbers < 1) | (numbers > MAX_Z))
    if bad.size:
        k = int(bad[0])
        what = "a dummy atom (Z = 0)" if numbers[k] == 0 else f"atomic number {numbers[k]}"
        raise InputError(name, f"atom {k} is {what}; need 1 <= Z <= {MAX_Z}")
    if not np.all(atoms.pbc):
        raise InputError(name, f"not periodic in all three directions (pbc = {list(map(bool, atoms.pbc))})")
    if atoms.cell.rank != 3:
        raise InputError(name, "has no full 3-D cell")
    return AseAtomsAdaptor.get_structure(atoms)


def _read_file(path: Path, name: str) -> Structure:
    if not path.is_file():
        raise InputError(name, "file not found" if not path.exists() else "not a regular file")
    suffix = path.suffix.lower()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if suffix == ".cif":
                return _read_cif(path, name)
            if suffix in _VASP_SUFFIXES or path.name.upper().startswith(_VASP_NAMES):
                return Structure.from_file(path)
            return _read_with_ase(path, name, "extxyz" if suffix in _XYZ_SUFFIXES else None)
        except InputError:
            raise
        except Exception as exc:  # any parser failure is a bad file, reported with its cause
            notes = "; ".join(dict.fromkeys(str(w.message).splitlines()[0] for w in caught))
            reason = " ".join(f"cannot read structure: {type(exc).__name__}: {exc}".split())
            raise InputError(name, reason + (f" (parser warnings: {notes})" if notes else "")) from exc


def _read_cif(path: Path, name: str) -> Structure:
    # frac_tolerance=0: keep coordinates as written (pymatgen would otherwise snap e.g. 0.3333 to 1/3,
    # moving atoms by up to ~1e-4 of a cell edge away from the file and from ASE's reading of it)
    parser = CifParser(path, frac_tolerance=0.0)
    structures = parser.parse_structures(primitive=False, on_error="raise")
    if len(structures) != 1:
        raise InputError(name, f"CIF holds {len(structures)} structures; give one per file")
    return structures[0]


def _read_with_ase(path: Path, name: str, fmt: str | None) -> Structure:
    from ase.io import read

    frames = read(path, index=":", format=fmt)
    if len(frames) != 1:
        raise InputError(name, f"file holds {len(frames)} structures; give one per file")
    return _from_atoms(frames[0], name)
