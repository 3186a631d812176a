"""Input decks of a material: structure → (standard cell) → k/q grids → pw/ph/q2r/matdyn/projwfc decks.

``write_inputs(structure, out, settings)`` fills a material folder: the calculation cell as
``structure.cif`` (or ``structure_initial.cif`` when a relax comes first), every deck whose cell
is known, ``workflow.json`` and ``run.sh``. With relax enabled, only ``relax.in`` is written; the
``prepare`` step (:func:`prepare_after_relax`) reads the relaxed cell from ``relax.out`` and then
writes the other decks, with grids from the relaxed lattice (paper: "relaxed lattice parameters
are used for the grid generation").

Site order: the dataset's per-site spectra follow the order of ``structures/<id>.cif`` as
``load_structure`` reads it, and pymatgen's CIF writer groups sites by element. So the cell is
first written as CIF and read back, and the decks use that order: the atoms of every QE run, the
columns of matdyn's projected DOS and projwfc's files all follow the CIF. The lattice keeps the
orientation of the (standardized) structure, which lets pw.x find the full point group.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from pymatgen.core import Element, Structure

from betenet.data.structures import load_structure
from betenet.dft.qe_input import merged, namelist, pw_cards, species_order
from betenet.dft.settings import DFTSettings, PseudoSettings
from betenet.dft.workflow import (
    EDOS_FILPDOS,
    EDOS_OUTDIR,
    COARSE_DOS,
    FINE_DOS,
    INITIAL_STRUCTURE_FILE,
    OUTDIR,
    RUN_SCRIPT,
    STATE_FILE,
    STRUCTURE_FILE,
    Workflow,
    plan_steps,
    read_workflow,
    write_workflow,
)
from betenet.errors import InputError
from betenet.physics.grids import commensurate_kq_grids, target_grid
from betenet.physics.units import CMM1_TO_MEV

#: Fractional-coordinate tolerance when matching the sites read back from the CIF.
_SITE_MATCH_TOL = 1e-5


# --------------------------------------------------------------------------------------------
# structure
# --------------------------------------------------------------------------------------------
def standard_cell(structure: Structure, settings: DFTSettings, name: str) -> Structure:
    """The cell QE runs on: pymatgen's standard primitive cell, or the input cell (``cell: input``)."""
    if settings.cell == "input":
        return structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        return SpacegroupAnalyzer(structure, symprec=settings.symprec).get_primitive_standard_structure()
    except Exception as exc:  # spglib failures come as several types
        raise InputError(name, f"symmetry analysis failed ({type(exc).__name__}: {exc}); try cell: input") from exc


def write_cif_in_order(structure: Structure, path: Path) -> Structure:
    """Write ``structure`` as CIF and return it with its sites in the order the CIF is read back.

    The returned structure keeps ``structure``'s lattice matrix (orientation) and is the one the
    decks must use, so that site k of every QE output is site k of the CIF.
    """
    from pymatgen.io.cif import CifWriter

    path = Path(path)
    CifWriter(structure).write_file(str(path))
    back = load_structure(path, name=str(path))
    if len(back) != len(structure):
        raise InputError(path, f"CIF holds {len(back)} sites, the structure {len(structure)}")
    frac = np.asarray(structure.frac_coords)
    symbols = [s.specie.symbol for s in structure]
    order, used = [], set()
    for site in back:
        d = frac - site.frac_coords
        d -= np.round(d)
        dist = np.abs(d).max(axis=1)
        match = [j for j in np.argsort(dist) if dist[j] < _SITE_MATCH_TOL and symbols[j] == site.specie.symbol
                 and j not in used]
        if not match:
            raise InputError(path, f"site {site.specie} at {site.frac_coords} of the CIF matches no input site")
        used.add(match[0])
        order.append(int(match[0]))
    return Structure.from_sites([structure[j] for j in order])


def read_relaxed_structure(path) -> Structure:
    """The final cell and positions of a pw.x (vc-)relax output, read with ASE (site order kept)."""
    from ase.io import read
    from pymatgen.io.ase import AseAtomsAdaptor

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "relax output not found")
    try:
        atoms = read(str(path), format="espresso-out", index=-1)
    except Exception as exc:  # ASE raises various types on truncated outputs
        raise InputError(path, f"cannot read the relaxed structure ({type(exc).__name__}: {exc})") from exc
    return AseAtomsAdaptor.get_structure(atoms)


# --------------------------------------------------------------------------------------------
# settings resolved against a structure
# --------------------------------------------------------------------------------------------
def resolve_pseudos(symbols, pseudo: PseudoSettings, label: str) -> tuple[str, dict[str, str], list[str]]:
    """(absolute pseudo_dir, {element: file}, notes); a missing file in an existing folder is an error.

    When the folder does not exist on this machine (decks written for a cluster), names are not
    checked and a note says so.
    """
    directory = Path(os.path.expanduser(pseudo.dir)).resolve()
    files = {sym: pseudo.files.get(sym, pseudo.pattern.format(symbol=sym)) for sym in species_order(symbols)}
    notes = []
    if directory.is_dir():
        missing = [f for f in files.values() if not (directory / f).is_file()]
        if missing:
            raise InputError(label, f"pseudopotentials {missing} not found in {directory}")
    else:
        notes.append(f"pseudo_dir {directory} not found here: file names not checked")
    return str(directory), files, notes


def masses_for(symbols, settings: DFTSettings) -> dict[str, float]:
    """amu per element: ``settings.masses`` where given, else pymatgen's standard atomic mass."""
    return {s: float(settings.masses.get(s, float(Element(s).atomic_mass))) for s in species_order(symbols)}


def resolve_grids(structure: Structure, settings: DFTSettings, name: str) -> dict:
    """k/q grids of the chain: explicit ones from the settings, else ``commensurate_kq_grids``."""
    g = settings.grids
    if g.k_grid is not None:
        k_grid, q_grid = tuple(g.k_grid), tuple(g.q_grid)
    else:
        k_grid, q_grid = commensurate_kq_grids(structure, g.k_density, g.q_density, name=name)
    e = settings.edos
    edos_k = tuple(e.k_grid) if e.k_grid is not None else target_grid(structure, e.k_density)
    return {
        "k_grid": list(k_grid),
        "q_grid": list(q_grid),
        "phonon_k_grid": list(g.phonon_k_grid) if g.phonon_k_grid is not None else list(k_grid),
        "edos_k_grid": list(edos_k),
    }


# --------------------------------------------------------------------------------------------
# decks
# --------------------------------------------------------------------------------------------
def _pw_deck(structure, settings: DFTSettings, calculation: str, kgrid, pseudo_dir: str, pseudos: dict,
             outdir: str = OUTDIR, control=None, system=None, extra_namelists=()) -> str:
    symbols = [s.specie.symbol for s in structure]
    base = {"calculation": calculation, "prefix": settings.prefix, "outdir": f"./{outdir}/",
            "pseudo_dir": pseudo_dir}
    text = namelist("control", merged(base, settings.pw.control, control or {}))
    geometry = {"ibrav": 0, "nat": len(structure), "ntyp": len(species_order(symbols))}
    text += namelist("system", merged(geometry, system if system is not None else settings.pw.system))
    text += namelist("electrons", settings.pw.electrons)
    for name, values in extra_namelists:
        text += namelist(name, values)
    return text + pw_cards(structure, masses_for(symbols, settings), pseudos, kgrid)


def _dos_grid(settings: DFTSettings, nk) -> dict:
    m = settings.matdyn
    out = {"nk1": int(nk[0]), "nk2": int(nk[1]), "nk3": int(nk[2])}
    if m.ndos is not None:
        out["ndos"] = int(m.ndos)
    else:
        out["deltaE"] = float(m.delta_meV) / CMM1_TO_MEV  # matdyn's DOS step is in cm^-1
    return out


def _ph_deck(settings: DFTSettings, title: str, fildyn: str, qgrid, inputph: dict) -> str:
    base = {"prefix": settings.prefix, "outdir": f"./{OUTDIR}/", "fildyn": fildyn}
    grid = {"ldisp": True, "nq1": int(qgrid[0]), "nq2": int(qgrid[1]), "nq3": int(qgrid[2])}
    return title.strip() + "\n" + namelist("inputph", merged(base, inputph, grid))


def relax_deck(structure: Structure, settings: DFTSettings, name: str) -> tuple[str, list[int], list[str]]:
    """(relax.in text, its k-grid, notes) for the initial structure."""
    symbols = [s.specie.symbol for s in structure]
    pseudo_dir, pseudos, notes = resolve_pseudos(symbols, settings.pseudo, name)
    r = settings.relax
    kgrid = list(target_grid(structure, r.k_density))
    calculation = str(r.control.get("calculation", "vc-relax"))
    extra = [("ions", r.ions)] + ([("cell", r.cell)] if calculation == "vc-relax" else [])
    control = {k: v for k, v in r.control.items() if k != "calculation"}
    text = _pw_deck(structure, settings, calculation, kgrid, pseudo_dir, pseudos, control=control,
                    extra_namelists=extra)
    return text, kgrid, notes


def chain_decks(structure: Structure, settings: DFTSettings, grids: dict,
                name: str) -> tuple[dict[str, str], list[str]]:
    """{file name: text} of every deck after the relax, and notes (unchecked pseudopotentials)."""
    s = settings
    symbols = [site.specie.symbol for site in structure]
    pseudo_dir, pseudos, notes = resolve_pseudos(symbols, s.pseudo, name)
    p = s.prefix
    decks = {}
    la2f_system = merged(s.pw.system, {"la2F": True})
    decks["scf_la2f.in"] = _pw_deck(structure, s, "scf", grids["k_grid"], pseudo_dir, pseudos, system=la2f_system)
    if s.grids.phonon_k_grid is not None:
        decks["scf.in"] = _pw_deck(structure, s, "scf", grids["phonon_k_grid"], pseudo_dir, pseudos)
    decks["ph.in"] = _ph_deck(s, s.ph.title, f"{p}.dyn", grids["q_grid"], s.ph.inputph)
    decks["q2r.in"] = namelist("input", merged({"fildyn": f"{p}.dyn", "flfrc": f"{p}.fc", "la2F": True}, s.q2r))
    files = {"flfrc": f"{p}.fc", "flfrq": f"{p}.freq", "fldos": FINE_DOS, "dos": True, "la2F": True}
    decks["matdyn.in"] = namelist("input", merged(files, s.matdyn.input, _dos_grid(s, s.matdyn.nk)))
    if s.coarse_phdos.enabled:
        c = s.coarse_phdos
        decks["ph_coarse.in"] = _ph_deck(s, "phonons on the coarse q-grid", "coarse.dyn", c.q_grid,
                                         merged({"trans": True}, c.inputph))
        decks["q2r_coarse.in"] = namelist("input", merged({"fildyn": "coarse.dyn", "flfrc": "coarse.fc"}, s.q2r))
        files = {"flfrc": "coarse.fc", "flfrq": "coarse.freq", "fldos": COARSE_DOS, "dos": True}
        decks["matdyn_coarse.in"] = namelist("input", merged(files, s.matdyn.input, _dos_grid(s, c.nk)))
    if s.edos.enabled:
        e = s.edos
        if e.pseudo is not None:
            e_dir, e_pseudos, e_notes = resolve_pseudos(symbols, e.pseudo, name)
            notes += e_notes
        else:
            e_dir, e_pseudos = pseudo_dir, pseudos
        kgrid = grids["edos_k_grid"]
        decks["edos_scf.in"] = _pw_deck(structure, s, "scf", kgrid, e_dir, e_pseudos, outdir=EDOS_OUTDIR)
        tetra = {k: v for k, v in s.pw.system.items() if k.lower() not in ("smearing", "degauss", "occupations")}
        tetra["occupations"] = e.occupations
        decks["edos_nscf.in"] = _pw_deck(structure, s, "nscf", kgrid, e_dir, e_pseudos, outdir=EDOS_OUTDIR,
                                         control={"verbosity": "high"}, system=tetra)
        base = {"prefix": p, "outdir": f"./{EDOS_OUTDIR}/", "filpdos": EDOS_FILPDOS}
        decks["projwfc.in"] = namelist("projwfc", merged(base, e.projwfc))
    return decks, notes


def _write_decks(workdir: Path, decks: dict[str, str]) -> None:
    for fname, text in decks.items():
        (workdir / fname).write_text(text)


def run_script(wf: Workflow) -> str:
    """``run.sh``: runs the chain through ``betenet dft run`` (resumable), QE commands as comments."""
    lines = [
        "#!/usr/bin/env bash",
        f"# {wf.id}: Quantum ESPRESSO el-ph chain, profile '{wf.settings.name}' (written by `betenet dft inputs`).",
        "# Resumable: finished steps are recorded in state.json and never rerun.",
        "# MPI ranks: NP=4 ./run.sh   (programs run under MPI: "
        + ", ".join(wf.settings.run.parallel) + f"; prefix '{wf.settings.run.mpi}')",
        "# Steps:",
    ]
    for step in wf.steps:
        if step.internal:
            lines.append(f"#   {step.name:<14} betenet writes the remaining decks from the relaxed cell")
        else:
            lines.append(f"#   {step.name:<14} {step.program} -in {step.input} > {step.output}")
    lines += [
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        f'exec "${{BETENET:-betenet}}" dft run . --np "${{NP:-{wf.settings.run.np}}}" "$@"',
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------
def write_inputs(src, out, settings: DFTSettings, entry_id: str | None = None) -> dict:
    """Fill material folder ``out`` from a structure (file, pymatgen Structure or ASE Atoms).

    Returns a summary (id, folder, profile, steps, grids, notes). A folder that already has a
    ``state.json`` (a started run) is refused: its finished steps would no longer match the decks.
    """
    out = Path(out)
    label = str(src) if isinstance(src, (str, os.PathLike)) else (entry_id or "structure")
    if (out / STATE_FILE).exists():
        raise InputError(out, f"holds {STATE_FILE} of a started run; write the inputs into a new folder")
    structure = standard_cell(load_structure(src, name=label), settings, label)
    out.mkdir(parents=True, exist_ok=True)
    if entry_id is None:
        entry_id = Path(src).stem if isinstance(src, (str, os.PathLike)) else out.name
    wf = Workflow(id=str(entry_id), settings=settings, steps=plan_steps(settings), structure=label)
    if settings.relax.enabled:
        structure = write_cif_in_order(structure, out / INITIAL_STRUCTURE_FILE)
        text, kgrid, notes = relax_deck(structure, settings, label)
        (out / "relax.in").write_text(text)
        wf.grids = {"relax_k_grid": kgrid}
    else:
        structure = write_cif_in_order(structure, out / STRUCTURE_FILE)
        wf.grids = resolve_grids(structure, settings, label)
        decks, notes = chain_decks(structure, settings, wf.grids, label)
        _write_decks(out, decks)
    write_workflow(out, wf)
    script = out / RUN_SCRIPT
    script.write_text(run_script(wf))
    script.chmod(0o755)
    return {
        "id": wf.id,
        "folder": str(out),
        "profile": settings.name,
        "formula": structure.composition.reduced_formula,
        "n_atoms": len(structure),
        "steps": [s.name for s in wf.steps],
        **wf.grids,
        "notes": notes,
    }


def prepare_after_relax(workdir) -> dict:
    """The ``prepare`` step: relaxed cell from ``relax.out`` → ``structure.cif``, grids, all decks."""
    workdir = Path(workdir)
    wf = read_workflow(workdir)
    relaxed = read_relaxed_structure(workdir / "relax.out")
    structure = write_cif_in_order(relaxed, workdir / STRUCTURE_FILE)
    grids = resolve_grids(structure, wf.settings, str(workdir / STRUCTURE_FILE))
    decks, notes = chain_decks(structure, wf.settings, grids, str(workdir))
    _write_decks(workdir, decks)
    wf.grids.update(grids)
    write_workflow(workdir, wf)
    return {"decks": sorted(decks), **grids, "notes": notes}

