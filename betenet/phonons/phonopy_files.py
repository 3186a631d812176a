"""Phonopy's own files of a ``betenet phonons`` calculation, per structure and PhDOS kind, so the
potential's phonons can be reused and checked against neutron data or DFT outside betenet::

    out/phonopy/<id>/<kind>/phonopy_params.yaml   phonopy's parameters: unit cell, supercell matrix,
                                                  displacements, forces and the (symmetrised) force
                                                  constants; ``phonopy.load`` / ``phonopy-load`` read it
    out/phonopy/<id>/<kind>/band_dos.png          with ``--plot``: band structure along a high-symmetry
                                                  path and the PhDOS (total and per element)

The band path is the Setyawan–Curtarolo path of the structure's lattice (pymatgen's ``HighSymmKpath``),
expressed in the cell's own reciprocal coordinates (the cell as given need not be the standard primitive
one); when no such mapping is found, the Latimer–Munro path of the cell itself. Figures are drawn
with matplotlib's Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from betenet.files import atomic_path
from betenet.physics.units import THZ_TO_MEV

#: Folder of phonopy's files inside a ``betenet phonons`` output folder, and the file names.
PHONOPY_DIR = "phonopy"
PARAMS_FILE = "phonopy_params.yaml"
PLOT_FILE = "band_dos.png"
#: q-points per segment of the band path.
BAND_POINTS = 41


def kind_folder(out, eid: str, kind: str) -> Path:
    """``out/phonopy/<id>/<kind>``."""
    return Path(out) / PHONOPY_DIR / eid / kind


def write_params(folder, text: str) -> Path:
    """Write ``phonopy_params.yaml`` (``text``) into ``folder`` atomically."""
    path = Path(folder) / PARAMS_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def load_phonopy(params):
    """A phonopy object from a ``phonopy_params.yaml`` path or its text (force constants as written)."""
    import phonopy

    source = io.StringIO(params) if isinstance(params, str) and "\n" in params else params
    return phonopy.load(source, produce_fc=True, log_level=0)


def _label(name: str) -> str:
    name = name.replace("\\Gamma", "Γ").replace("\\Sigma", "Σ").replace("\\Delta", "Δ").replace("\\Lambda", "Λ")
    return f"${name}$" if "_" in name else name


def _closest_mapping(standard, given):
    """pymatgen's lattice mapping of ``given`` onto ``standard`` whose rotation is closest to the identity
    (the cell as given, unrotated where possible: a rotation that is a symmetry of the lattice but not of
    the crystal would move the path's points), or None."""
    best = None
    for mapping in standard.find_all_mappings(given, ltol=1e-4, atol=0.1):
        if best is None or np.trace(mapping[1]) > np.trace(best[1]) + 1e-9:
            best = mapping
            if np.allclose(mapping[1], np.eye(3)):
                break
    return best


def band_path(structure) -> tuple[list[np.ndarray], list[tuple[str, str]], list[bool]]:
    """``(segments, end labels, connected-to-next)`` of the band path of a pymatgen ``structure`` (module
    docstring): each segment [BAND_POINTS, 3] q-points in the reciprocal coordinates of the cell given."""
    from pymatgen.symmetry.bandstructure import HighSymmKpath

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the input structure does not match the expected standard primitive"
        kpath = HighSymmKpath(structure, path_type="setyawan_curtarolo")
        mapping = _closest_mapping(kpath.prim.lattice, structure.lattice)
        if mapping is not None:
            scale = np.asarray(mapping[2], dtype=float)  # cell given (rotated) = scale @ standard primitive
            points = {k: scale @ np.asarray(v, dtype=float) for k, v in kpath.kpath["kpoints"].items()}
        else:
            kpath = HighSymmKpath(structure, path_type="latimer_munro")
            points = {k: np.asarray(v, dtype=float) for k, v in kpath.kpath["kpoints"].items()}
    segments, labels, connected = [], [], []
    for branch in kpath.kpath["path"]:
        for a, b in zip(branch[:-1], branch[1:]):
            segments.append(np.linspace(points[a], points[b], BAND_POINTS))
            labels.append((_label(a), _label(b)))
            connected.append(True)
        connected[-1] = False
    return segments, labels, connected


def plot_band_dos(phonon, result, structure, path, title: str, sigma_meV: float | None = None) -> Path:
    """Band structure of ``phonon`` (a phonopy object with force constants) beside the PhDOS of
    ``result`` (:class:`~betenet.phonons.calculate.SitePhDOS`: total and per element) as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    segments, labels, connected = band_path(structure)
    phonon.run_band_structure(segments, path_connections=connected, with_eigenvectors=False)
    bands = phonon.band_structure
    fig = Figure(figsize=(8.0, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax, ax_dos = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 1]})
    ticks, tick_labels = [0.0], [labels[0][0]]
    for k, (dist, freq) in enumerate(zip(bands.distances, bands.frequencies)):
        ax.plot(dist, np.asarray(freq) * THZ_TO_MEV, color="C0", lw=0.9)
        end = float(dist[-1])
        ticks.append(end)
        if k + 1 < len(labels):
            nxt = labels[k + 1][0]
            tick_labels.append(labels[k][1] if connected[k] else f"{labels[k][1]}|{nxt}")
        else:
            tick_labels.append(labels[k][1])
    for x in ticks:
        ax.axvline(x, color="0.6", lw=0.6)
    ax.axhline(0.0, color="0.3", lw=0.6)
    ax.set_xticks(ticks, tick_labels)
    ax.set_xlim(ticks[0], ticks[-1])
    ax.set_ylabel("frequency (meV; imaginary modes < 0)")
    ax.set_title("band structure")
    grid, site = np.asarray(result.freq_meV), np.asarray(result.site_dos)
    ax_dos.plot(site.sum(axis=0), grid, color="k", lw=1.0, label="total")
    symbols = [s.specie.symbol for s in structure]
    for j, element in enumerate(dict.fromkeys(symbols)):
        rows = [i for i, s in enumerate(symbols) if s == element]
        ax_dos.plot(site[rows].sum(axis=0), grid, lw=0.9, color=f"C{j + 1}", label=element)
    ax_dos.axhline(0.0, color="0.3", lw=0.6)
    ax_dos.set_xlabel("PhDOS (states/meV)")
    ax_dos.set_xlim(left=0.0)
    ax_dos.set_title("PhDOS" + (f" (σ = {sigma_meV:g} meV)" if sigma_meV else ""))
    ax_dos.legend(loc="upper right", fontsize="small", frameon=False)
    fig.suptitle(title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130)
    return path


def write_files(out, eid: str, kind: str, result, structure, plot: bool, title: str,
                sigma_meV: float | None = None) -> dict:
    """Phonopy's files of one structure's ``kind`` (module docstring) from ``result``; returns their paths
    relative to ``out`` (``{"params": ..., "plot": ...}``), None where not written."""
    folder = kind_folder(out, eid, kind)
    written = {"params": None, "plot": None}
    if result.phonopy_params is None:
        return written
    params = write_params(folder, result.phonopy_params)
    written["params"] = str(params.relative_to(out))
    if plot:
        phonon = load_phonopy(str(params))
        figure = plot_band_dos(phonon, result, structure, folder / PLOT_FILE, title, sigma_meV)
        written["plot"] = str(figure.relative_to(out))
    return written
