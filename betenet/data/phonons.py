"""Harmonic phonons of a central-spring crystal: springs between neighbours, force constants
(exact, or folded onto a 2×2×2 supercell and Fourier-interpolated like a coarse DFT q-grid),
dynamical matrices vectorised over q, frequencies in meV and Gaussian-broadened site-projected DOS.

Conventions. Positions are fractional (wrapped into [0, 1)); a force-constant block
``(i, j, R, phi)`` couples atom i of cell 0 to atom j of cell R (R in lattice vectors), phi in
eV/Å². The dynamical matrix is ``D_ij(q) = sum_R phi_ij(R) exp(2πi q·R) / sqrt(m_i m_j)`` with q
in reciprocal-lattice (fractional) units and masses in amu; its eigenvalues w² are in
eV/(Å² amu) and ħw = sqrt(w²) · :data:`HBAR_OMEGA_UNIT_MEV` meV. A spring k between atoms with
unit bond vector e contributes ``-k e eᵀ`` to the bond's block and ``+k e eᵀ`` to the on-site
block of each end, so the acoustic sum rule holds exactly and D(q) is positive semi-definite for
positive springs (every spring adds a term k |e·(u_i - u_j e^{iq·R})|² to the energy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import constants, sparse

from betenet.data.element_tables import MASS_AMU, RADIUS_A, stiffness_eV_A2

#: ħ·sqrt(1 eV / (Å² · amu)) in meV (≈ 64.654), computed from CODATA constants.
HBAR_OMEGA_UNIT_MEV = (
    constants.hbar
    * math.sqrt(constants.electron_volt / (constants.angstrom**2 * constants.atomic_mass))
    / (constants.electron_volt * 1e-3)
)

#: Spring rule, x = d / (r_i + r_j), s the element stiffness (``element_tables``):
#: k = sqrt(s_i s_j) [exp(-SPRING_DECAY (x - 1)) T(x; TAPER_START, SPRING_CUTOFF)
#:                    + TAIL_WEIGHT exp(-TAIL_DECAY (x - 1)) T(x; TAIL_START, TAIL_CUTOFF)],
#: T a cos² taper from 1 at its start to 0 at its cutoff. The bonding term covers the first
#: shells; the weak tail mimics the longer range of metallic force constants, so that force
#: constants folded onto a 2×2×2 supercell (the coarse PhDOS) differ from the exact ones.
SPRING_DECAY = 3.0
TAPER_START = 1.15
SPRING_CUTOFF = 1.30
TAIL_WEIGHT = 0.10
TAIL_DECAY = 1.5
TAIL_START = 1.80
TAIL_CUTOFF = 2.20
#: Eigenvalues w² with |w²| below this fraction of the eigenvalue scale (by default the largest
#: |w²|; in ``phonon_modes`` ``ForceConstants.eigenvalue_bound``) are rounding noise (the acoustic
#: modes at Γ) and are set to exactly 0.
ZERO_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Pairs:
    """Directed periodic neighbour pairs: atom ``i`` (cell 0) → atom ``j`` in cell ``shift``."""

    i: np.ndarray  # [nb] int
    j: np.ndarray  # [nb] int
    shift: np.ndarray  # [nb, 3] int, lattice vectors
    vec: np.ndarray  # [nb, 3] Cartesian bond vectors (Å)
    dist: np.ndarray  # [nb] bond lengths (Å)


def _image_range(lattice: np.ndarray, cutoff: float) -> np.ndarray:
    """Integer shifts covering every image within ``cutoff`` of any point of the cell."""
    volume = abs(np.linalg.det(lattice))
    cross = np.cross(lattice[[1, 2, 0]], lattice[[2, 0, 1]])
    widths = volume / np.linalg.norm(cross, axis=1)  # distances between opposite cell faces
    n = np.ceil(cutoff / widths).astype(int) + 1
    axes = [np.arange(-k, k + 1) for k in n]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def periodic_pairs(lattice, frac, cutoff: float) -> Pairs:
    """Every directed pair (i, j, R) with 0 < |x_j + R - x_i| ≤ ``cutoff`` (Å).

    ``lattice``: rows are the lattice vectors (Å); ``frac``: fractional positions in [0, 1).
    Both directions of each bond are listed, as are bonds of an atom to its own images.
    """
    lattice = np.asarray(lattice, dtype=float)
    frac = np.asarray(frac, dtype=float)
    shifts = _image_range(lattice, cutoff)
    cart = frac @ lattice
    vec = cart[None, :, None, :] + (shifts @ lattice)[None, None, :, :] - cart[:, None, None, :]
    dist = np.linalg.norm(vec, axis=-1)
    i, j, m = np.nonzero((dist <= cutoff) & (dist > 1e-8))
    return Pairs(i=i, j=j, shift=shifts[m], vec=vec[i, j, m], dist=dist[i, j, m])


@dataclass(frozen=True)
class ForceConstants:
    """Real-space force constants as blocks (i, j, R, phi [eV/Å²]) plus the site masses (amu)."""

    masses: np.ndarray  # [n]
    i: np.ndarray  # [nb]
    j: np.ndarray  # [nb]
    shift: np.ndarray  # [nb, 3] int
    phi: np.ndarray  # [nb, 3, 3]

    @property
    def n_sites(self) -> int:
        return int(self.masses.shape[0])

    def onsite_trace(self) -> np.ndarray:
        """Trace of each site's on-site block (eV/Å²): for springs, the sum of the site's spring
        constants; divided by 3 M_s it is the Brillouin-zone average of w² projected on the site."""
        onsite = (self.i == self.j) & ~self.shift.any(axis=1)
        out = np.zeros(self.n_sites)
        np.add.at(out, self.i[onsite], np.trace(self.phi[onsite], axis1=1, axis2=2))
        return out

    def eigenvalue_bound(self) -> float:
        """An upper bound on |w²| at every q (eV/(Å² amu)): the largest row sum of |phi|/sqrt(m_i m_j)
        over all blocks, which bounds the row sums of |D(q)| whatever the phases."""
        scaled = np.abs(self.phi).sum(axis=2) / np.sqrt(self.masses[self.i] * self.masses[self.j])[:, None]
        rows = np.zeros((self.n_sites, 3))
        np.add.at(rows, self.i, scaled)
        return float(rows.max()) if rows.size else 0.0

    def dynamical_matrices(self, q_frac) -> np.ndarray:
        """D(q) for each q [nq, 3] (fractional): complex array [nq, 3n, 3n] in eV/(Å² amu)."""
        q = np.atleast_2d(np.asarray(q_frac, dtype=float))
        n = self.n_sites
        phases = np.exp(2j * np.pi * (q @ self.shift.T))  # [nq, nb]
        # Scatter each block's 9 entries to its place in the flattened [n, 3, n, 3] matrix.
        a, b = np.meshgrid(np.arange(3), np.arange(3), indexing="ij")
        cols = ((self.i[:, None, None] * 3 + a) * n + self.j[:, None, None]) * 3 + b  # [nb, 3, 3]
        rows = np.repeat(np.arange(len(self.i)), 9)
        scatter = sparse.csr_matrix(
            (self.phi.reshape(-1), (rows, cols.reshape(-1))), shape=(len(self.i), 9 * n * n)
        )
        flat = (scatter.T @ phases.T).T  # [nq, 9 n²]
        inv_sqrt_m = np.repeat(1.0 / np.sqrt(self.masses), 3)
        d = flat.reshape(len(q), 3 * n, 3 * n)
        return d * inv_sqrt_m[None, :, None] * inv_sqrt_m[None, None, :]


def force_constants_from_springs(masses, i, j, shift, vec, k) -> ForceConstants:
    """Force constants of central springs given as *directed* bonds (each bond listed from both
    ends, as :func:`periodic_pairs` gives them) with spring constants ``k`` (eV/Å², > 0)."""
    masses = np.asarray(masses, dtype=float)
    k = np.asarray(k, dtype=float)
    if np.any(k <= 0):
        raise ValueError("spring constants must be positive")
    e = np.asarray(vec, dtype=float)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    blocks = k[:, None, None] * e[:, :, None] * e[:, None, :]  # k e eᵀ per directed bond
    n = masses.shape[0]
    onsite = np.zeros((n, 3, 3))
    np.add.at(onsite, np.asarray(i), blocks)
    sites = np.arange(n)
    return ForceConstants(
        masses=masses,
        i=np.concatenate([np.asarray(i), sites]),
        j=np.concatenate([np.asarray(j), sites]),
        shift=np.concatenate([np.asarray(shift, dtype=int), np.zeros((n, 3), dtype=int)]),
        phi=np.concatenate([-blocks, onsite]),
    )


def _taper(x: np.ndarray, start: float, stop: float) -> np.ndarray:
    t = np.clip((x - start) / (stop - start), 0.0, 1.0)
    return np.cos(0.5 * np.pi * t) ** 2


def spring_constants(species_i, species_j, dist) -> np.ndarray:
    """Spring constants (eV/Å², ≥ 0) of bonds between elements ``species_i``, ``species_j`` at
    distances ``dist`` (Å), by the rule above (:data:`SPRING_DECAY` ... :data:`TAIL_CUTOFF`);
    exactly 0 beyond ``TAIL_CUTOFF`` (r_i + r_j)."""
    s = np.sqrt([stiffness_eV_A2(a) * stiffness_eV_A2(b) for a, b in zip(species_i, species_j)])
    r0 = np.array([RADIUS_A[a] + RADIUS_A[b] for a, b in zip(species_i, species_j)])
    x = np.asarray(dist, dtype=float) / r0
    bond = np.exp(-SPRING_DECAY * (x - 1.0)) * _taper(x, TAPER_START, SPRING_CUTOFF)
    tail = TAIL_WEIGHT * np.exp(-TAIL_DECAY * (x - 1.0)) * _taper(x, TAIL_START, TAIL_CUTOFF)
    return s * (bond + tail)


def spring_model(lattice, frac, species) -> ForceConstants:
    """Exact force constants of the spring model of a crystal (lattice rows in Å, fractional
    positions in [0, 1), element symbols): springs between all pairs with ``k > 0``."""
    species = list(species)
    reach = TAIL_CUTOFF * 2.0 * max(RADIUS_A[s] for s in species)
    pairs = periodic_pairs(lattice, frac, reach)
    sp = np.array(species)
    k = spring_constants(sp[pairs.i], sp[pairs.j], pairs.dist)
    keep = k > 0
    masses = [MASS_AMU[s] for s in species]
    return force_constants_from_springs(
        masses, pairs.i[keep], pairs.j[keep], pairs.shift[keep], pairs.vec[keep], k[keep]
    )


def fold_to_supercell(fc: ForceConstants, lattice, frac, supercell=(2, 2, 2)) -> ForceConstants:
    """The force constants a calculation on a ``supercell`` q-grid would give, ready for Fourier
    interpolation (what QE's q2r + matdyn do with a coarse grid).

    Blocks are summed per (i, j, R mod N) (on the N-grid only R mod N is seen) and each sum is
    placed on the shortest image(s) ``R' = R mod N + N L`` of the bond, split equally between
    images of equal length (Wigner–Seitz weights). D(q) is reproduced exactly on the N-grid;
    elsewhere the springs longer than half the supercell are aliased. The result stays positive
    semi-definite and keeps the acoustic sum rule (weights of each block sum to 1).
    """
    lattice = np.asarray(lattice, dtype=float)
    frac = np.asarray(frac, dtype=float)
    big = np.asarray(supercell, dtype=int)
    rbar = np.mod(fc.shift, big)
    keys, inverse = np.unique(np.column_stack([fc.i, fc.j, rbar]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    phi = np.zeros((len(keys), 3, 3))
    np.add.at(phi, inverse, fc.phi)

    cells = np.stack(np.meshgrid(*[np.arange(-2, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    images = keys[:, None, 2:] + cells[None] * big  # [nk, 64, 3]
    delta = frac[keys[:, 1]] - frac[keys[:, 0]]
    length = np.linalg.norm((images + delta[:, None, :]) @ lattice, axis=-1)  # [nk, 64]
    shortest = length.min(axis=1, keepdims=True)
    ties = length <= shortest + 1e-6 * (1.0 + shortest)
    weight = 1.0 / ties.sum(axis=1)
    kk, cc = np.nonzero(ties)
    return ForceConstants(
        masses=fc.masses,
        i=keys[kk, 0],
        j=keys[kk, 1],
        shift=images[kk, cc],
        phi=phi[kk] * weight[kk, None, None],
    )


def gamma_mesh(mesh, time_reversal: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Γ-centred Monkhorst–Pack mesh ``mesh = (n1, n2, n3)``: fractional q [nq, 3] and weights
    summing to 1. With ``time_reversal`` only one of each pair q, -q is kept (weight doubled):
    D(-q) = D(q)* has the same frequencies and site projections."""
    mesh = np.asarray(mesh, dtype=int)
    m = np.stack(np.meshgrid(*[np.arange(n) for n in mesh], indexing="ij"), -1).reshape(-1, 3)
    weight = np.ones(len(m))
    if time_reversal:
        flat = np.ravel_multi_index(m.T, mesh)
        partner = np.ravel_multi_index(np.mod(-m, mesh).T, mesh)
        keep = flat <= partner
        weight = np.where(flat == partner, 1.0, 2.0)[keep]
        m = m[keep]
    return m / mesh, weight / weight.sum()


def frequencies_meV(w2, scale: float | None = None) -> np.ndarray:
    """Signed frequencies (meV) from eigenvalues w² (eV/(Å² amu)): sqrt for w² ≥ 0, -sqrt(-w²)
    for imaginary modes; |w²| ≤ ``ZERO_TOLERANCE`` × ``scale`` is rounding noise and exactly 0
    (never NaN). ``scale`` (same units) defaults to the largest |w²| given."""
    w2 = np.asarray(w2, dtype=float)
    if scale is None:
        scale = float(np.max(np.abs(w2))) if w2.size else 0.0
    w2 = np.where(np.abs(w2) <= ZERO_TOLERANCE * scale, 0.0, w2)
    return np.sign(w2) * np.sqrt(np.abs(w2)) * HBAR_OMEGA_UNIT_MEV


def phonon_modes(fc: ForceConstants, q_frac) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies [nq, 3n] (meV, signed, ascending per q) and site projections [nq, 3n, n]
    (|eigenvector components on site s|² summed over x, y, z; each mode's projections sum to 1).

    The zero tolerance of :func:`frequencies_meV` is relative to
    :meth:`ForceConstants.eigenvalue_bound`, so it also holds where every mode vanishes (Γ of a
    one-atom cell).
    """
    w2, vecs = np.linalg.eigh(fc.dynamical_matrices(q_frac))
    n = fc.n_sites
    proj = (np.abs(vecs) ** 2).reshape(len(w2), n, 3, 3 * n).sum(axis=2)  # [nq, n, 3n]
    return frequencies_meV(w2, fc.eigenvalue_bound()), proj.transpose(0, 2, 1)


def site_projected_dos(freq_meV, site_weight, q_weight, f_max_meV: float, *, step_meV: float = 0.1,
                       sigma_meV: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-broadened site-projected DOS on the grid ``0, step, ..., ≥ f_max`` (meV).

    ``freq_meV`` [nq, 3n] (≥ 0), ``site_weight`` [nq, 3n, n], ``q_weight`` [nq] (sums to 1).
    Returns ``(grid [nf], dos [n, nf])`` in states/meV; each site integrates to 3 (total 3n).
    Modes are binned linearly onto the grid and convolved with a normalised Gaussian of width
    ``sigma_meV``; the tail that would fall below 0 meV is reflected back onto w ≥ 0 so the
    integral is kept (acoustic modes near Γ).
    """
    freq = np.asarray(freq_meV, dtype=float)
    if freq.min() < 0:
        raise ValueError(f"imaginary mode at {freq.min():.3g} meV: the DOS grid starts at 0")
    half = int(math.ceil(6.0 * sigma_meV / step_meV))
    nf = int(math.ceil(round(f_max_meV / step_meV, 6))) + 1
    if freq.max() > (nf - 2) * step_meV:
        raise ValueError(f"f_max_meV={f_max_meV} does not cover the highest mode {freq.max():.3f} meV")
    pos = freq.reshape(-1) / step_meV
    low = np.floor(pos).astype(int)
    upper = pos - low
    n_sites = site_weight.shape[-1]
    w = (np.asarray(site_weight, dtype=float) * np.asarray(q_weight)[:, None, None]).reshape(-1, n_sites)
    hist = np.zeros((n_sites, nf + half))
    for s in range(n_sites):
        hist[s] += np.bincount(low, w[:, s] * (1.0 - upper), minlength=nf + half)[: nf + half]
        hist[s] += np.bincount(low + 1, w[:, s] * upper, minlength=nf + half)[: nf + half]
    x = np.arange(-half, half + 1) * step_meV
    kernel = np.exp(-0.5 * (x / sigma_meV) ** 2)
    kernel /= kernel.sum() * step_meV
    padded = np.concatenate([np.zeros((n_sites, half)), hist], axis=1)  # index 0 ↔ -half·step
    full = np.stack([np.convolve(row, kernel, mode="same") for row in padded])
    dos = full[:, half : half + nf].copy()
    dos[:, : half + 1] += full[:, half::-1][:, : half + 1]  # reflect w < 0 onto w > 0
    grid = np.round(np.arange(nf) * step_meV, 10)
    return grid, dos
