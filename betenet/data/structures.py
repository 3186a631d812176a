"""Read a crystal structure from a file, a pymatgen Structure or ASE Atoms, reject unusable ones, and
expand command-line inputs (files, folders, globs) into structure files.

``load_structure`` returns an ordered, fully periodic pymatgen ``Structure`` whose sites are all
real elements (1 ≤ Z ≤ 118) and which is physically possible (:mod:`betenet.data.plausibility`).
Anything else raises ``InputError(name, reason)`` naming the input. Supported files: CIF (``.cif``,
read by pymatgen with the cell and coordinates as written: no reduction to a primitive cell, no
snapping of coordinates to "ideal" fractions), VASP POSCAR/CONTCAR/``.vasp`` (pymatgen), extended
XYZ (``.xyz``/``.extxyz``, read by ASE); other suffixes are tried with ``ase.io.read``. pymatgen's
CIF-parsing warnings are silenced; when parsing fails they are appended to the error's reason.
:func:`gather_inputs` turns files, folders and glob patterns into one ``(id, path, reason)`` item per
structure file. :func:`structure_hash` and :func:`structure_mismatch` tell whether two structures are
the same (the one a labels row was computed for and the one it is given with).
"""

from __future__ import annotations

import glob
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
from pymatgen.core import Element, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifParser

from betenet.data.plausibility import check_structure
from betenet.errors import InputError
from betenet.files import natural_key

MAX_Z = 118
#: Structure file suffixes read (dataset ``structures/`` folders, prediction inputs).
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar", ".extxyz", ".xyz")
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
    """Raise ``InputError`` unless the structure is non-empty, finite, ordered, periodic and all-element,
    and physically possible (:func:`betenet.data.plausibility.check_structure`: no atoms closer than half
    the sum of their covalent radii, a volume per atom between 0.5 and 1000 Å^3)."""
    if len(structure) == 0:
        raise InputError(name, "structure has no atoms")
    if not np.all(np.isfinite(structure.lattice.matrix)):
        raise InputError(name, "lattice holds a non-finite number (NaN or inf)")
    bad = np.flatnonzero(~np.all(np.isfinite(structure.frac_coords), axis=1))
    if bad.size:
        k = int(bad[0])
        species = ", ".join(str(e) for e in structure[k].species)
        raise InputError(name, f"site {k} ({species}) has a non-finite coordinate "
                               f"{np.round(structure.frac_coords[k], 6).tolist()}")
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
    _check_volume(structure.lattice.volume, name)
    check_structure(structure, name)  # physically possible: distances, volume per atom


def _check_volume(volume: float, name: str) -> None:
    """Raise ``InputError`` for a cell of zero (or non-finite) volume: its lattice has no inverse."""
    if not np.isfinite(volume) or abs(volume) <= 1e-6:
        raise InputError(name, f"lattice is singular (cell volume {volume:.3g} Å^3)")


# --------------------------------------------------------------------------------------------
# identity: is this the structure a labels row was computed for?
# --------------------------------------------------------------------------------------------
_HASH_DIGITS = 6
#: Tolerances of :func:`structure_mismatch`: relative on the lattice lengths, degrees on its angles.
_LENGTH_RTOL, _ANGLE_TOL_DEG = 1e-3, 1e-2


def structure_hash(structure: Structure) -> str:
    """SHA-256 of a structure's species, lattice and fractional coordinates, in site order (lattice rounded
    to 1e-6 Å, fractional coordinates wrapped into [0, 1) and rounded to 1e-6): the per-site rows of a
    site PhDOS follow that order, so a reordered structure is another hash."""
    lattice = np.round(np.asarray(structure.lattice.matrix, dtype=float), _HASH_DIGITS) + 0.0
    frac = np.round(np.mod(structure.frac_coords, 1.0), _HASH_DIGITS) % 1.0 + 0.0  # + 0.0: no -0.0
    text = json.dumps({"species": [site.specie.symbol for site in structure], "lattice": lattice.tolist(),
                       "frac": frac.tolist()})
    return hashlib.sha256(text.encode()).hexdigest()


def structure_mismatch(given: Structure, recorded: Structure) -> str | None:
    """Why ``given`` is not ``recorded`` (e.g. the structure a labels row's spectra were computed for):
    another number of sites, another element on a site (site order matters: per-site rows follow it), or
    another cell (lengths beyond 1e-3 relative, angles beyond 0.01°); None when they agree. Positions
    are not compared: PhDOS computed after relaxing the positions in a fixed cell belong to both."""
    if len(given) != len(recorded):
        return f"{len(given)} sites here, {len(recorded)} there"
    for k, (a, b) in enumerate(zip(given, recorded)):
        if a.specie.symbol != b.specie.symbol:
            return (f"site {k} is {a.specie.symbol} here, {b.specie.symbol} there ({given.composition.reduced_formula}"
                    f" vs {recorded.composition.reduced_formula})")
    if not (np.allclose(given.lattice.abc, recorded.lattice.abc, rtol=_LENGTH_RTOL, atol=0)
            and np.allclose(given.lattice.angles, recorded.lattice.angles, rtol=0, atol=_ANGLE_TOL_DEG)):
        return f"another cell ({_cell_text(given)} here, {_cell_text(recorded)} there)"
    return None


def _cell_text(structure: Structure) -> str:
    return "a b c " + " ".join(f"{x:.4g}" for x in structure.lattice.abc) + " Å"


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
    _check_volume(float(atoms.cell.volume), name)  # three lattice vectors, but in one plane
    try:
        return AseAtomsAdaptor.get_structure(atoms)
    except Exception as exc:  # whatever pymatgen cannot make of it is this structure's failure only
        raise InputError(name, " ".join(f"cannot convert ASE Atoms: {type(exc).__name__}: {exc}".split())) from None


def _read_file(path: Path, name: str) -> Structure:
    if not path.is_file():
        raise InputError(name, "file not found" if not path.exists() else "not a regular file")
    suffix = path.suffix.lower()
    try:
        empty = not path.read_bytes().strip()
    except OSError as exc:
        raise InputError(name, f"cannot read file ({exc.strerror or exc})") from None
    if empty:
        raise InputError(name, "file is empty")
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
    try:
        structures = parser.parse_structures(primitive=False, on_error="raise")
    except Exception:
        problem = _cif_site_problem(parser)
        if problem:
            raise InputError(name, problem) from None
        raise
    if len(structures) != 1:
        raise InputError(name, f"CIF holds {len(structures)} structures; give one per file")
    return structures[0]


def _read_with_ase(path: Path, name: str, fmt: str | None) -> Structure:
    from ase.io import read

    frames = read(path, index=":", format=fmt)
    if len(frames) != 1:
        raise InputError(name, f"file holds {len(frames)} structures; give one per file")
    return _from_atoms(frames[0], name)


def _cif_number(text) -> float | None:
    """A CIF number ('0.25', '0.2500(3)'); None for '?', '.', or anything else."""
    try:
        return float(str(text).split("(")[0])
    except ValueError:
        return None


def _cif_site_problem(parser: CifParser) -> str | None:
    """Why pymatgen could not build the CIF's atom sites, when the file says it plainly: a
    coordinate that is not a finite number, or two atoms written on the same position."""
    for block in parser.as_dict().values():
        xyz = [block.get(f"_atom_site_fract_{c}") for c in "xyz"]
        if not all(isinstance(v, list) for v in xyz):
            continue
        labels = block.get("_atom_site_label") or block.get("_atom_site_type_symbol") or []
        occupancy = block.get("_atom_site_occupancy") or []
        coords = []
        for k, raw in enumerate(zip(*xyz)):
            label = labels[k] if k < len(labels) else f"#{k}"
            values = [_cif_number(v) for v in raw]
            if any(v is None or not np.isfinite(v) for v in values):
                return f"atom {label} has a coordinate that is not a finite number ({', '.join(raw)})"
            coords.append((label, np.array(values), _cif_number(occupancy[k]) if k < len(occupancy) else 1.0))
        for i in range(len(coords)):
            for j in range(i + 1, len(coords)):
                (a, xa, oa), (b, xb, ob) = coords[i], coords[j]
                d = (xa - xb + 0.5) % 1.0 - 0.5
                if np.all(np.abs(d) < 1e-3) and (oa or 1.0) + (ob or 1.0) > 1.0 + 1e-6:
                    return (f"atoms {a} and {b} are both on site ({', '.join(f'{v:g}' for v in xa)}); "
                            "one site holds one atom")
    return None


# --------------------------------------------------------------------------------------------
# command-line inputs
# --------------------------------------------------------------------------------------------
def _is_structure_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and (
        path.suffix.lower() in STRUCTURE_SUFFIXES or path.name.upper().startswith(_VASP_NAMES))


def _structure_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if _is_structure_file(p)), key=lambda p: natural_key(p.name))


def _labels_file_in(folder: Path) -> Path | None:
    return next((folder / n for n in ("labels.csv", "labels.json") if (folder / n).is_file()), None)


def _base_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}" if path.name.upper().startswith(_VASP_NAMES) else path.stem


def gather_inputs(inputs) -> tuple[list[tuple[str, Path | None, str | None]], Path | None]:
    """Expand INPUTS into ``(id, path, None)`` per structure file, or ``(input, None, reason)`` for
    an input that names nothing, in order; also the labels file of a dataset folder given as input
    (a folder with ``structures/`` and ``labels.csv``/``labels.json``), if any.

    A folder contributes its structure files (or those of its ``structures/``); a pattern with
    ``*``, ``?`` or ``[`` is globbed. Ids are file stems (``<folder>/POSCAR`` for POSCAR/CONTCAR
    files); when two inputs share an id, both use their path instead.
    """
    found: list[tuple[Path | None, str, str | None]] = []  # (path, text, reason)
    labels = None
    for text in map(str, inputs):
        path = Path(text)
        if path.is_dir():
            files = _structure_files(path)
            if not files and (path / "structures").is_dir():
                files = _structure_files(path / "structures")
                labels = labels or _labels_file_in(path)
            if not files:
                found.append((None, text, "folder holds no structure files (.cif, .vasp, .poscar, .extxyz, .xyz)"))
            found += [(f, str(f), None) for f in files]
        elif path.is_file():
            found.append((path, text, None))
        elif any(c in text for c in "*?["):
            files = sorted((Path(m) for m in glob.glob(text) if Path(m).is_file()), key=lambda p: natural_key(str(p)))
            if not files:
                found.append((None, text, "pattern matches no file"))
            found += [(f, str(f), None) for f in files]
        else:
            found.append((None, text, "file not found"))
    ids = [_base_id(p) if p is not None else text for p, text, _ in found]
    counts: dict[str, int] = {}
    for i in ids:
        counts[i] = counts.get(i, 0) + 1
    out = []
    for (path, text, reason), ident in zip(found, ids):
        out.append((str(path) if counts[ident] > 1 and path is not None else ident, path, reason))
    return out, labels


def input_files(items, labels_path=None) -> list[Path]:
    """Every file a prediction reads: the structure files of ``items`` and the labels file."""
    files = [Path(p) for _, p, _ in items if isinstance(p, (str, Path))]
    return files + ([Path(labels_path)] if labels_path else [])
