"""Parsers of Quantum ESPRESSO outputs used by the pipeline, all returning meV / eV / states per meV.

- ``a2F.dosN`` (matdyn.x la2F): :func:`read_a2f_smearings` reads the N files of a run with
  :func:`betenet.physics.a2f_files.read_qe_a2f` (either layout QE writes).
- matdyn ``lambda`` file: :func:`read_matdyn_lambda` (smearing, lambda, N(E_F), [omega_ln]).
- matdyn DOS (``fldos``): :func:`read_matdyn_dos`: frequency, total and per-atom (site) DOS; old
  files have only the first two columns. cm^-1 → meV; DOS per cm^-1 → per meV (integral kept: 3N).
- ph.x output: :func:`read_ph_output`: the frequencies printed at each q ("Diagonalizing the
  dynamical matrix"), imaginary modes as negative numbers.
- pw.x output: :func:`read_pw_output`: Fermi energy, last band listing, total energy, and
  :func:`band_gap` (gap at E_F from the bands; 0 for a metal).
- projwfc.x ``<filpdos>.pdos_atm#i(El)_wfc#j(l)`` files: :func:`read_projwfc_pdos` sums the local DOS
  of each atom's wavefunctions: site-projected eDOS (states/eV/cell).

Every parser raises :class:`InputError` naming the file. NaN values that QE printed are kept
(not an error) in the DOS readers, so the NaN filter can report them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from betenet.errors import InputError
from betenet.physics.a2f_files import A2FSpectrum, read_qe_a2f
from betenet.physics.units import CMM1_TO_MEV

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?|[-+]?nan|[-+]?inf(?:inity)?"
_NUM_RE = re.compile(_NUMBER, re.IGNORECASE)
_FIXED = re.compile(r"[-+]?\d+\.\d+")


def _text(path) -> str:
    p = Path(path)
    if not p.is_file():
        raise InputError(path, "file not found" if not p.exists() else "not a regular file")
    try:
        return p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read file ({type(exc).__name__}: {exc})") from exc


def _floats(text: str, path, lineno: int) -> list[float]:
    """Numbers of a whitespace-separated line; Fortran 'D' exponents and NaN accepted."""
    out = []
    for tok in text.split():
        try:
            out.append(float(tok.replace("D", "E").replace("d", "e")))
        except ValueError:
            raise InputError(path, f"line {lineno}: cannot parse number {tok!r}") from None
    return out


# --------------------------------------------------------------------------------------------
# a2F.dosN and lambda
# --------------------------------------------------------------------------------------------


def read_a2f_smearings(workdir, sigma_Ry: float, nsigma: int) -> dict[float, A2FSpectrum]:
    """{smearing in Ry: spectrum} of ``a2F.dos1..nsigma`` in ``workdir`` (file N has N * sigma_Ry)."""
    out = {}
    for n in range(1, nsigma + 1):
        out[round(n * sigma_Ry, 10)] = read_qe_a2f(Path(workdir) / f"a2F.dos{n}")
    return out


@dataclass
class LambdaLine:
    """One line of matdyn's ``lambda`` file."""

    sigma_Ry: float
    lam: float
    dos_ef: float
    omega_ln_K: float | None = None


_LAMBDA_FILE_LINE = re.compile(
    r"Broadening\s+(\S+)\s+lambda\s+(\S+)\s+dos\(Ef\)\s+(\S+)(?:\s+omega_ln\s*\[K\]\s+(\S+))?", re.IGNORECASE
)


def read_matdyn_lambda(path) -> list[LambdaLine]:
    """matdyn's ``lambda`` file: one :class:`LambdaLine` per el-ph smearing, in file order."""
    out = []
    for lineno, line in enumerate(_text(path).splitlines(), start=1):
        m = _LAMBDA_FILE_LINE.search(line)
        if not m:
            continue
        vals = [float(g.replace("D", "E")) if g is not None else None for g in m.groups()]
        out.append(LambdaLine(vals[0], vals[1], vals[2], vals[3]))
    if not out:
        raise InputError(path, "no 'Broadening ... lambda ... dos(Ef)' lines (not a matdyn lambda file)")
    return out


# --------------------------------------------------------------------------------------------
# matdyn phonon DOS
# --------------------------------------------------------------------------------------------
@dataclass
class PhononDOS:
    """Phonon DOS on a frequency grid (meV): total and per site [n_sites, n_freq], states/meV/cell."""

    freq_meV: np.ndarray
    total: np.ndarray
    site: np.ndarray | None
    path: str  # the file read


def read_matdyn_dos(path, n_sites: int | None = None) -> PhononDOS:
    """A matdyn ``fldos`` file: ``freq[cm^-1] DOS [PDOS_atom1 ...]``, converted to meV and per meV.

    ``n_sites``: when given, projected columns must be one per site (files with only the total DOS
    are accepted and give ``site=None``).
    """
    rows = []
    for lineno, line in enumerate(_text(path).splitlines(), start=1):
        s = line.strip()
        if s and not s.startswith("#"):
            rows.append((lineno, _floats(s, path, lineno)))
    if len(rows) < 2:
        raise InputError(path, "fewer than two DOS lines")
    widths = {len(r) for _, r in rows}
    if len(widths) != 1:
        lineno, r = next((ln, r) for ln, r in rows if len(r) != len(rows[0][1]))
        raise InputError(path, f"line {lineno}: {len(r)} columns, the first line has {len(rows[0][1])}")
    data = np.array([r for _, r in rows], dtype=float)
    if data.shape[1] < 2:
        raise InputError(path, "need at least two columns (frequency, DOS)")
    n_proj = data.shape[1] - 2
    if n_sites is not None and n_proj not in (0, n_sites):
        raise InputError(path, f"{n_proj} projected DOS columns for {n_sites} sites")
    freq = data[:, 0] * CMM1_TO_MEV
    if not np.all(np.diff(freq) > 0):
        raise InputError(path, "frequencies are not strictly increasing")
    total = data[:, 1] / CMM1_TO_MEV
    site = (data[:, 2:].T / CMM1_TO_MEV).copy() if n_proj else None
    return PhononDOS(freq, total, site, str(path))


# --------------------------------------------------------------------------------------------
# ph.x
# --------------------------------------------------------------------------------------------
@dataclass
class PhOutput:
    """Frequencies printed by ph.x at each q (meV; imaginary modes negative)."""

    q_points: np.ndarray  # [n_q, 3], Cartesian, units 2π/alat
    frequencies_meV: list[np.ndarray]
    job_done: bool
    path: str  # the file read

    @property
    def min_frequency_meV(self) -> float:
        """Lowest frequency over all q (the most imaginary mode when negative)."""
        return float(min(f.min() for f in self.frequencies_meV))

    def imaginary_modes(self, threshold_meV: float = 0.0) -> list[tuple[int, int, float]]:
        """(q index, mode index, frequency meV) of modes below ``-threshold_meV`` (0-based indices)."""
        return [(iq, im, float(w)) for iq, f in enumerate(self.frequencies_meV)
                for im, w in enumerate(f) if w < -threshold_meV]


_FREQ_LINE = re.compile(r"^\s*freq\s*\(\s*(\d+)\s*\)\s*=\s*(\S+)\s*\[THz\]\s*=\s*(\S+)\s*\[cm-1\]")
_Q_LINE = re.compile(r"^\s*q\s*=\s*\(\s*(.*?)\s*\)")


def read_ph_output(path) -> PhOutput:
    """A ph.x output: for every "Diagonalizing the dynamical matrix" block, q and its frequencies."""
    lines = _text(path).splitlines()
    qs, freqs = [], []
    i = 0
    while i < len(lines):
        if "Diagonalizing the dynamical matrix" not in lines[i]:
            i += 1
            continue
        q, modes = None, []
        j = i + 1
        while j < len(lines) and "Diagonalizing the dynamical matrix" not in lines[j]:
            if q is None:
                m = _Q_LINE.match(lines[j])
                if m:
                    q = [float(x) for x in _FIXED.findall(m.group(1))]
            m = _FREQ_LINE.match(lines[j])
            if m:
                modes.append(float(m.group(3)) * CMM1_TO_MEV)
            elif modes and lines[j].strip().startswith("*****"):
                break
            j += 1
        if q is None or len(q) != 3 or not modes:
            raise InputError(path, f"line {i + 1}: dynamical-matrix block without q or frequencies")
        qs.append(q)
        freqs.append(np.array(modes))
        i = j
    if not freqs:
        raise InputError(path, "no 'Diagonalizing the dynamical matrix' block (ph.x did not finish a q-point)")
    return PhOutput(np.array(qs), freqs, "JOB DONE" in "\n".join(lines[-20:]), str(path))


# --------------------------------------------------------------------------------------------
# pw.x
# --------------------------------------------------------------------------------------------
@dataclass
class PwOutput:
    """What the pipeline reads from a pw.x output (energies in eV unless named otherwise)."""

    fermi_energy_eV: float | None
    highest_occupied_eV: float | None
    lowest_unoccupied_eV: float | None
    total_energy_Ry: float | None
    k_points: np.ndarray | None  # [n_k, 3], 2π/alat
    eigenvalues_eV: list[np.ndarray] = field(default_factory=list)  # one [n_k, n_bands] per spin
    converged: bool = False
    job_done: bool = False
    path: str = ""  # the file read

    @property
    def band_gap_eV(self) -> float | None:
        """Gap at E_F from the printed bands (0 for a metal); None without bands or E_F."""
        ef = self.fermi_energy_eV
        if ef is None and self.highest_occupied_eV is not None:
            ef = self.highest_occupied_eV
        if ef is None or not self.eigenvalues_eV:
            return None
        return band_gap(self.eigenvalues_eV, ef)


#: Band extrema within this distance of E_F (eV; the listing has 4 decimals) count as at E_F.
BAND_EDGE_TOL_EV = 1e-4


def band_gap(eigenvalues_eV, fermi_eV: float, tol_eV: float = BAND_EDGE_TOL_EV) -> float | None:
    """Gap at the Fermi level from bands [n_k, n_bands] (a list: one array per spin channel).

    A band whose energies run from below E_F to above it (each by more than ``tol_eV``) crosses
    E_F: the system is a metal, gap 0. Otherwise the gap is the lowest band bottom above E_F minus
    the highest band top at or below it. None when no band lies above E_F (too few bands printed).
    """
    tops, bottoms = [], []
    for eig in eigenvalues_eV:
        eig = np.asarray(eig, dtype=float)
        lo, hi = eig.min(axis=0), eig.max(axis=0)
        if np.any((lo < fermi_eV - tol_eV) & (hi > fermi_eV + tol_eV)):
            return 0.0
        tops.extend(hi[hi <= fermi_eV + tol_eV])
        bottoms.extend(lo[hi > fermi_eV + tol_eV])
    if not bottoms:
        return None
    if not tops:
        return 0.0 if min(bottoms) <= fermi_eV + tol_eV else float(min(bottoms) - fermi_eV)
    return max(0.0, float(min(bottoms) - max(tops)))


_FERMI = re.compile(r"the Fermi energy is\s+(\S+)\s+ev", re.IGNORECASE)
_FERMI_SPIN = re.compile(r"the spin up/dw Fermi energies are\s+(\S+)\s+(\S+)\s+ev", re.IGNORECASE)
_HOMO_LUMO = re.compile(r"highest occupied, lowest unoccupied level \(ev\):\s+(\S+)\s+(\S+)")
_HOMO = re.compile(r"highest occupied level \(ev\):\s+(\S+)")
_TOTAL = re.compile(r"^!\s+total energy\s+=\s+(\S+)\s+Ry")
_BAND_END = re.compile(r"End of (self-consistent|band structure) calculation")
_ONLY_NUMBERS = re.compile(r"^\s*(?:[-+]?\d+\.\d+\s*)+$")


def _band_listing(lines: list[str], start: int, path) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """k-points and eigenvalues (one array per spin) of the listing after line ``start``."""
    spins: list[list[list[float]]] = [[]]
    kpts: list[list[float]] = []
    i = start + 1
    while i < len(lines):
        s = lines[i]
        if "SPIN DOWN" in s and spins[-1]:
            spins.append([])
        elif "bands (ev)" in s and s.strip().startswith("k ="):
            coords = [float(x) for x in _FIXED.findall(s.split("(")[0])]
            if len(spins) == 1:
                kpts.append(coords)
            values: list[float] = []
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            while i < len(lines) and _ONLY_NUMBERS.match(lines[i]):
                values.extend(float(x) for x in _FIXED.findall(lines[i]))
                i += 1
            if not values:
                raise InputError(path, f"line {i}: k-point without band energies")
            spins[-1].append(values)
            continue
        elif _FERMI.search(s) or _HOMO.search(s) or _HOMO_LUMO.search(s) or _TOTAL.match(s) or "Writing output" in s:
            break
        i += 1
    out = []
    for bands in spins:
        if bands:
            if len({len(b) for b in bands}) != 1:
                raise InputError(path, "k-points list different numbers of bands")
            out.append(np.array(bands))
    return (np.array(kpts) if kpts else None), out


def read_pw_output(path) -> PwOutput:
    """A pw.x output: last Fermi energy / HOMO-LUMO, last total energy, last band listing, status."""
    text = _text(path)
    lines = text.splitlines()
    fermi = homo = lumo = etot = None
    last_listing = None
    for i, line in enumerate(lines):
        if m := _FERMI.search(line):
            fermi = float(m.group(1))
        elif m := _FERMI_SPIN.search(line):
            fermi = max(float(m.group(1)), float(m.group(2)))
        elif m := _HOMO_LUMO.search(line):
            homo, lumo = float(m.group(1)), float(m.group(2))
        elif m := _HOMO.search(line):
            homo = float(m.group(1))
        elif m := _TOTAL.match(line):
            etot = float(m.group(1))
        elif _BAND_END.search(line):
            last_listing = i
    kpts, eig = (None, []) if last_listing is None else _band_listing(lines, last_listing, path)
    converged = ("convergence has been achieved" in text or "End of band structure calculation" in text) \
        and "convergence NOT achieved" not in text
    for value, what in ((fermi, "Fermi energy"), (etot, "total energy")):
        if value is not None and not math.isfinite(value):
            raise InputError(path, f"{what} is not finite")
    return PwOutput(fermi, homo, lumo, etot, kpts, eig, converged, "JOB DONE" in text, str(path))


# --------------------------------------------------------------------------------------------
# projwfc.x
# --------------------------------------------------------------------------------------------
@dataclass
class ElectronDOS:
    """Site-projected electronic DOS: energies (eV, absolute), per site [n_sites, n_E] in states/eV."""

    energy_eV: np.ndarray
    site: np.ndarray
    path: str  # the file read


_PDOS_NAME = re.compile(r"\.pdos_atm#(\d+)\(([A-Za-z]+)\)_wfc#(\d+)\(([a-z0-9_.]+)\)$")


def _read_pdos_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(energies, local DOS) of one projwfc file; the ldos columns (1 or up+down) are summed."""
    text = _text(path).splitlines()
    if not text or not text[0].lstrip().startswith("#"):
        raise InputError(path, "no '#' header line (not a projwfc pdos file)")
    header = text[0].lower().replace("(e)", "")
    if "ldosup" in header and "ldosdw" in header:
        ncols = 2
    elif "ldos" in header:
        ncols = 1
    else:
        raise InputError(path, f"header {text[0].strip()!r} has no ldos column")
    rows = [_floats(ln, path, k) for k, ln in enumerate(text[1:], start=2) if ln.strip()]
    if not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) < 1 + ncols:
        raise InputError(path, "ragged or empty pdos table")
    data = np.array(rows)
    return data[:, 0], data[:, 1:1 + ncols].sum(axis=1)


def read_projwfc_pdos(workdir, filpdos: str, n_sites: int) -> ElectronDOS:
    """Sum the ``<filpdos>.pdos_atm#i(El)_wfc#j(l)`` files of each atom i = 1..n_sites."""
    workdir = Path(workdir)
    files: dict[int, list[Path]] = {}
    for p in sorted(workdir.glob(f"{filpdos}.pdos_atm#*")):
        m = _PDOS_NAME.search(p.name)
        if m:
            files.setdefault(int(m.group(1)), []).append(p)
    missing = [i for i in range(1, n_sites + 1) if i not in files]
    if missing:
        raise InputError(workdir, f"no {filpdos}.pdos_atm#i files for atoms {missing} (projwfc output)")
    extra = sorted(set(files) - set(range(1, n_sites + 1)))
    if extra:
        raise InputError(workdir, f"projwfc files for atoms {extra}, but the structure has {n_sites} sites")
    energy, site = None, []
    for i in range(1, n_sites + 1):
        total = None
        for p in files[i]:
            e, ldos = _read_pdos_file(p)
            if energy is None:
                energy = e
            elif e.shape != energy.shape or np.max(np.abs(e - energy)) > 1e-6:
                raise InputError(p, "energy grid differs from the other pdos files")
            total = ldos if total is None else total + ldos
        site.append(total)
    return ElectronDOS(energy, np.array(site), str(workdir / f"{filpdos}.pdos_atm#*"))
