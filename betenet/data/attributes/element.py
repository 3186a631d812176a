"""The element block of every node: one-hot(Z) over the 118 elements as attributes, the same scaled by the
atom's mass (amu) as inputs (the release's ``build_data``), always the first ``MAX_Z`` columns.

Masses are ASE's ``ase.data.atomic_masses`` (what the release used via ``ase.Atom(Z).mass``); for the
64 elements of the BETE-NET data they agree with pymatgen's to within 0.1 %.
"""

from __future__ import annotations

import numpy as np
from ase.data import atomic_masses

from betenet.data.attributes.registry import NodeAttribute, register_attribute
from betenet.data.structures import MAX_Z

#: Atomic mass (amu) indexed by Z − 1 for Z = 1..118.
ATOMIC_MASS_AMU = np.asarray(atomic_masses[1 : MAX_Z + 1], dtype=float)


def element_blocks(structure, values, label: str, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(one-hot(Z) × mass, one-hot(Z)) [n, MAX_Z] of ``structure``'s atoms."""
    numbers = np.array([site.specie.Z for site in structure], dtype=int)
    onehot = np.eye(MAX_Z)[numbers - 1]
    return onehot * ATOMIC_MASS_AMU[numbers - 1][:, None], onehot


ELEMENT = register_attribute(NodeAttribute(
    name="element", width=lambda settings: MAX_Z, blocks=element_blocks, enabled=lambda settings: True,
    always=True, position=0, title="one-hot(Z)"))
