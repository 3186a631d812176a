"""One structure → its site-projected PhDOS from a machine-learned potential (:func:`site_phdos`).

Checks that the potential covers every element, optionally relaxes the positions (cell fixed,
symmetry kept), builds the force constants of the kind's supercell (:mod:`.harmonic`), runs the
Γ-centred mesh in chunks into the broadened DOS (:mod:`.dos`) and returns a :class:`SitePhDOS`:
the common frequency grid, one DOS row per site (each integrating to 3), the lowest frequency over
the mesh (Γ included; imaginary modes negative, for the ``unstable`` filter), the Γ frequencies and
phonopy's own ``phonopy_params.yaml`` of the calculation (force constants included), which ``betenet
phonons`` writes beside the dataset. Every failure raises :class:`~betenet.errors.InputError` naming the
structure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from betenet.errors import InputError
from betenet.phonons.dos import SiteDOSAccumulator
from betenet.phonons.harmonic import force_constants, mesh_modes, modes_at, phonopy_params_text
from betenet.phonons.potentials import get_potential
from betenet.phonons.settings import PhononSettings


@dataclass
class SitePhDOS:
    """A computed site-projected PhDOS. ``freq_meV`` [nf]; ``site_dos`` [n_sites, nf] (states/meV);
    ``min_freq_meV`` and ``max_freq_meV`` over the mesh; ``gamma_meV`` [3n] (ascending); ``supercell`` repetitions;
    ``info``: potential version, displacements, relaxation, seconds; ``relaxed``: the relaxed
    structure (same site order) when the settings relax, else None; ``phonopy_params``: the text of
    phonopy's ``phonopy_params.yaml`` (:func:`~betenet.phonons.harmonic.phonopy_params_text`), None for a
    result cached before it was kept."""

    freq_meV: np.ndarray
    site_dos: np.ndarray
    min_freq_meV: float
    max_freq_meV: float
    gamma_meV: np.ndarray
    supercell: tuple[int, int, int]
    info: dict = field(default_factory=dict)
    relaxed: object = None
    phonopy_params: str | None = None

    @property
    def total_dos(self) -> np.ndarray:
        return self.site_dos.sum(axis=0)


def check_elements(structure, calculator, potential: str, name: str) -> None:
    """Raise ``InputError`` when ``potential`` does not cover an element of ``structure``."""
    covered = get_potential(potential).elements(calculator)
    if covered is None:
        return
    missing = sorted({site.specie.symbol for site in structure} - set(covered))
    if missing:
        raise InputError(name, f"potential {potential!r} does not cover element(s) {', '.join(missing)}")


def relax_positions(atoms, calculator, fmax: float, steps: int) -> dict:
    """Relax ``atoms`` in place (positions only, symmetry kept) with BFGS; returns what happened."""
    from ase.constraints import FixSymmetry
    from ase.optimize import BFGS

    atoms.calc = calculator
    atoms.set_constraint(FixSymmetry(atoms))
    opt = BFGS(atoms, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    atoms.set_constraint()
    f = float(np.abs(atoms.get_forces()).max())
    atoms.calc = None  # the calculator goes on to other cells; keep none of its results here
    return {"relax_converged": converged, "relax_steps": int(opt.nsteps), "relax_max_force_eV_A": f}


def site_phdos(structure, kind: str, settings: PhononSettings, calculator, name: str = "structure") -> SitePhDOS:
    """The ``kind`` (coarse / fine) site PhDOS of a pymatgen ``structure`` with ``calculator`` (an
    ASE calculator of ``settings.potential``), of the relaxed positions when ``settings.relax``."""
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    t0 = time.perf_counter()
    check_elements(structure, calculator, settings.potential, name)
    atoms = AseAtomsAdaptor.get_atoms(structure)
    info: dict = {"potential": settings.potential, "potential_version": get_potential(settings.potential).version()}
    relaxed = None
    try:
        if settings.relax:
            info.update(relax_positions(atoms, calculator, settings.relax_fmax, settings.relax_steps))
            if not info["relax_converged"]:
                raise InputError(name, f"relaxation did not reach {settings.relax_fmax} eV/Å in "
                                       f"{settings.relax_steps} steps (max force {info['relax_max_force_eV_A']:.3g})")
            relaxed = Structure(np.asarray(atoms.cell), atoms.get_chemical_symbols(),
                                atoms.get_scaled_positions(wrap=False))
        supercell = settings.supercell_diag(kind, structure.lattice.matrix)
        phonon, n_disp = force_constants(atoms, calculator, supercell, settings.displacement_A,
                                         batch_edges=settings.batch_edges)
        acc = SiteDOSAccumulator(len(structure), settings.step_meV)
        for freq, proj, w in mesh_modes(phonon, settings.mesh):
            acc.add(freq, proj, w)
        grid, dos = acc.finish(settings.sigma_meV)
        gamma, _ = modes_at(phonon, np.zeros((1, 3)))
        params = phonopy_params_text(phonon)
    except InputError:
        raise
    except Exception as exc:  # a potential or phonopy failing on this structure: report it, go on
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise InputError(name, f"phonon calculation failed ({reason})") from exc
    info.update(n_displacements=n_disp, seconds=time.perf_counter() - t0)
    result = SitePhDOS(freq_meV=grid, site_dos=dos, min_freq_meV=float(acc.f_min),
                       max_freq_meV=float(acc.f_max), gamma_meV=np.sort(gamma[0]),
                       supercell=tuple(int(n) for n in supercell), info=info, relaxed=relaxed,
                       phonopy_params=params)
    return result
