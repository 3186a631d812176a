"""Harmonic phonons with phonopy and an ASE calculator: finite-displacement force constants of an
N1×N2×N3 supercell, then frequencies and site projections on a Γ-centred q-mesh, in chunks.

The given cell is the primitive cell of the calculation (phonopy's ``primitive_matrix`` is the
identity), so modes project onto the structure's own sites in the file's order. Phonopy picks the
symmetry-distinct displacements (``displacement_A``, ± where symmetry needs both); the force
constants are then symmetrised (translational invariance, i.e. the acoustic sum rule, and index
permutation). Frequencies are converted from THz to meV; imaginary modes come out negative.
The mesh keeps one of each q, -q pair (time reversal; :func:`betenet.data.phonons.gamma_mesh`),
which leaves frequencies and site projections unchanged. The forces on the displaced supercells come
from :func:`betenet.phonons.forces.supercell_forces` (batched where the potential allows).
:func:`phonopy_params_text` is phonopy's own ``phonopy_params.yaml`` of a calculation (cell, supercell,
displacements, forces and the symmetrised force constants), which ``phonopy.load`` reads back.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from betenet.data.phonons import gamma_mesh
from betenet.phonons.potentials import PotentialUnavailable, EXTRA_HINT
from betenet.physics.units import THZ_TO_MEV

#: q-points diagonalised at once (bounds the eigenvector memory: chunk × (3n)² complex numbers).
Q_CHUNK = 512


def _phonopy():
    try:
        import phonopy
    except ImportError as exc:
        raise PotentialUnavailable("phonopy", f"not installed ({exc}); install it with {EXTRA_HINT}") from None
    return phonopy


def force_constants(atoms, calculator, supercell, displacement_A: float = 0.01, symprec: float = 1e-5,
                    batch_edges: int | None = None):
    """A phonopy object holding symmetrised force constants of ``atoms`` (ASE Atoms, the unit cell)
    in the ``supercell`` (three repetitions), forces from ``calculator`` (all displaced cells together,
    ``batch_edges`` edges per forward pass: :func:`betenet.phonons.forces.supercell_forces`). Returns
    ``(phonon, n_displacements)``."""
    from ase import Atoms

    from betenet.phonons.forces import supercell_forces

    phonopy = _phonopy()
    from phonopy.structure.atoms import PhonopyAtoms
    unit = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=np.asarray(atoms.cell),
                        scaled_positions=atoms.get_scaled_positions(wrap=False),
                        masses=atoms.get_masses())
    phonon = phonopy.Phonopy(unit, supercell_matrix=np.diag(supercell).astype(int), primitive_matrix=np.eye(3),
                             symprec=symprec)
    phonon.generate_displacements(distance=displacement_A)
    cells = phonon.supercells_with_displacements
    displaced = [Atoms(cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)
                 for cell in cells]
    phonon.forces = np.asarray(supercell_forces(displaced, calculator, batch_edges))
    phonon.produce_force_constants(show_drift=False)
    phonon.symmetrize_force_constants(show_drift=False)
    return phonon, len(cells)


def modes_at(phonon, q_frac) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies [nq, 3n] (meV, signed) and site projections [nq, 3n, n] (each mode's sum to 1)
    at fractional q-points ``q_frac`` [nq, 3]."""
    q = np.atleast_2d(np.asarray(q_frac, dtype=float))
    phonon.run_qpoints(q, with_eigenvectors=True)
    result = phonon.qpoints
    freq = np.asarray(result.frequencies, dtype=float) * THZ_TO_MEV
    vecs = np.asarray(result.eigenvectors)  # [nq, 3n, 3n], column j is mode j
    n = vecs.shape[1] // 3
    proj = (np.abs(vecs) ** 2).reshape(len(q), n, 3, 3 * n).sum(axis=2)  # [nq, n, 3n]
    return freq, proj.transpose(0, 2, 1)


def mesh_modes(phonon, mesh: int, chunk: int = Q_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(freq_meV [c, 3n], site_weight [c, 3n, n], q_weight [c])`` for successive chunks of the
    Γ-centred ``mesh``³ q-mesh (time-reversal pairs merged; weights sum to 1 over the mesh)."""
    q, w = gamma_mesh((mesh, mesh, mesh))
    for k in range(0, len(q), chunk):
        freq, proj = modes_at(phonon, q[k : k + chunk])
        yield freq, proj, w[k : k + chunk]


def phonopy_params_text(phonon) -> str:
    """``phonopy_params.yaml`` of ``phonon`` as text: phonopy's own writer (cell, supercell and primitive
    matrices, displacements and forces), with the force constants as computed here (symmetrised) in
    phonopy's compact form (rows of the unit cell's atoms: the same dynamical matrices, a fraction of
    the size), so that ``phonopy.load`` gives back these force constants rather than recomputing them."""
    phpy_yaml = phonon.to_phonopy_yaml(settings={"force_constants": True})
    fc = np.asarray(phonon.force_constants)
    if fc.shape[0] == fc.shape[1]:  # full: keep the unit cell's rows
        fc = fc[np.asarray(phonon.primitive.p2s_map)]
    phpy_yaml.force_constants = fc
    return str(phpy_yaml)
