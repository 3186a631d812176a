"""Is an input physically possible? One check for structures and one for spectra (a2F, site PhDOS),
shared by every place that accepts them: data sources, prediction inputs, phonons, DFT inputs.

Structures (:func:`check_structure`, called by :func:`betenet.data.structures.validate_structure`):

- no atom closer to another atom, or to its own periodic image, than :data:`MIN_DISTANCE_FRACTION`
  of the sum of their covalent radii (Cordero et al. 2008, ``ase.data.covalent_radii``); the real
  structures of the shared data sets come no closer than 0.75 of it;
- a volume per atom within :data:`VOLUME_PER_ATOM_A3` (the densest solid hydrogen ever computed holds
  about 1 Å^3 per atom, bcc Cs 117 Å^3): outside, the lengths are in another unit or the "crystal"
  is an atom in a box;
- where a calculation's cost grows with the cell (phonons), at most ``max_atoms`` atoms (a setting).

Spectra (:func:`check_spectrum_values`, called by
:func:`betenet.data.sources.base.build_entry` for every labels row): the frequencies must be meV
(no weight above :func:`phonon_ceiling_meV` of the structure's lightest atom: a grid in cm^-1 is
about 8 times too high); a site PhDOS must not be negative (beyond :data:`NEGATIVE_DOS_TOL` of its peak, rounding
noise) and each site's must integrate to 3 (one per vibrational mode) within a factor
:data:`NORMALISATION_FACTOR` (other conventions pass; a spectrum scaled by 1e6 does not).

Each refusal raises :class:`~betenet.errors.InputError` naming the input, in one line.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from ase.data import atomic_masses, covalent_radii
from pymatgen.core import Structure

from betenet.errors import InputError
from betenet.physics.properties import weight_edge
from betenet.physics.units import CMM1_TO_MEV

#: Shortest accepted distance between two atoms, as a fraction of the sum of their covalent radii.
MIN_DISTANCE_FRACTION = 0.5
#: Accepted volume per atom (Å^3): [lowest, highest].
VOLUME_PER_ATOM_A3 = (0.5, 1000.0)
#: Nitrogen's N≡N stretch, the stiffest chemical bond: harmonic wavenumber (cm^-1, NIST) and atom mass
#: (amu); see :func:`phonon_ceiling_meV`.
N2_WAVENUMBER_CM = 2358.6
N2_ATOM_MASS_AMU = float(atomic_masses[7])
#: A DOS value below ``-NEGATIVE_DOS_TOL`` × the row's peak is not rounding noise.
NEGATIVE_DOS_TOL = 1e-2
#: States per site of a site-projected phonon DOS (three vibrational modes per atom), and how far off
#: (a factor either way) another normalisation may be before it is refused.
STATES_PER_SITE = 3.0
NORMALISATION_FACTOR = 1000.0


# --------------------------------------------------------------------------------------------
# structures
# --------------------------------------------------------------------------------------------
def _radii(structure: Structure) -> np.ndarray:
    return covalent_radii[[site.specie.Z for site in structure]]


def _site(structure: Structure, k: int) -> str:
    return f"{k} ({structure[k].specie.symbol})"


def shortest_lattice_vector(lattice) -> float:
    """Length (Å) of the shortest non-zero lattice vector: the distance of every atom to its nearest
    periodic image (exact in 3-D: the shortest vector is a ±1/0 combination of the LLL-reduced basis)."""
    reduced = np.asarray(lattice.get_lll_reduced_lattice().matrix)
    combos = np.array([c for c in itertools.product((-1, 0, 1), repeat=3) if any(c)])
    return float(np.linalg.norm(combos @ reduced, axis=1).min())


def check_distances(structure: Structure, name: str) -> None:
    """Refuse an atom closer to another atom or to its own periodic image than
    :data:`MIN_DISTANCE_FRACTION` of the sum of their covalent radii (the closest pair is named)."""
    radii = _radii(structure)
    image = shortest_lattice_vector(structure.lattice)
    k = int(np.argmax(radii))
    if image < MIN_DISTANCE_FRACTION * 2 * radii[k]:
        raise InputError(name, f"atom {_site(structure, k)} is {image:.3f} Å from its own periodic image (below "
                               f"{MIN_DISTANCE_FRACTION:g} x twice its covalent radius, "
                               f"{MIN_DISTANCE_FRACTION * 2 * radii[k]:.2f} Å): the cell is too small")
    # the cut-off is at most the shortest lattice vector now, so the neighbour list stays small
    src, dst, _, dist = structure.get_neighbor_list(MIN_DISTANCE_FRACTION * 2 * radii.max(), exclude_self=True)
    if not len(dist):
        return
    limit = MIN_DISTANCE_FRACTION * (radii[src] + radii[dst])
    worst = int(np.argmin(dist / limit))
    if dist[worst] >= limit[worst]:
        return
    (i, j), d = sorted((int(src[worst]), int(dst[worst]))), float(dist[worst])
    pair = f"atoms {_site(structure, i)} and {_site(structure, j)}"
    if d < 1e-3:
        raise InputError(name, f"{pair} are on the same site; one site holds one atom")
    raise InputError(name, f"{pair} are {d:.3f} Å apart (below {MIN_DISTANCE_FRACTION:g} x the sum of their "
                           f"covalent radii, {limit[worst]:.2f} Å)")


def check_volume_per_atom(structure: Structure, name: str) -> None:
    """Refuse a volume per atom outside :data:`VOLUME_PER_ATOM_A3`."""
    low, high = VOLUME_PER_ATOM_A3
    v = abs(structure.lattice.volume) / len(structure)
    if v < low:
        raise InputError(name, f"{v:.3g} Å^3 per atom, below {low:g} Å^3 (denser than any solid): are the "
                               "lengths in Å?")
    if v > high:
        raise InputError(name, f"{v:.3g} Å^3 per atom, above {high:g} Å^3 (bcc Cs, the most open metal, has "
                               "117): not a crystal (an atom in a box?), or lengths not in Å")


def check_atom_count(structure: Structure, name: str, max_atoms: int | None, setting: str = "max_atoms") -> None:
    """Refuse a cell of more than ``max_atoms`` atoms (None: no limit), naming the ``setting`` that raises it."""
    if max_atoms is not None and len(structure) > max_atoms:
        raise InputError(name, f"{len(structure)} atoms, above the limit of {max_atoms} (raise {setting} to "
                               "compute it anyway)")


def check_structure(structure: Structure, name: str, max_atoms: int | None = None,
                    setting: str = "max_atoms") -> None:
    """Every structure check above (distances, volume per atom, and the atom count when ``max_atoms``).
    The structure must already be a valid one (finite, ordered, non-singular cell:
    :func:`betenet.data.structures.validate_structure`)."""
    check_atom_count(structure, name, max_atoms, setting)
    check_distances(structure, name)
    check_volume_per_atom(structure, name)


# --------------------------------------------------------------------------------------------
# spectra
# --------------------------------------------------------------------------------------------
def phonon_ceiling_meV(mass_amu: float) -> float:
    """An upper bound (meV) on the phonon frequencies of a crystal whose lightest atom weighs
    ``mass_amu``: the frequency of an N≡N bond, the stiffest there is, between two such atoms
    (ħ sqrt(2 k / m); 292 meV for nitrogen, 1090 meV for hydrogen, whose real maximum, the H2
    stretch, is 516 meV)."""
    return N2_WAVENUMBER_CM * CMM1_TO_MEV * math.sqrt(N2_ATOM_MASS_AMU / mass_amu)


def check_frequency_unit(entry_id: str, freq_name: str, freq, total, structure: Structure) -> None:
    """Refuse a spectrum (frequencies ``freq`` in meV, ``total`` its values, per site summed) with weight
    (:func:`~betenet.physics.properties.weight_edge`) above :func:`phonon_ceiling_meV` of the structure's
    lightest atom."""
    lightest = min(structure, key=lambda site: atomic_masses[site.specie.Z]).specie
    ceiling = phonon_ceiling_meV(float(atomic_masses[lightest.Z]))
    edge = weight_edge(freq, total)
    if edge > ceiling:
        raise InputError(entry_id, f"{freq_name}: weight up to {edge:,.0f} meV, above any phonon of a crystal whose "
                                   f"lightest atom is {lightest.symbol} ({ceiling:.0f} meV): frequencies in "
                                   f"cm^-1? (1 meV = {1 / CMM1_TO_MEV:.4f} cm^-1)")


def check_site_dos(entry_id: str, values_name: str, freq, site_dos) -> None:
    """Refuse a site PhDOS [n_sites, n_freq] with a value below -:data:`NEGATIVE_DOS_TOL` × its site's
    peak, or a site whose integral over ``freq`` is off :data:`STATES_PER_SITE` by more than
    :data:`NORMALISATION_FACTOR`."""
    f, dos = np.asarray(freq, dtype=float), np.asarray(site_dos, dtype=float)
    peak = np.abs(dos).max(axis=1)
    low = dos.min(axis=1)
    bad = np.flatnonzero(low < -NEGATIVE_DOS_TOL * peak)
    if bad.size:
        s = int(bad[0])
        k = int(np.argmin(dos[s]))
        raise InputError(entry_id, f"{values_name}: site {s} has DOS {dos[s, k]:.3g} at {f[k]:g} meV; a density "
                                   f"of states is never negative (beyond {NEGATIVE_DOS_TOL:g} of its peak as noise)")
    states = np.trapezoid(dos, f, axis=1)
    off = np.flatnonzero((states < STATES_PER_SITE / NORMALISATION_FACTOR)
                         | (states > STATES_PER_SITE * NORMALISATION_FACTOR))
    if off.size:
        s = int(off[0])
        raise InputError(entry_id, f"{values_name}: site {s} integrates to {states[s]:.3g} states, not "
                                   f"{STATES_PER_SITE:g} (one per vibrational mode; accepted within a factor "
                                   f"{NORMALISATION_FACTOR:g}): scaled values?")


def check_spectrum_values(entry_id: str, freq_name: str, freq, values_name: str, values,
                          structure: Structure, per_site: bool) -> None:
    """The spectrum checks of the module docstring for one checked spectrum of ``structure``: frequencies
    ``freq`` (meV, sorted) and ``values`` (one row per site when ``per_site``: a site PhDOS; else a2F,
    whose negative values are the ``negative_a2f`` filter's to judge)."""
    values = np.asarray(values, dtype=float)
    if per_site:
        check_site_dos(entry_id, values_name, freq, values)
    check_frequency_unit(entry_id, freq_name, freq, values.sum(axis=0) if per_site else values, structure)
