"""The embedded synthetic demo dataset: a few hundred small crystals with spring-model phonons and a
McMillan–Hopfield-style a2F, generated deterministically so training and tests run with no download.

Generation (``build_demo_dataset``), for each of ``n`` crystals drawn with ``numpy.random
.default_rng(seed)``:

1. a prototype of ``betenet.data.prototypes`` decorated with distinct elements from its role pools,
   sized from tabulated radii; rejected if it repeats a (prototype, formula) already drawn, breaks
   the prototype's radius-ratio window or fails ``check_geometry``;
2. exact spring-model force constants (``betenet.data.phonons.spring_model``) → *fine* phonons;
   the same force constants folded onto a 2×2×2 supercell and Fourier-interpolated → *coarse*
   phonons (the paper's CPD recipe: force constants from a 2×2×2 q-grid, interpolated); rejected
   if any mode other than the three acoustic ones at Γ is below ``FLOPPY_FRACTION`` (6 %) of the
   median frequency (a nearly floppy spring network);
3. both DOS are computed on the same Γ-centred ``DOS_MESH`` (8×8×8, time-reversal halved; the
   paper interpolates to 20×20×20 — 8³ keeps generation cheap), Gaussian
   broadening ``SIGMA_MEV`` = 1 meV on a 0.1 meV grid from 0 to max(w) + 6σ; each site's projected
   DOS integrates to 3 (total 3n);
4. a2F(w) = (1/n) Σ_s [η_s / (2 M_s)] (g_s(w)/3) / w: g_s the fine site DOS without the three
   acoustic modes at Γ (rigid translations do not couple to electrons), M_s the mass, and the
   site's Hopfield parameter η_s = c_s K_s / 3, c_s = ``element_tables.COUPLING`` and K_s the sum of
   the site's spring constants (the same bonds set stiffness and coupling). This is McMillan's
   picture site by site: with <w²>_s = K_s / (3 M_s) the site's Brillouin-zone average,
   η_s / (M_s <w²>_s) = c_s, and lambda_s = 2∫a2F_s/w = c_s <w²>_s <w⁻²>_s ≥ c_s, so low-frequency
   modes couple more (the 1/w) and broad, soft spectra raise lambda. Below w_1, the lowest mode the
   mesh samples (Γ's acoustic zeros aside), the 8³ mesh holds no states, only the tails of the
   1 meV broadening: there a2F is continued by the acoustic-phonon law a2F(w) = a2F(w_1)(w/w_1)²,
   so every spectrum starts from 0 like a real one (:func:`acoustic_continuation`);
5. spectra are stored on the 0.5 meV sub-grid (every 5th point of the 0.1 meV grid; downstream
   ``bin_spectrum`` interpolates back to 0.1 meV) rounded to 6 significant digits, and the labels
   lambda, w_log, w_2 and Allen–Dynes Tc (mu* = 0.10; ``betenet.physics.properties``) are
   computed from exactly the stored a2F.

``load_demo_dataset`` writes the set once in the generic directory format (``structures/<id>.cif``,
``labels.json``, ``metadata.json``) under ``$BETENET_CACHE`` (default ``~/.cache/betenet``) in
``demo-<hash>``, the hash covering the generator version, n and seed, and reuses it afterwards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pymatgen.core import Structure
from pymatgen.io.cif import CifWriter

from betenet.files import cache_root
from betenet.data.element_tables import COUPLING, MASS_AMU, RADIUS_A
from betenet.data.phonons import (
    HBAR_OMEGA_UNIT_MEV,
    fold_to_supercell,
    gamma_mesh,
    phonon_modes,
    site_projected_dos,
    spring_model,
)
from betenet.data.prototypes import Prototype, check_geometry, decorate, prototypes
from betenet.data.sources.base import Entry, build_entry
from betenet.data.sources.directory import load_directory
from betenet.data.sources.registry import DataSource, register_source
from betenet.physics.properties import a2f_properties

log = logging.getLogger(__name__)

#: The set's size and seed where ``data.demo_size`` / ``data.demo_seed`` are not given.
DEMO_SIZE = 300
DEMO_SEED = 0
#: Bump whenever generated values change: it is part of the cache key.
GENERATOR_VERSION = "2"
GENERATOR_NAME = "betenet demo"
#: q-mesh on which both the coarse and the fine phonon DOS are evaluated.
DOS_MESH = (8, 8, 8)
#: Supercell of the coarse force constants (the paper's 2×2×2 q-grid).
COARSE_SUPERCELL = (2, 2, 2)
#: Gaussian broadening of the DOS (meV) and the grid it is computed on (meV).
SIGMA_MEV = 1.0
STEP_MEV = 0.1
#: Grid step of the stored spectra (meV); a multiple of STEP_MEV.
STORE_STEP_MEV = 0.5
#: Structures with a mode other than the three acoustic ones at Γ below FLOPPY_FRACTION × the
#: median frequency (or below FLOPPY_MEV) are rejected as (nearly) floppy spring networks.
FLOPPY_FRACTION = 0.06
FLOPPY_MEV = 0.5
#: Coulomb pseudopotential of the stored Allen–Dynes Tc.
MU_STAR = 0.10
#: Significant digits of stored spectra.
SIGNIFICANT_DIGITS = 6

_STRIDE = int(round(STORE_STEP_MEV / STEP_MEV))
assert abs(_STRIDE * STEP_MEV - STORE_STEP_MEV) < 1e-12


@dataclass
class DemoEntry:
    """One synthetic crystal: structure, its spectra on the stored 0.5 meV grid and its labels."""

    id: str
    prototype: str
    structure: Structure
    formula: str
    a2f_freq_meV: np.ndarray
    a2f: np.ndarray
    phdos_coarse_freq_meV: np.ndarray
    phdos_coarse_site: np.ndarray  # [n_sites, n_freq], states/meV, each site integrates to 3
    phdos_fine_freq_meV: np.ndarray
    phdos_fine_site: np.ndarray
    min_phonon_freq_meV: float
    labels: dict[str, float] = field(default_factory=dict)  # lambda, omega_log_K, omega_2_K, tc_K

    def record(self) -> dict:
        """This entry as one record of ``labels.json`` (plain lists and floats)."""
        return {
            "id": self.id,
            "formula": self.formula,
            "a2f_freq_meV": self.a2f_freq_meV.tolist(),
            "a2f": self.a2f.tolist(),
            "phdos_coarse_freq_meV": self.phdos_coarse_freq_meV.tolist(),
            "phdos_coarse_site": self.phdos_coarse_site.tolist(),
            "phdos_fine_freq_meV": self.phdos_fine_freq_meV.tolist(),
            "phdos_fine_site": self.phdos_fine_site.tolist(),
            "min_phonon_freq_meV": self.min_phonon_freq_meV,
            **self.labels,
        }

    def to_entry(self) -> Entry:
        """The checked :class:`~betenet.data.sources.base.Entry` every source yields."""
        rec = self.record()
        return build_entry(self.id, self.structure, self.formula, rec, extra={"prototype": self.prototype})


def round_significant(values, digits: int = SIGNIFICANT_DIGITS) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits (as the shortest decimal repr)."""
    arr = np.asarray(values, dtype=float)
    fmt = f"{{:.{digits}g}}"
    return np.array([float(fmt.format(v)) for v in arr.reshape(-1)]).reshape(arr.shape)


def synthetic_a2f(omega_meV, site_dos, species, bond_stiffness) -> np.ndarray:
    """a2F(w) = (1/n) Σ_s [η_s/(2 M_s)] (g_s(w)/3) / w, η_s = c_s K_s/3 (module doc, step 4), 0 at w ≤ 0.

    ``site_dos`` [n, nf]: the site-projected DOS the electrons couple to (states/meV) on
    ``omega_meV`` — in the demo the fine DOS without the acoustic modes at Γ (∫ ≈ 3 per site);
    ``species``: element of each site; ``bond_stiffness`` [n]: K_s, the sum of each site's spring
    constants (eV/Å², ``ForceConstants.onsite_trace``). η_s/M_s is turned into meV² with
    ``HBAR_OMEGA_UNIT_MEV``².
    """
    w = np.asarray(omega_meV, dtype=float)
    eta = np.array([COUPLING[s] for s in species]) * np.asarray(bond_stiffness, dtype=float) / 3.0
    strength = eta / (2.0 * np.array([MASS_AMU[s] for s in species])) * HBAR_OMEGA_UNIT_MEV**2
    inv_w = np.where(w > 0, 1.0 / np.where(w > 0, w, 1.0), 0.0)
    return (strength[:, None] * np.asarray(site_dos) / 3.0).mean(axis=0) * inv_w


def acoustic_continuation(omega_meV, a2f, w1_meV: float) -> np.ndarray:
    """``a2f`` with its values below ``w1_meV`` replaced by a2F(w1) (w/w1)², the acoustic-phonon law
    (a2F(w1) interpolated on the grid; 0 at w ≤ 0)."""
    w = np.asarray(omega_meV, dtype=float)
    a = np.asarray(a2f, dtype=float).copy()
    low = w < w1_meV
    a[low] = np.interp(w1_meV, w, a) * (np.clip(w[low], 0.0, None) / w1_meV) ** 2
    return a


def _phonon_spectra(structure: Structure) -> dict | None:
    """Coarse and fine site DOS, a2F (0.1 meV grid) and the lowest frequency; None if floppy."""
    lattice = structure.lattice.matrix
    frac = structure.frac_coords % 1.0
    species = [site.specie.symbol for site in structure]
    fine_fc = spring_model(lattice, frac, species)
    coarse_fc = fold_to_supercell(fine_fc, lattice, frac, COARSE_SUPERCELL)
    q, wq = gamma_mesh(DOS_MESH)
    assert not q[0].any()  # Γ first
    f_fine, p_fine = phonon_modes(fine_fc, q)
    f_coarse, p_coarse = phonon_modes(coarse_fc, q)
    non_acoustic = np.concatenate([f_fine[0, 3:], f_fine[1:].reshape(-1)])
    if non_acoustic.min() < max(FLOPPY_MEV, FLOPPY_FRACTION * float(np.median(f_fine))):
        return None
    top = max(f_fine.max(), f_coarse.max())
    f_end = math.ceil((top + 6.0 * SIGMA_MEV) / STORE_STEP_MEV + 1.0) * STORE_STEP_MEV
    kw = dict(step_meV=STEP_MEV, sigma_meV=SIGMA_MEV)
    grid, dos_fine = site_projected_dos(np.clip(f_fine, 0, None), p_fine, wq, f_end, **kw)
    _, dos_coarse = site_projected_dos(np.clip(f_coarse, 0, None), p_coarse, wq, f_end, **kw)
    # The three acoustic modes at Γ are rigid translations: they do not couple to electrons.
    coupled = p_fine.copy()
    coupled[0, :3] = 0.0
    _, dos_coupled = site_projected_dos(np.clip(f_fine, 0, None), coupled, wq, f_end, **kw)
    a2f = synthetic_a2f(grid, dos_coupled, species, fine_fc.onsite_trace())
    return dict(
        grid=grid,
        dos_fine=dos_fine,
        dos_coarse=dos_coarse,
        a2f=acoustic_continuation(grid, a2f, float(non_acoustic.min())),
        min_freq=float(f_fine.min()),
    )


def _candidates(rng: np.random.Generator):
    """Endless (prototype, elements) draws: a uniform prototype, then one distinct element per role."""
    while True:
        protos = prototypes()
        proto = protos[int(rng.integers(len(protos)))]
        elements: list[str] = []
        for pool in proto.pools:
            choices = [e for e in pool if e not in elements]
            elements.append(choices[int(rng.integers(len(choices)))])
        yield proto, tuple(elements)


def _admissible(proto: Prototype, elements: tuple[str, ...], seen: set) -> Structure | None:
    """The decorated structure, or None when the draw breaks the prototype's radius-ratio window,
    repeats a (prototype, formula) already in ``seen`` (which it joins) or fails ``check_geometry``."""
    window = proto.ratio_window
    if window is not None and not window[0] <= RADIUS_A[elements[0]] / RADIUS_A[elements[1]] <= window[1]:
        return None
    structure = decorate(proto, elements)
    key = (proto.name, structure.composition.reduced_formula)
    if key in seen:
        return None
    seen.add(key)
    return structure if check_geometry(structure) is None else None


def _make_entry(index: int, proto: Prototype, structure: Structure, spectra: dict) -> DemoEntry:
    """Entry ``index``: spectra cut to the stored grid and rounded, labels from the stored a2F."""
    grid = spectra["grid"][::_STRIDE]
    a2f = round_significant(spectra["a2f"][::_STRIDE])
    labels = a2f_properties(grid, a2f, MU_STAR)
    return DemoEntry(
        id=f"demo-{index:04d}",
        prototype=proto.name,
        structure=structure,
        formula=structure.composition.reduced_formula,
        a2f_freq_meV=grid,
        a2f=a2f,
        phdos_coarse_freq_meV=grid,
        phdos_coarse_site=round_significant(spectra["dos_coarse"][:, ::_STRIDE]),
        phdos_fine_freq_meV=grid,
        phdos_fine_site=round_significant(spectra["dos_fine"][:, ::_STRIDE]),
        min_phonon_freq_meV=round(spectra["min_freq"], 6) + 0.0,  # + 0.0: no "-0.0"
        labels=labels,
    )


def build_demo_dataset(n: int = DEMO_SIZE, seed: int = DEMO_SEED) -> list[DemoEntry]:
    """Generate ``n`` synthetic crystals deterministically from ``seed`` (module doc).

    Draws are sequential, so the first k entries of a build do not depend on ``n``.
    """
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    seen: set[tuple[str, str]] = set()
    entries: list[DemoEntry] = []
    rejected = 0
    for proto, elements in _candidates(rng):
        if len(entries) == n:
            break
        if rejected > 50 * n + 1000:
            raise RuntimeError(f"demo generator: {len(entries)} of {n} structures after {rejected} rejections")
        structure = _admissible(proto, elements, seen)
        spectra = None if structure is None else _phonon_spectra(structure)
        if spectra is None:
            rejected += 1
            continue
        entries.append(_make_entry(len(entries), proto, structure, spectra))
    log.info("built %d demo structures in %.1f s (%d draws rejected)", n, time.perf_counter() - start, rejected)
    return entries


def dataset_key(n: int, seed: int) -> str:
    """Cache key: hash of the generator name, version, n and seed."""
    spec = {"generator": GENERATOR_NAME, "version": GENERATOR_VERSION, "n": n, "seed": seed}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _metadata(entries: list[DemoEntry], n: int, seed: int) -> dict:
    return {
        "synthetic": True,
        "generator": GENERATOR_NAME,
        "version": GENERATOR_VERSION,
        "description": (
            "Synthetic demo data, not DFT: small crystals from prototypes decorated with elements, "
            "phonons of a positive central-spring model, coarse PhDOS from 2x2x2-folded force "
            "constants, and a2F = site-averaged McMillan-Hopfield coupling times the fine site DOS "
            "over w, continued as w^2 below the lowest mode (see betenet/data/sources/demo.py)."
        ),
        "n": n,
        "seed": seed,
        "cache_key": dataset_key(n, seed),
        "settings": {
            "dos_q_mesh": list(DOS_MESH),
            "coarse_supercell": list(COARSE_SUPERCELL),
            "sigma_meV": SIGMA_MEV,
            "computed_step_meV": STEP_MEV,
            "stored_step_meV": STORE_STEP_MEV,
            "a2f_low_frequency": "a2F(w1) (w/w1)^2 below the lowest mode w1 of the mesh",
            "mu_star": MU_STAR,
            "significant_digits": SIGNIFICANT_DIGITS,
            "site_dos_integral": 3.0,
        },
        "prototypes": {e.id: e.prototype for e in entries},
    }


def write_demo_dataset(entries: list[DemoEntry], root: str | Path, n: int, seed: int) -> Path:
    """Write ``entries`` to ``root`` in the generic directory format; the directory appears whole
    (written beside it, then renamed) so an interrupted run never leaves a partial cache."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "structures").mkdir(parents=True)
    for e in entries:
        CifWriter(e.structure).write_file(tmp / "structures" / f"{e.id}.cif")
    (tmp / "labels.json").write_text(json.dumps([e.record() for e in entries]))
    (tmp / "metadata.json").write_text(json.dumps(_metadata(entries, n, seed), indent=1))
    try:
        os.rename(tmp, root)
    except OSError:
        if not _is_complete(root, dataset_key(n, seed)):
            raise
        shutil.rmtree(tmp)  # another process wrote the same set first
    return root


def _is_complete(root: Path, key: str) -> bool:
    meta = root / "metadata.json"
    if not (meta.is_file() and (root / "labels.json").is_file() and (root / "structures").is_dir()):
        return False
    try:
        return json.loads(meta.read_text()).get("cache_key") == key
    except (OSError, ValueError):
        return False


def load_demo_dataset(cache_dir: str | Path | None = None, n: int = DEMO_SIZE, seed: int = DEMO_SEED) -> Path:
    """The root directory of the demo set (``<cache_dir>/demo-<hash>``), built and written on first
    use and reused afterwards. ``cache_dir`` defaults to :func:`betenet.files.cache_root`."""
    base = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    key = dataset_key(n, seed)
    root = base / f"demo-{key}"
    if _is_complete(root, key):
        return root
    if root.exists():
        raise FileExistsError(f"{root}: exists but is not a complete demo set for n={n}, seed={seed}; remove it")
    return write_demo_dataset(build_demo_dataset(n, seed), root, n, seed)


# --------------------------------------------------------------------------------------------
# the source: generated into the cache, read as a directory-format folder
# --------------------------------------------------------------------------------------------
def _size_and_seed(settings) -> tuple[int, int]:
    size, seed = settings.get("demo_size"), settings.get("demo_seed")
    return int(DEMO_SIZE if size is None else size), int(DEMO_SEED if seed is None else seed)


def demo_root(settings) -> Path:
    """The demo set of ``data.demo_size`` / ``data.demo_seed`` under ``data.cache_dir``, generated on first use."""
    n, seed = _size_and_seed(settings)
    return load_demo_dataset(settings.get("cache_dir"), n=n, seed=seed)


def demo_fingerprint(settings) -> str:
    """``demo:<key>``: the generator's key (its content follows from version, size and seed)."""
    return "demo:" + dataset_key(*_size_and_seed(settings))


register_source(DataSource(
    name="demo", read=load_directory, root=demo_root, fingerprint=demo_fingerprint,
    settings=("demo_size", "demo_seed"), needs_root=False,
    description="synthetic demo set (spring-model phonons), generated and cached on first use"))
