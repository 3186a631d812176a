"""DFT settings profiles (``conf/dft/<name>.yaml``) loaded with OmegaConf against a typed schema.

A profile fixes every choice of the Quantum ESPRESSO chain: cut-offs, smearing, functional and
pseudopotentials, the k/q grids (point densities or explicit subdivisions), the ph.x el-ph options,
the matdyn DOS grids, the eDOS run and the collect filters. Two profiles ship: ``paper`` (the
BETE-NET Methods) and ``qe_example`` (QE's PHonon example03, fcc Al). Unknown keys are rejected
(the schema is structured), so a typo fails when the profile is loaded, not on the cluster.

Namelist blocks (``pw.control``, ``ph.inputph``, ...) are free-form mappings written verbatim to
the QE input decks; the keys the pipeline sets itself (prefix, outdir, k/q grids, file names) are
listed in :data:`RESERVED` and refused there (``calculation`` is refused in ``pw.*``: each step
sets it; only ``relax.control`` may choose 'relax' or 'vc-relax').
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from betenet import validation
from betenet.conf import CONF_DIR
from betenet.errors import InputError

DFT_CONF_DIR = CONF_DIR / "dft"

#: The lattice constant of QE's PHonon example03 (fcc Al, ibrav=2): celldm(1) in bohr.
QE_EXAMPLE_CELLDM_BOHR = 7.5


def qe_example_al():
    """fcc Al at QE's PHonon example03 lattice (``qe_example`` profile; the structure of the shared
    ``qe-al-reference`` outputs): a pymatgen primitive cell, a = 7.5 bohr."""
    from pymatgen.core import Lattice, Structure

    from betenet.physics.units import BOHR_TO_A

    a = QE_EXAMPLE_CELLDM_BOHR * BOHR_TO_A
    return Structure(Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]), ["Al"], [[0, 0, 0]])

#: Namelist keys the pipeline writes itself; a profile that sets one is refused.
RESERVED = {
    "pw": {"prefix", "outdir", "pseudo_dir", "la2f", "nat", "ntyp", "ibrav"},
    "ph": {"prefix", "outdir", "fildyn", "ldisp", "nq1", "nq2", "nq3"},
    "q2r": {"fildyn", "flfrc", "la2f"},
    "matdyn": {"flfrc", "flfrq", "fldos", "dos", "la2f", "nk1", "nk2", "nk3", "ndos", "deltae"},
    "projwfc": {"prefix", "outdir", "filpdos"},
}


@dataclass
class PseudoSettings:
    """Pseudopotential folder and file names: ``files[symbol]`` wins over ``pattern.format(symbol=...)``."""

    dir: str = "pseudo"
    pattern: str = "{symbol}.upf"
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class PwSettings:
    """Namelists shared by every pw.x run (cut-offs, smearing, functional, convergence)."""

    control: dict[str, Any] = field(default_factory=dict)
    system: dict[str, Any] = field(default_factory=dict)
    electrons: dict[str, Any] = field(default_factory=dict)


@dataclass
class RelaxSettings:
    """Optional first step: a (vc-)relax whose final structure feeds every later deck and the grids."""

    enabled: bool = False
    k_density: float = 40.0
    control: dict[str, Any] = field(default_factory=lambda: {"calculation": "vc-relax"})
    ions: dict[str, Any] = field(default_factory=dict)
    cell: dict[str, Any] = field(default_factory=dict)


@dataclass
class GridSettings:
    """k/q grids: from densities (points per 1/Å, no 2π) via ``commensurate_kq_grids`` unless given.

    ``k_grid``: the la2F scf grid (the dense grid holding every k + q); ``q_grid``: ph.x q-grid;
    ``phonon_k_grid``: a second, coarser scf for ph.x (QE example03); null = ph.x uses the la2F scf.
    """

    k_density: float = 40.0
    q_density: float = 15.0
    k_grid: Optional[list[int]] = None
    q_grid: Optional[list[int]] = None
    phonon_k_grid: Optional[list[int]] = None


@dataclass
class PhSettings:
    """ph.x ``&inputph`` for the el-ph run (``electron_phonon``, ``el_ph_sigma``, ``el_ph_nsigma``, ...)."""

    title: str = "electron-phonon"
    inputph: dict[str, Any] = field(default_factory=dict)


@dataclass
class MatdynSettings:
    """matdyn.x: extra ``&input`` keys, the DOS q-mesh ``nk`` and its energy step.

    Give either ``ndos`` (number of DOS points) or ``delta_meV`` (step, written as ``deltaE`` in cm^-1).
    """

    input: dict[str, Any] = field(default_factory=dict)
    nk: list[int] = field(default_factory=lambda: [20, 20, 20])
    ndos: Optional[int] = None
    delta_meV: Optional[float] = 0.1


@dataclass
class CoarsePhdosSettings:
    """Coarse PhDOS: a phonon-only ph.x run on ``q_grid``, q2r, matdyn DOS on the ``nk`` mesh."""

    enabled: bool = True
    q_grid: list[int] = field(default_factory=lambda: [2, 2, 2])
    nk: list[int] = field(default_factory=lambda: [20, 20, 20])
    inputph: dict[str, Any] = field(default_factory=dict)


@dataclass
class EdosSettings:
    """Electronic DOS: own scf + nscf with tetrahedra (separate outdir), then projwfc.x per site.

    ``pseudo`` null: the main pseudopotentials (the paper used PseudoDojo ONCV here, since SG15 files
    lack atomic projectors). ``k_grid`` null: from ``k_density``.
    """

    enabled: bool = True
    k_density: float = 40.0
    k_grid: Optional[list[int]] = None
    occupations: str = "tetrahedra_opt"
    pseudo: Optional[PseudoSettings] = None
    projwfc: dict[str, Any] = field(default_factory=dict)


@dataclass
class CollectSettings:
    """What ``dft collect`` keeps: the a2F smearing and the filter thresholds."""

    a2f_smearing_Ry: float = 0.02
    unstable_threshold_meV: float = 1.0
    negative_a2f_tol: float = 1e-3
    gap_threshold_eV: float = 0.0
    edos_window_meV: float = 1000.0
    edos_average_meV: float = 50.0


@dataclass
class RunSettings:
    """How steps are launched: MPI prefix, which programs run in parallel, executables, environment."""

    np: int = 1
    mpi: str = "mpirun -np {np}"
    parallel: list[str] = field(default_factory=lambda: ["pw.x", "ph.x", "projwfc.x"])
    executables: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=lambda: {"OMP_NUM_THREADS": "1"})


@dataclass
class DFTSettings:
    """One complete DFT profile (see ``conf/dft/*.yaml``)."""

    name: str = "custom"
    prefix: str = "mat"
    cell: str = "primitive_standard"
    symprec: float = 1e-3
    masses: dict[str, float] = field(default_factory=dict)
    pseudo: PseudoSettings = field(default_factory=PseudoSettings)
    pw: PwSettings = field(default_factory=PwSettings)
    relax: RelaxSettings = field(default_factory=RelaxSettings)
    grids: GridSettings = field(default_factory=GridSettings)
    ph: PhSettings = field(default_factory=PhSettings)
    q2r: dict[str, Any] = field(default_factory=dict)
    matdyn: MatdynSettings = field(default_factory=MatdynSettings)
    coarse_phdos: CoarsePhdosSettings = field(default_factory=CoarsePhdosSettings)
    edos: EdosSettings = field(default_factory=EdosSettings)
    collect: CollectSettings = field(default_factory=CollectSettings)
    run: RunSettings = field(default_factory=RunSettings)


CELL_CHOICES = ("primitive_standard", "input")


def profile_names() -> list[str]:
    """Names of the profiles shipped in ``conf/dft/``."""
    return sorted(p.stem for p in DFT_CONF_DIR.glob("*.yaml"))


def _profile_path(profile: str | os.PathLike) -> Path:
    p = Path(profile)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise InputError(profile, "DFT settings file not found")
        return p
    named = DFT_CONF_DIR / f"{profile}.yaml"
    if not named.is_file():
        raise InputError(profile, f"unknown DFT profile; choose from {profile_names()} or give a .yaml file")
    return named


def load_settings(profile: str | os.PathLike = "paper", overrides: list[str] | None = None) -> DFTSettings:
    """The settings of a profile name (``conf/dft/<name>.yaml``) or a YAML file, with dotlist overrides.

    ``overrides`` are OmegaConf dotlist items, e.g. ``["run.np=4", "grids.q_density=10"]``.
    Raises :class:`InputError` naming the profile for unknown keys, wrong types or bad values.
    """
    path = _profile_path(profile)
    try:
        cfg = OmegaConf.merge(
            OmegaConf.structured(DFTSettings),
            OmegaConf.load(path),
            OmegaConf.from_dotlist(list(overrides or [])),
        )
        settings: DFTSettings = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise InputError(path, f"invalid DFT settings: {' '.join(str(exc).split())}") from None
    validate_settings(settings, str(path))
    return settings


def settings_dict(settings: DFTSettings) -> dict:
    """Plain-dict copy of the settings (for the workflow record)."""
    return OmegaConf.to_container(OmegaConf.structured(settings), resolve=True)


def settings_from_dict(data: dict, name: str) -> DFTSettings:
    """Settings back from :func:`settings_dict` output (as stored in ``workflow.json``)."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DFTSettings), data))
    except OmegaConfBaseException as exc:
        raise InputError(name, f"invalid stored DFT settings: {' '.join(str(exc).split())}") from None


def _check_grid(value, what: str, label: str) -> None:
    if value is None:
        return
    if len(value) != 3 or not all(isinstance(n, int) and n >= 1 for n in value):
        raise InputError(label, f"{what} must be three integers >= 1, got {list(value)}")


def _check_numbers(s: DFTSettings) -> None:
    """Every number of the profile in its range, before anything runs (a negative q density would
    otherwise be found only after the relaxation): ``InputError`` naming the setting as ``--set`` spells it."""
    positive = {"symprec": s.symprec, "relax.k_density": s.relax.k_density, "grids.k_density": s.grids.k_density,
                "grids.q_density": s.grids.q_density, "edos.k_density": s.edos.k_density,
                "collect.a2f_smearing_Ry": s.collect.a2f_smearing_Ry,
                "collect.edos_window_meV": s.collect.edos_window_meV,
                "collect.edos_average_meV": s.collect.edos_average_meV,
                **{f"masses.{element}": mass for element, mass in s.masses.items()}}
    if "el_ph_sigma" in s.ph.inputph:
        positive["ph.inputph.el_ph_sigma"] = s.ph.inputph["el_ph_sigma"]
    for setting, value in positive.items():
        validation.positive_number(value, setting)
    for setting, value in {"collect.unstable_threshold_meV": s.collect.unstable_threshold_meV,
                           "collect.negative_a2f_tol": s.collect.negative_a2f_tol,
                           "collect.gap_threshold_eV": s.collect.gap_threshold_eV}.items():
        validation.non_negative_number(value, setting)
    validation.positive_integer(s.run.np, "run.np")
    if "el_ph_nsigma" in s.ph.inputph:
        validation.positive_integer(s.ph.inputph["el_ph_nsigma"], "ph.inputph.el_ph_nsigma")


def validate_settings(s: DFTSettings, label: str) -> None:
    """Reject settings that cannot make a consistent chain (numbers out of range, reserved keys, grids,
    DOS step, smearing)."""
    _check_numbers(s)
    if s.cell not in CELL_CHOICES:
        raise InputError(label, f"cell must be one of {CELL_CHOICES}, got {s.cell!r}")
    blocks = {
        "pw": [s.pw.control, s.pw.system, s.pw.electrons, s.relax.control, s.relax.ions, s.relax.cell],
        "ph": [s.ph.inputph, s.coarse_phdos.inputph],
        "q2r": [s.q2r],
        "matdyn": [s.matdyn.input],
        "projwfc": [s.edos.projwfc],
    }
    for program, dicts in blocks.items():
        for d in dicts:
            clash = sorted(k for k in d if k.lower() in RESERVED[program])
            if clash:
                raise InputError(label, f"{program} keys {clash} are set by the pipeline; remove them")
    for d in (s.pw.control, s.pw.system, s.pw.electrons):
        if "calculation" in d:
            raise InputError(label, "pw.calculation is set per step by the pipeline; remove it")
    for what, grid in (("grids.k_grid", s.grids.k_grid), ("grids.q_grid", s.grids.q_grid),
                       ("grids.phonon_k_grid", s.grids.phonon_k_grid), ("matdyn.nk", s.matdyn.nk),
                       ("coarse_phdos.q_grid", s.coarse_phdos.q_grid), ("coarse_phdos.nk", s.coarse_phdos.nk),
                       ("edos.k_grid", s.edos.k_grid)):
        _check_grid(grid, what, label)
    if (s.grids.k_grid is None) != (s.grids.q_grid is None):
        raise InputError(label, "give both grids.k_grid and grids.q_grid, or neither (densities are used)")
    if s.grids.k_grid is not None:
        bad = [i for i in range(3) if s.grids.k_grid[i] % s.grids.q_grid[i]]
        if bad:
            raise InputError(label, f"k_grid {s.grids.k_grid} is not commensurate with q_grid {s.grids.q_grid} "
                                    f"along direction(s) {[i + 1 for i in bad]}")
    if (s.matdyn.ndos is None) == (s.matdyn.delta_meV is None):
        raise InputError(label, "give exactly one of matdyn.ndos and matdyn.delta_meV")
    if s.matdyn.ndos is not None and s.matdyn.ndos < 2:
        raise InputError(label, f"matdyn.ndos must be >= 2, got {s.matdyn.ndos}")
    if s.matdyn.delta_meV is not None and not s.matdyn.delta_meV > 0:
        raise InputError(label, f"matdyn.delta_meV must be > 0, got {s.matdyn.delta_meV}")
    if str(s.ph.inputph.get("electron_phonon", "")).lower() != "interpolated":
        raise InputError(label, "ph.inputph.electron_phonon must be 'interpolated' (the a2F.dosN chain)")
    sigma, nsigma = el_ph_smearings(s)
    n = round(s.collect.a2f_smearing_Ry / sigma)
    if not (1 <= n <= nsigma and abs(n * sigma - s.collect.a2f_smearing_Ry) < 1e-9):
        raise InputError(label, f"collect.a2f_smearing_Ry = {s.collect.a2f_smearing_Ry} is not one of the "
                                f"el-ph smearings {sigma:g} x (1..{nsigma}) Ry")


def el_ph_smearings(s: DFTSettings) -> tuple[float, int]:
    """(el_ph_sigma in Ry, el_ph_nsigma) of the el-ph run; QE's defaults are 0.02 Ry and 10."""
    sigma = float(s.ph.inputph.get("el_ph_sigma", 0.02))
    nsigma = int(s.ph.inputph.get("el_ph_nsigma", 10))
    return sigma, nsigma


def a2f_file_index(s: DFTSettings, sigma_Ry: float | None = None) -> int:
    """N of the ``a2F.dosN`` file holding smearing ``sigma_Ry`` (default: ``collect.a2f_smearing_Ry``)."""
    sigma, _ = el_ph_smearings(s)
    return round((s.collect.a2f_smearing_Ry if sigma_Ry is None else sigma_Ry) / sigma)
