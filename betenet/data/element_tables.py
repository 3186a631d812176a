"""Per-element tables of the synthetic demo dataset: radii (lattice sizing), bulk moduli (spring
stiffness), masses and electron-phonon coupling scales, for a fixed list of 38 elements.

These tables feed a *synthetic* generator (``betenet.data.sources.demo``); they are physically
motivated but the demo's phonons and a2F are toy-model outputs, not predictions for real materials.
"""

from __future__ import annotations

import math

from pymatgen.core import Element
from scipy import constants

#: Transition metals (and La) the generator decorates prototypes with.
TRANSITION_METALS = (
    "Sc", "Ti", "V", "Cr", "Ni", "Cu", "Zn", "Y", "Zr", "Nb", "Mo", "Ru",
    "Rh", "Pd", "Ag", "La", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au",
)  # fmt: skip
#: Simple (s/p) metals, including the light Li, Be and Mg.
SIMPLE_METALS = ("Li", "Be", "Mg", "Al", "Ga", "In", "Sn", "Pb")
#: Light elements and metalloids (interstitial / anion-like sites).
METALLOIDS = ("B", "C", "Si", "Ge", "Sb", "Bi")
#: Every element the demo dataset uses.
ELEMENTS = TRANSITION_METALS + SIMPLE_METALS + METALLOIDS

#: Radius in Å used to size lattices (nearest-neighbour distance of a pair ≈ r_A + r_B).
#: Metals: metallic radii for 12-fold coordination (Teatum, Gschneidner & Waber, LA-2345 (1960)),
#: the values pymatgen ships as ``Element.metallic_radius``. B, C, Si, Ge, Sn, Sb, Pb, Bi have no
#: metallic radius there and take Slater's empirical atomic radii (J. C. Slater, J. Chem. Phys. 41,
#: 3199 (1964); pymatgen's ``Element.atomic_radius``).
RADIUS_A = {
    "Sc": 1.62, "Ti": 1.47, "V": 1.34, "Cr": 1.28, "Ni": 1.24, "Cu": 1.28, "Zn": 1.34,
    "Y": 1.80, "Zr": 1.60, "Nb": 1.46, "Mo": 1.39, "Ru": 1.34, "Rh": 1.34, "Pd": 1.37,
    "Ag": 1.44, "La": 1.87, "Hf": 1.59, "Ta": 1.46, "W": 1.39, "Re": 1.37, "Os": 1.35,
    "Ir": 1.355, "Pt": 1.385, "Au": 1.44,
    "Li": 1.52, "Be": 1.12, "Mg": 1.60, "Al": 1.43, "Ga": 1.35, "In": 1.67,
    "Sn": 1.45, "Pb": 1.80,  # Slater
    "B": 0.85, "C": 0.70, "Si": 1.10, "Ge": 1.25, "Sb": 1.45, "Bi": 1.60,  # Slater
}  # fmt: skip

#: Bulk modulus in GPa: WebElements values as shipped in pymatgen's periodic table data
#: ("Bulk modulus"). Absent there, taken from Kittel, Introduction to Solid State Physics
#: (8th ed., ch. 3, Table 3): Ga 56.9, Ge 77.2, Zr 83.3, In 41.1, Os 418; C uses diamond (443,
#: same table) instead of WebElements' graphite value (33).
BULK_MODULUS_GPA = {
    "Sc": 57, "Ti": 110, "V": 160, "Cr": 160, "Ni": 180, "Cu": 140, "Zn": 70, "Y": 41,
    "Zr": 83.3, "Nb": 170, "Mo": 230, "Ru": 220, "Rh": 380, "Pd": 180, "Ag": 100, "La": 28,
    "Hf": 110, "Ta": 200, "W": 310, "Re": 370, "Os": 418, "Ir": 320, "Pt": 230, "Au": 220,
    "Li": 11, "Be": 130, "Mg": 45, "Al": 76, "Ga": 56.9, "In": 41.1, "Sn": 58, "Pb": 46,
    "B": 320, "C": 443, "Si": 100, "Ge": 77.2, "Sb": 42, "Bi": 31,
}  # fmt: skip

#: Electron-phonon coupling of each element: the McMillan lambda = eta / (M <w²>) of a site of
#: that element in the demo's a2F model (``betenet.data.sources.demo.synthetic_a2f``). A synthetic
#: choice ordered like the known couplings of the elemental metals (strong: Pb, Nb, V, Ta, In, Sn;
#: weak: Cu, Ag, Au), not measured data.
COUPLING = {
    "Sc": 0.30, "Ti": 0.35, "V": 0.60, "Cr": 0.20, "Ni": 0.25, "Cu": 0.08, "Zn": 0.22,
    "Y": 0.30, "Zr": 0.30, "Nb": 0.65, "Mo": 0.28, "Ru": 0.25, "Rh": 0.22, "Pd": 0.25,
    "Ag": 0.08, "La": 0.50, "Hf": 0.25, "Ta": 0.50, "W": 0.18, "Re": 0.28, "Os": 0.22,
    "Ir": 0.20, "Pt": 0.30, "Au": 0.09,
    "Li": 0.20, "Be": 0.14, "Mg": 0.18, "Al": 0.25, "Ga": 0.25, "In": 0.45, "Sn": 0.40,
    "Pb": 0.70,
    "B": 0.90, "C": 0.70, "Si": 0.20, "Ge": 0.20, "Sb": 0.25, "Bi": 0.35,
}  # fmt: skip

#: 1 GPa in eV/Å^3 (from CODATA via scipy.constants).
GPA_TO_EV_A3 = 1e9 / constants.electron_volt * 1e-30

#: Atomic masses in amu (IUPAC standard atomic weights, from pymatgen).
MASS_AMU = {el: float(Element(el).atomic_mass) for el in ELEMENTS}

assert set(RADIUS_A) == set(ELEMENTS) == set(BULK_MODULUS_GPA) == set(COUPLING)
assert len(ELEMENTS) == len(set(ELEMENTS))


def _check(symbol: str) -> None:
    if symbol not in RADIUS_A:
        raise KeyError(f"{symbol}: not in the demo element tables ({', '.join(ELEMENTS)})")


def stiffness_eV_A2(symbol: str) -> float:
    """Spring stiffness s (eV/Å²) of an element: the nearest-neighbour central spring that gives an
    fcc crystal of atoms with radius r its tabulated bulk modulus B.

    For fcc with nearest-neighbour central springs k and cubic lattice constant a, C11 = 2k/a and
    C12 = k/a, so B = (C11 + 2 C12)/3 = 4k/(3a); with a = 2√2 r this gives s = 3√2/2 · r · B.
    """
    _check(symbol)
    return 1.5 * math.sqrt(2.0) * RADIUS_A[symbol] * BULK_MODULUS_GPA[symbol] * GPA_TO_EV_A3
