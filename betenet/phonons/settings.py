"""Settings of a machine-learned-potential phonon calculation (:class:`PhononSettings`) and the two
PhDOS kinds of the paper: ``coarse`` (CPD: force constants of a 2×2×2 supercell, Fourier-interpolated
to a 20³ q-mesh) and ``fine`` (FPD: a larger supercell, the same mesh).

The fine supercell repeats the cell ``max(supercell, ceil(fine_length_A / |a_i|))`` times along each
lattice vector a_i, so the supercell is at least ``fine_length_A`` long in every direction (fcc Al,
|a_i| = 2.81 Å: 4×4×4, the q-grid of Quantum ESPRESSO's Al example). :meth:`PhononSettings.key`
lists what a result depends on (everything but the device, the size limit and the batch size, which
say where, whether and how fast), for cache keys and provenance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from betenet.errors import InputError
from betenet.phonons.potentials import DEFAULT_POTENTIAL, check_device, get_potential

#: The site-projected PhDOS kinds and their directory-format columns.
KINDS = ("coarse", "fine")
#: Settings that do not change a result (left out of :meth:`PhononSettings.key`).
NOT_RECIPE = ("device", "max_atoms", "batch_edges")


def kind_columns(kind: str) -> tuple[str, str]:
    """(frequency column, per-site column) of a PhDOS kind in the directory format."""
    if kind not in KINDS:
        raise InputError(f"kind {kind!r}", f"unknown PhDOS kind; use one of {', '.join(KINDS)}")
    return f"phdos_{kind}_freq_meV", f"phdos_{kind}_site"


@dataclass(frozen=True)
class PhononSettings:
    """How phonons are computed. Lengths in Å, frequencies in meV, forces in eV/Å.

    ``supercell``: repetitions along each lattice vector for the coarse PhDOS (the paper's 2);
    ``fine_length_A``: minimum fine-supercell length (module docstring); ``mesh``: q-points per
    reciprocal axis (Γ-centred); ``displacement_A``: finite displacement; ``sigma_meV``: Gaussian
    smearing of the DOS on a grid of step ``step_meV``; ``relax``: relax the positions (cell fixed,
    symmetry kept) with the potential first, to ``relax_fmax`` eV/Å within ``relax_steps`` steps;
    ``max_atoms``: larger cells are refused before any force is computed (the cost grows with the
    supercell's atoms times the displacements: a 200-atom cell takes minutes even with EMT). Neither the
    device nor ``max_atoms`` changes a result (:meth:`key`); nor does ``batch_edges``, the edges per
    batched forward pass of the potential (None: the device's default, :mod:`.forces`; 0: one displaced
    cell at a time through ASE).
    """

    potential: str = DEFAULT_POTENTIAL
    supercell: int = 2
    fine_length_A: float = 10.0
    mesh: int = 20
    displacement_A: float = 0.01
    sigma_meV: float = 1.0
    step_meV: float = 0.1
    relax: bool = False
    relax_fmax: float = 0.01
    relax_steps: int = 200
    device: str = "cpu"
    max_atoms: int = 100
    batch_edges: int | None = None

    def __post_init__(self):
        get_potential(self.potential)
        check_device(self.device)
        positive = dict(supercell=self.supercell, fine_length_A=self.fine_length_A, mesh=self.mesh,
                        displacement_A=self.displacement_A, sigma_meV=self.sigma_meV, step_meV=self.step_meV,
                        relax_fmax=self.relax_fmax, relax_steps=self.relax_steps, max_atoms=self.max_atoms)
        for name, value in positive.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"phonons.{name}", f"must be a positive number, got {value!r}")
        for name in ("supercell", "mesh", "relax_steps", "max_atoms"):
            if int(getattr(self, name)) != getattr(self, name):
                raise InputError(f"phonons.{name}", f"must be an integer, got {getattr(self, name)!r}")
        edges = self.batch_edges
        if edges is not None and (isinstance(edges, bool) or int(edges) != edges or edges < 0):
            raise InputError("phonons.batch_edges", f"must be an integer >= 0 (0: one cell at a time), got "
                                                    f"{self.batch_edges!r}")
        if self.step_meV > self.sigma_meV / 2:
            raise InputError("phonons.step_meV", f"{self.step_meV} is too coarse for sigma_meV={self.sigma_meV} "
                                                 "(need step <= sigma / 2)")

    @classmethod
    def from_mapping(cls, mapping=None, **overrides) -> "PhononSettings":
        """Settings from a dict / DictConfig (e.g. the config's ``phonons:`` block); unknown keys
        raise ``InputError`` naming them. ``cache_dir`` is accepted and ignored (not a setting)."""
        values = {k: v for k, v in dict(mapping or {}).items() if k != "cache_dir" and v is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError("phonons", f"unknown setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_provenance(cls, provenance: dict | None, **overrides) -> "PhononSettings":
        """The settings that reproduce a recorded ML-potential recipe (a provenance dict, see
        :mod:`betenet.phonons.provenance`); fields it lacks keep their defaults, ``overrides`` (e.g.
        ``device``) win."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in dict(provenance or {}).items() if k in known}
        return cls.from_mapping(values, **overrides)

    def supercell_diag(self, kind: str, lattice) -> tuple[int, int, int]:
        """Repetitions along each lattice vector for ``kind`` (rows of ``lattice`` in Å)."""
        kind_columns(kind)
        n = int(self.supercell)
        if kind == "coarse":
            return (n, n, n)
        lengths = np.linalg.norm(np.asarray(lattice, dtype=float), axis=1)
        return tuple(int(max(n, math.ceil(self.fine_length_A / length - 1e-9))) for length in lengths)

    def key(self) -> dict:
        """Everything a result depends on (the device and the atom limit do not change it), plus the
        potential's version."""
        out = asdict(self)
        for name in NOT_RECIPE:
            out.pop(name)
        if not self.relax:
            for name in ("relax_fmax", "relax_steps"):
                out.pop(name)
        out["potential_version"] = get_potential(self.potential).version()
        return out
