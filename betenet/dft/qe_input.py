"""Text of Quantum ESPRESSO input decks: Fortran namelists and the pw.x structure cards.

ASE 3.29's espresso writers are not used for the decks: ``write_fortran_namelist`` silently drops
keys missing from its own tables (q2r.x ``la2F``, which the el-ph chain needs) and
``write_espresso_in`` emits ``&FCP`` / ``&RISM`` namelists that QE 6.x reports as unknown cards.
Here every key given is written, in the order given, and values of an unsupported type are refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real

import numpy as np

from betenet.errors import InputError


def fortran_value(value, key: str = "value") -> str:
    """A Python scalar as a Fortran namelist literal (``.true.``, ``'text'``, ``12``, ``1e-10``)."""
    if isinstance(value, (bool, np.bool_)):
        return ".true." if value else ".false."
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        x = float(value)
        if not math.isfinite(x):
            raise InputError(key, f"namelist value must be finite, got {x}")
        return repr(x)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise InputError(key, f"namelist values must be bool, int, float or str, got {type(value).__name__}")


def namelist(name: str, values: Mapping) -> str:
    """``&NAME`` block with one ``key = value`` line per entry, closed by ``/``."""
    lines = [f"&{name.upper()}"]
    for key, value in values.items():
        lines.append(f"   {key} = {fortran_value(value, f'{name}.{key}')}")
    lines.append("/")
    return "\n".join(lines) + "\n"


def merged(*dicts: Mapping) -> dict:
    """Later mappings win; keys compare case-insensitively (Fortran), the last spelling is kept."""
    out: dict = {}
    for d in dicts:
        for key, value in d.items():
            for old in [k for k in out if k.lower() == key.lower()]:
                del out[old]
            out[key] = value
    return out


def species_order(symbols: Sequence[str]) -> list[str]:
    """Element symbols in order of first appearance (the pw.x species order)."""
    return list(dict.fromkeys(symbols))


def pw_cards(structure, masses: Mapping[str, float], pseudos: Mapping[str, str], kgrid) -> str:
    """ATOMIC_SPECIES, CELL_PARAMETERS (Å), ATOMIC_POSITIONS (crystal) and an unshifted K_POINTS grid.

    ``structure`` is a pymatgen Structure; atoms keep its site order (the site order of every
    projected spectrum); ``masses`` and ``pseudos`` map element symbols to amu and file names.
    """
    symbols = [site.specie.symbol for site in structure]
    lines = ["ATOMIC_SPECIES"]
    for sym in species_order(symbols):
        lines.append(f"  {sym} {float(masses[sym]):.6f} {pseudos[sym]}")
    lines.append("CELL_PARAMETERS angstrom")
    for row in np.asarray(structure.lattice.matrix, dtype=float):
        lines.append("  " + " ".join(f"{x:16.10f}" for x in row))
    lines.append("ATOMIC_POSITIONS crystal")
    for sym, frac in zip(symbols, structure.frac_coords):
        lines.append(f"  {sym} " + " ".join(f"{x:14.10f}" for x in frac))
    k = [int(n) for n in kgrid]
    lines.append("K_POINTS automatic")
    lines.append(f"  {k[0]} {k[1]} {k[2]} 0 0 0")
    return "\n".join(lines) + "\n"
