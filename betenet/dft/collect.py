"""From a finished material folder to a dataset record: parse, derive the labels, filter, write.

:func:`collect_material` reads the chosen ``a2F.dosN`` (all N for the per-smearing lambdas), the
fine and coarse site-projected PhDOS, ph.x's frequencies (lowest mode), and the eDOS run (Fermi
level, band gap, site-projected eDOS around E_F). The record holds the raw spectra (meV grids)
under the generic directory format's keys and the labels lambda, omega_log, omega_2 and Allen–Dynes
Tc (mu* = 0.10) computed from the a2F by :func:`betenet.physics.properties.a2f_properties`.
:func:`collect` runs the paper's filters on all records and writes the kept ones (or all, with
``keep_rejected``) as a generic directory dataset or in the release format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from betenet.data.structures import load_structure, structure_hash
from betenet.dft.filters import apply_dft_filters
from betenet.dft.parsers import (
    ElectronDOS,
    read_a2f_smearings,
    read_matdyn_dos,
    read_matdyn_lambda,
    read_ph_output,
    read_projwfc_pdos,
    read_pw_output,
)
from betenet.dft.settings import DFTSettings, a2f_file_index, el_ph_smearings
from betenet.dft.state import MaterialState
from betenet.dft.workflow import (
    COARSE_DOS,
    EDOS_FILPDOS,
    FINE_DOS,
    LAMBDA_FILE,
    STRUCTURE_FILE,
    read_workflow,
)
from betenet.errors import InputError
from betenet.physics.properties import PROPERTIES, a2f_properties
from betenet.physics.units import MU_STAR_DEFAULT

FORMATS = ("directory", "release")


@dataclass
class Collected:
    """One material's results: the dataset ``record``, extra spectra and a JSON-able ``details``."""

    id: str
    structure: Structure
    structure_path: Path
    record: dict
    settings: DFTSettings
    band_gap_eV: float | None = None
    phdos_total_freq_meV: np.ndarray | None = None
    phdos_total: np.ndarray | None = None
    edos_energy_meV: np.ndarray | None = None  # relative to E_F
    edos_site: np.ndarray | None = None  # [n_sites, n_E], states/meV
    details: dict = field(default_factory=dict)


def _labels(omega_meV, a2f) -> dict:
    """lambda, omega_log, omega_2, Allen–Dynes Tc of a finite spectrum; None for all otherwise."""
    if not np.all(np.isfinite(a2f)):
        return dict.fromkeys(PROPERTIES)
    return a2f_properties(omega_meV, a2f, mu_star=MU_STAR_DEFAULT)


def _edos_window(dos: ElectronDOS, fermi_eV: float, window_meV: float) -> tuple[np.ndarray, np.ndarray]:
    """Energies (meV, relative to E_F) within ±window and the site eDOS there in states/meV."""
    e_meV = (dos.energy_eV - fermi_eV) * 1000.0
    keep = np.abs(e_meV) <= window_meV
    return e_meV[keep], dos.site[:, keep] / 1000.0


def _mean_near_fermi(dos: ElectronDOS, fermi_eV: float, half_width_meV: float) -> float:
    """Mean total eDOS (states/eV/cell) over E_F ± half_width: the integral of the linear
    interpolant of the sum over sites, divided by the window width."""
    e = np.linspace(fermi_eV - half_width_meV / 1000.0, fermi_eV + half_width_meV / 1000.0, 1001)
    total = np.interp(e, dos.energy_eV, dos.site.sum(axis=0))
    return float(np.trapezoid(total, e) / (e[-1] - e[0]))


def collect_material(workdir) -> Collected:
    """Parse a material folder whose steps are all done; :class:`InputError` names what is missing."""
    workdir = Path(workdir)
    wf = read_workflow(workdir)
    s = wf.settings
    state = MaterialState(workdir)
    unfinished = [st.name for st in wf.steps if not state.is_done(st.name)]
    if unfinished:
        raise InputError(workdir, f"steps not finished: {unfinished} (run `betenet dft run {workdir}`)")
    structure_path = workdir / STRUCTURE_FILE
    structure = load_structure(structure_path, name=str(structure_path))
    nat = len(structure)

    sigma, nsigma = el_ph_smearings(s)
    spectra = read_a2f_smearings(workdir, sigma, nsigma)
    chosen_sigma = round(a2f_file_index(s) * sigma, 10)
    a2f = spectra[chosen_sigma]
    fine = read_matdyn_dos(workdir / FINE_DOS, n_sites=nat)
    if fine.site is None:
        raise InputError(workdir / FINE_DOS, "no projected DOS columns (matdyn.x older than QE 6.2?)")
    ph = read_ph_output(workdir / "ph.out")

    record = {
        "id": wf.id,
        "formula": structure.composition.formula.replace(" ", ""),
        "a2f_freq_meV": a2f.omega_meV,
        "a2f": a2f.a2f,
        "phdos_fine_freq_meV": fine.freq_meV,
        "phdos_fine_site": fine.site,
        **_labels(a2f.omega_meV, a2f.a2f),
        "min_phonon_freq_meV": ph.min_frequency_meV,
        "structure_hash": structure_hash(structure),  # the structure these spectra belong to
    }
    details = {
        "id": wf.id,
        "profile": s.name,
        "grids": wf.grids,
        "a2f_smearing_Ry": chosen_sigma,
        "lambda_by_smearing": {f"{k:g}": _labels(v.omega_meV, v.a2f)["lambda"] for k, v in spectra.items()},
        "qe_lambda_file": [vars(line) for line in read_matdyn_lambda(workdir / LAMBDA_FILE)],
        "min_phonon_freq_meV": ph.min_frequency_meV,
        "imaginary_modes": [
            {"q": ph.q_points[iq].tolist(), "mode": im + 1, "freq_meV": w}
            for iq, im, w in ph.imaginary_modes(0.0)
        ],
    }
    out = Collected(wf.id, structure, structure_path, record, s, phdos_total_freq_meV=fine.freq_meV,
                    phdos_total=fine.total, details=details)
    if s.coarse_phdos.enabled:
        coarse = read_matdyn_dos(workdir / COARSE_DOS, n_sites=nat)
        if coarse.site is None:
            raise InputError(workdir / COARSE_DOS, "no projected DOS columns")
        record["phdos_coarse_freq_meV"] = coarse.freq_meV
        record["phdos_coarse_site"] = coarse.site
    if s.edos.enabled:
        nscf = read_pw_output(workdir / "edos_nscf.out")
        if nscf.fermi_energy_eV is None:
            raise InputError(workdir / "edos_nscf.out", "no Fermi energy printed")
        dos = read_projwfc_pdos(workdir, EDOS_FILPDOS, nat)
        out.band_gap_eV = nscf.band_gap_eV
        out.edos_energy_meV, out.edos_site = _edos_window(dos, nscf.fermi_energy_eV, s.collect.edos_window_meV)
        details.update(
            fermi_energy_eV=nscf.fermi_energy_eV,
            band_gap_eV=out.band_gap_eV,
            edos_at_fermi_states_per_eV=_mean_near_fermi(dos, nscf.fermi_energy_eV, s.collect.edos_average_meV),
            edos_average_window_meV=s.collect.edos_average_meV,
        )
    return out


def filter_collected(items: list[Collected]):
    """The paper's filters (:func:`betenet.dft.filters.apply_dft_filters`) on collected materials,
    with the thresholds of their ``collect`` settings (which must agree); returns (kept, report)."""
    if not items:
        return [], None
    c = items[0].settings.collect
    differ = [it.id for it in items if it.settings.collect != c]
    if differ:
        raise InputError(differ[0], f"collect settings differ from those of {items[0].id}; collect them separately")
    records = [{**it.record, "band_gap_eV": it.band_gap_eV} for it in items]
    kept, report = apply_dft_filters(records, threshold_meV=c.unstable_threshold_meV, tol=c.negative_a2f_tol,
                                     gap_threshold_eV=c.gap_threshold_eV)
    keep = {r["id"] for r in kept}
    return [it for it in items if it.id in keep], report


def collect(workdirs, out_root, format: str = "directory", keep_rejected: bool = False) -> dict:
    """Collect material folders into a dataset under ``out_root``; report rejections with reasons.

    A folder that cannot be parsed is reported under ``unreadable`` (it is not written); filtered
    materials are reported under ``rejected`` and written only with ``keep_rejected``.
    """
    from betenet.dft.dataset import write_directory_entries, write_release_entries

    if format not in FORMATS:
        raise InputError(format, f"unknown dataset format; choose from {FORMATS}")
    items, unreadable = [], {}
    for d in workdirs:
        try:
            items.append(collect_material(d))
        except InputError as err:
            unreadable[str(d)] = str(err)
    ids = [it.id for it in items]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InputError(out_root, f"material ids repeated across folders: {repeated}")
    kept, report = filter_collected(items)
    to_write = items if keep_rejected else kept
    if to_write:
        writer = write_directory_entries if format == "directory" else write_release_entries
        writer(out_root, to_write)
    return {
        "out": str(out_root),
        "format": format,
        "written": [it.id for it in to_write],
        "rejected": {str(i): f"{name}: {reason}" for i, (name, reason) in (report.rejected.items() if report else [])},
        "unreadable": unreadable,
        "filters": report.lines() if report else [],
        "lambda": {it.id: it.record["lambda"] for it in items},
    }
