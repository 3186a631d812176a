"""The chain of steps of one material and its record on disk (``workflow.json``).

A material folder holds the input decks, ``workflow.json`` (id, settings, grids, the ordered
steps) and, once running, ``state.json`` (see :mod:`betenet.dft.state`). Each :class:`Step` names
the program, its input and output files and the products that must exist when it has finished.

Steps, in order (those in brackets depend on the settings)::

    [relax, prepare]   pw.x (vc-)relax; then the decks below are written from the relaxed cell
    scf_la2f           pw.x scf with la2F=.true. on the dense k-grid (writes <prefix>.a2Fsave)
    [scf]              pw.x scf on a coarser k-grid for ph.x (QE example03's two-scf flow)
    ph                 ph.x electron_phonon='interpolated' on the q-grid (dyn files, elph_dir/)
    q2r                q2r.x la2F=.true. -> <prefix>.fc
    matdyn             matdyn.x la2F + dos -> a2F.dos1..N, lambda, phonon.dos (fine, site-projected)
    [ph_coarse, q2r_coarse, matdyn_coarse]   2x2x2 force constants -> phonon_coarse.dos
    [edos_scf, edos_nscf, projwfc]           own outdir; tetrahedra nscf; site-projected eDOS
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from betenet.dft.settings import DFTSettings, el_ph_smearings, settings_dict, settings_from_dict
from betenet.errors import InputError
from betenet.files import write_json

WORKFLOW_FILE = "workflow.json"
STATE_FILE = "state.json"
RUN_SCRIPT = "run.sh"
STRUCTURE_FILE = "structure.cif"  # the cell every phonon/el-ph deck uses (relaxed when relax is on)
INITIAL_STRUCTURE_FILE = "structure_initial.cif"  # the relax input, when relax is on
OUTDIR = "tmp"
EDOS_OUTDIR = "tmp_edos"
FINE_DOS = "phonon.dos"
COARSE_DOS = "phonon_coarse.dos"
LAMBDA_FILE = "lambda"
EDOS_FILPDOS = "edos"
#: Text every QE program prints when it ends normally.
JOB_DONE = "JOB DONE"
#: Program name of the in-process step that writes the decks after a relax.
PREPARE = "prepare"


@dataclass
class Step:
    """One program run: ``program -in input > output``; done when ``products`` exist (and JOB DONE)."""

    name: str
    program: str
    input: str | None
    output: str | None
    products: list[str] = field(default_factory=list)

    @property
    def internal(self) -> bool:
        """True for the in-process ``prepare`` step (no QE program)."""
        return self.program == PREPARE


def plan_steps(settings: DFTSettings) -> list[Step]:
    """The ordered steps of a material under ``settings``."""
    p = settings.prefix
    save = f"{OUTDIR}/{p}.save"
    _, nsigma = el_ph_smearings(settings)

    def qe(name, program, products):
        return Step(name, program, f"{name}.in", f"{name}.out", list(products))

    steps = []
    if settings.relax.enabled:
        steps.append(qe("relax", "pw.x", [save]))
        steps.append(Step("prepare", PREPARE, None, None, [STRUCTURE_FILE]))
    steps.append(qe("scf_la2f", "pw.x", [save, f"{OUTDIR}/{p}.a2Fsave"]))
    if settings.grids.phonon_k_grid is not None:
        steps.append(qe("scf", "pw.x", [save]))
    steps.append(qe("ph", "ph.x", [f"{p}.dyn0", "elph_dir"]))
    steps.append(qe("q2r", "q2r.x", [f"{p}.fc"]))
    steps.append(qe("matdyn", "matdyn.x", [FINE_DOS, LAMBDA_FILE] + [f"a2F.dos{i}" for i in range(1, nsigma + 1)]))
    if settings.coarse_phdos.enabled:
        steps.append(qe("ph_coarse", "ph.x", ["coarse.dyn0"]))
        steps.append(qe("q2r_coarse", "q2r.x", ["coarse.fc"]))
        steps.append(qe("matdyn_coarse", "matdyn.x", [COARSE_DOS]))
    if settings.edos.enabled:
        edos_save = f"{EDOS_OUTDIR}/{p}.save"
        steps.append(qe("edos_scf", "pw.x", [edos_save]))
        steps.append(qe("edos_nscf", "pw.x", [edos_save]))
        steps.append(qe("projwfc", "projwfc.x", [f"{EDOS_FILPDOS}.pdos_tot"]))
    if settings.relax.enabled:  # the prepare step writes every deck after the relax
        steps[1].products = [STRUCTURE_FILE] + [s.input for s in steps[2:]]
    return steps


@dataclass
class Workflow:
    """What ``workflow.json`` records: material id, settings, grids (once known) and the steps."""

    id: str
    settings: DFTSettings
    steps: list[Step]
    grids: dict = field(default_factory=dict)
    structure: str = ""  # the structure file the inputs were written from

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "structure": self.structure,
            "grids": self.grids,
            "steps": [asdict(s) for s in self.steps],
            "settings": settings_dict(self.settings),
        }


def write_workflow(workdir: Path, wf: Workflow) -> Path:
    """Write ``workflow.json`` atomically."""
    path = Path(workdir) / WORKFLOW_FILE
    return write_json(path, wf.to_json(), indent=1)


def read_workflow(workdir) -> Workflow:
    """The workflow of a material folder; :class:`InputError` if it is not one."""
    path = Path(workdir) / WORKFLOW_FILE
    if not path.is_file():
        raise InputError(workdir, f"not a DFT material folder (no {WORKFLOW_FILE}; run `betenet dft inputs` first)")
    try:
        data = json.loads(path.read_text())
        steps = [Step(**s) for s in data["steps"]]
        settings = settings_from_dict(data["settings"], str(path))
        return Workflow(id=str(data["id"]), settings=settings, steps=steps,
                        grids=dict(data.get("grids", {})),
                        structure=str(data.get("structure", data.get("source", ""))))  # "source" in older files
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(path, f"unreadable workflow record ({type(exc).__name__}: {exc})") from None
