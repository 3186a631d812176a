"""Crystal prototypes (fcc, bcc, hcp, B1, B2, L1_2, A15, C15, Heusler, ...) as primitive cells with
element roles, and their decoration with elements at a lattice constant sized from atomic radii.

Sizing: with every distance of the prototype known at unit scale (d̂), the scale is the geometric
mean of (r_A + r_B) / d̂ over each atom's first-shell contacts, raised where needed so that no pair
is closer than ``MIN_CONTACT`` × (r_A + r_B). :func:`check_geometry` then requires every atom to
have a neighbour within ``NEIGHBOUR_RADIUS_A``, its nearest neighbour within ``MAX_NEAREST`` × (r_A + r_B)
and no pair closer than ``MIN_ALLOWED`` × (r_A + r_B).
"""

from __future__ import annotations

import functools

from dataclasses import dataclass

import numpy as np
from pymatgen.core import Lattice, Structure

from betenet.data.element_tables import METALLOIDS, RADIUS_A, SIMPLE_METALS, TRANSITION_METALS
from betenet.data.phonons import periodic_pairs

#: Sizing never compresses a pair below this fraction of r_A + r_B.
MIN_CONTACT = 0.85
#: Accepted structures have no pair closer than this fraction of r_A + r_B ...
MIN_ALLOWED = 0.80
#: ... and every atom has a neighbour within this distance (Å; the network's graph radius).
NEIGHBOUR_RADIUS_A = 4.0
#: ... and every atom's nearest neighbour within this fraction of r_A + r_B (no rattlers).
MAX_NEAREST = 1.15
#: Neighbours within (1 + FIRST_SHELL) × an atom's nearest distance form its first shell.
FIRST_SHELL = 0.10
#: Largest primitive cell used.
MAX_SITES = 12

_METALS = TRANSITION_METALS + SIMPLE_METALS
_ANY = _METALS + METALLOIDS
_SMALL = ("B", "Be", "C", "Si", "Ge", "Ga", "Al")


@dataclass(frozen=True)
class Prototype:
    """A primitive cell at unit scale (conventional a = 1) whose sites carry element roles."""

    name: str  # Strukturbericht / common name
    example: str  # a real compound of this type
    lattice: np.ndarray  # [3, 3] primitive lattice vectors (rows), unit scale
    frac: np.ndarray  # [n, 3] fractional positions in [0, 1)
    roles: tuple[int, ...]  # role of each site
    pools: tuple[tuple[str, ...], ...]  # elements allowed in each role
    ratio_window: tuple[float, float] | None = None  # allowed r(role 0) / r(role 1)

    @property
    def n_roles(self) -> int:
        return len(self.pools)

    def __len__(self) -> int:
        return len(self.roles)


_CENTRING = {
    "P": np.eye(3),
    "F": np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]),
    "I": np.array([[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]]),
}
_DUMMY = ("H", "He", "Li", "Be")  # placeholder species marking the roles in from_spacegroup


def _prototype(name, example, spacegroup, lattice, sites, pools, centring="P", ratio_window=None):
    """Build the conventional cell from Wyckoff representatives ``sites`` = [(role, xyz), ...]
    with pymatgen's space-group operations, then reduce it to the primitive cell of ``centring``."""
    conv = Structure.from_spacegroup(
        spacegroup, lattice, [_DUMMY[r] for r, _ in sites], [xyz for _, xyz in sites]
    )
    prim = _CENTRING[centring] @ conv.lattice.matrix
    frac = conv.cart_coords @ np.linalg.inv(prim)
    frac = np.round(np.mod(np.round(frac, 8), 1.0), 8) % 1.0
    roles = np.array([_DUMMY.index(sp.symbol) for sp in conv.species])
    _, first = np.unique(frac, axis=0, return_index=True)
    first = np.sort(first)
    expected = len(conv) / round(abs(np.linalg.det(conv.lattice.matrix) / np.linalg.det(prim)))
    if len(first) != expected:
        raise RuntimeError(f"{name}: primitive reduction gave {len(first)} sites, expected {expected}")
    return Prototype(
        name=name,
        example=example,
        lattice=prim,
        frac=frac[first],
        roles=tuple(int(r) for r in roles[first]),
        pools=tuple(tuple(p) for p in pools),
        ratio_window=ratio_window,
    )


def _cubic():
    return Lattice.cubic(1.0)


def _hexagonal(c_over_a):
    return Lattice.hexagonal(1.0, c_over_a)


@functools.cache
def prototypes() -> tuple[Prototype, ...]:
    """The prototypes of the demo dataset (primitive cells of 1 to 8 atoms), built on first use
    (pymatgen's space-group operations take seconds, so not at import)."""
    return _build_prototypes()


def __getattr__(name: str):
    if name == "PROTOTYPES":
        return prototypes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build_prototypes() -> tuple[Prototype, ...]:
    return (
    _prototype("A1 (fcc)", "Cu", "Fm-3m", _cubic(), [(0, (0, 0, 0))], [_METALS], "F"),
    _prototype("A2 (bcc)", "W", "Im-3m", _cubic(), [(0, (0, 0, 0))], [_METALS], "I"),
    _prototype("A3 (hcp)", "Mg", "P6_3/mmc", _hexagonal(1.633), [(0, (1 / 3, 2 / 3, 1 / 4))], [_METALS]),
    _prototype("B1 (rocksalt)", "NbC", "Fm-3m", _cubic(), [(0, (0, 0, 0)), (1, (0.5, 0.5, 0.5))],
               [TRANSITION_METALS, METALLOIDS], "F"),
    _prototype("B2 (CsCl)", "CuZn", "Pm-3m", _cubic(), [(0, (0, 0, 0)), (1, (0.5, 0.5, 0.5))],
               [_METALS, _METALS]),
    _prototype("L1_2 (Cu3Au)", "Cu3Au", "Pm-3m", _cubic(), [(0, (0, 0.5, 0.5)), (1, (0, 0, 0))],
               [_METALS, _ANY]),
    _prototype("L1_0 (CuAu)", "CuAu", "P4/mmm", Lattice.tetragonal(1.0, 2**0.5),
               [(0, (0, 0, 0)), (1, (0.5, 0.5, 0.5))], [TRANSITION_METALS, _METALS]),
    _prototype("A15 (Cr3Si)", "Nb3Sn", "Pm-3n", _cubic(), [(0, (0.25, 0, 0.5)), (1, (0, 0, 0))],
               [TRANSITION_METALS, _ANY]),
    _prototype("C15 (MgCu2 Laves)", "ZrV2", "Fd-3m", _cubic(),
               [(0, (0, 0, 0)), (1, (5 / 8, 5 / 8, 5 / 8))], [_METALS, _METALS], "F", (1.05, 1.40)),
    _prototype("L2_1 (Heusler)", "Cu2MnAl", "Fm-3m", _cubic(),
               [(0, (0.25, 0.25, 0.25)), (1, (0, 0, 0)), (2, (0.5, 0.5, 0.5))],
               [TRANSITION_METALS, TRANSITION_METALS, SIMPLE_METALS + METALLOIDS], "F"),
    _prototype("C1_b (half-Heusler)", "TiNiSn", "F-43m", _cubic(),
               [(0, (0, 0, 0)), (1, (0.25, 0.25, 0.25)), (2, (0.5, 0.5, 0.5))],
               [TRANSITION_METALS, TRANSITION_METALS, SIMPLE_METALS + METALLOIDS], "F"),
    _prototype("D0_3 (BiF3)", "Fe3Al", "Fm-3m", _cubic(),
               [(0, (0.25, 0.25, 0.25)), (0, (0.5, 0.5, 0.5)), (1, (0, 0, 0))], [_METALS, _ANY], "F"),
    _prototype("C1 (CaF2)", "PtAl2", "Fm-3m", _cubic(), [(0, (0, 0, 0)), (1, (0.25, 0.25, 0.25))],
               [TRANSITION_METALS, SIMPLE_METALS + METALLOIDS], "F"),
    _prototype("C32 (AlB2)", "MgB2", "P6/mmm", _hexagonal(1.08),
               [(0, (0, 0, 0)), (1, (1 / 3, 2 / 3, 0.5))], [_METALS, _SMALL]),
    _prototype("E2_1 (cubic perovskite)", "MgCNi3", "Pm-3m", _cubic(),
               [(0, (0, 0, 0)), (1, (0.5, 0.5, 0.5)), (2, (0, 0.5, 0.5))],
               [_METALS, ("B", "C"), TRANSITION_METALS]),
    _prototype("B8_1 (NiAs)", "NiSb", "P6_3/mmc", _hexagonal(1.39),
               [(0, (0, 0, 0)), (1, (1 / 3, 2 / 3, 0.25))], [TRANSITION_METALS, SIMPLE_METALS + METALLOIDS]),
    )  # fmt: skip


def _site_species(proto: Prototype, elements) -> np.ndarray:
    """Element symbol of each site for a role assignment (one symbol per role)."""
    return np.array([elements[r] for r in proto.roles])


def lattice_scale(proto: Prototype, elements) -> float:
    """Conventional lattice constant (Å) for ``elements`` (one symbol per role); see module doc."""
    species = _site_species(proto, elements)
    pairs = periodic_pairs(proto.lattice, proto.frac, 1.0)
    d0 = np.array([RADIUS_A[a] + RADIUS_A[b] for a, b in zip(species[pairs.i], species[pairs.j])])
    nearest = np.full(len(proto), np.inf)
    np.minimum.at(nearest, pairs.i, pairs.dist)
    shell = pairs.dist <= (1.0 + FIRST_SHELL) * nearest[pairs.i]
    scale = float(np.exp(np.mean(np.log(d0[shell] / pairs.dist[shell]))))
    return max(scale, float(np.max(MIN_CONTACT * d0 / pairs.dist)))


def decorate(proto: Prototype, elements) -> Structure:
    """The prototype with ``elements`` (one symbol per role) at its radius-sized lattice constant."""
    if len(elements) != proto.n_roles:
        raise ValueError(f"{proto.name}: needs {proto.n_roles} elements, got {len(elements)}")
    scale = lattice_scale(proto, elements)
    species = [str(s) for s in _site_species(proto, elements)]
    return Structure(Lattice(proto.lattice * scale), species, proto.frac)


def check_geometry(structure: Structure) -> str | None:
    """Why ``structure`` is unusable for the demo (None if fine): too many sites, an atom with no
    neighbour within ``NEIGHBOUR_RADIUS_A`` or none within ``MAX_NEAREST`` (r_A + r_B) (a rattler),
    or a pair closer than ``MIN_ALLOWED`` (r_A + r_B)."""
    if len(structure) > MAX_SITES:
        return f"{len(structure)} sites > {MAX_SITES}"
    species = [site.specie.symbol for site in structure]
    pairs = periodic_pairs(structure.lattice.matrix, structure.frac_coords % 1.0, NEIGHBOUR_RADIUS_A)
    lonely = sorted(set(range(len(structure))) - set(pairs.i.tolist()))
    if lonely:
        return f"site {lonely[0]} ({species[lonely[0]]}) has no neighbour within {NEIGHBOUR_RADIUS_A} Å"
    sp = np.array(species)
    d0 = np.array([RADIUS_A[a] + RADIUS_A[b] for a, b in zip(sp[pairs.i], sp[pairs.j])])
    ratio = pairs.dist / d0
    k = int(np.argmin(ratio))
    if ratio[k] < MIN_ALLOWED:
        return f"{sp[pairs.i[k]]}-{sp[pairs.j[k]]} at {pairs.dist[k]:.2f} Å < {MIN_ALLOWED} (r_A + r_B)"
    nearest = np.full(len(structure), np.inf)
    np.minimum.at(nearest, pairs.i, ratio)
    k = int(np.argmax(nearest))
    if nearest[k] > MAX_NEAREST:
        return f"site {k} ({species[k]}) rattles: nearest neighbour at {nearest[k]:.2f} (r_A + r_B)"
    return None
