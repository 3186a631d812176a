"""The batch behind ``betenet phonons``: structures in, a dataset folder in the generic directory
format out (read back by :func:`betenet.data.sources.directory.load_directory`)::

    out/structures/<id>.<ext>    the structure as given (its file copied; written as extxyz after
                                 --relax or for other formats), site order = order of the PhDOS rows
    out/labels.json              one record per structure: phdos_coarse_freq_meV + phdos_coarse_site
                                 (and phdos_fine_* with --fine), min_phonon_freq_meV (from the fine
                                 PhDOS when computed, else the coarse), plus the labels of an input
                                 dataset folder (e.g. tc_K)
    out/metadata.json            {"created_by": "betenet phonons", "site_dos_provenance": {...}}
    out/phonons/<id>.json        per structure: everything above plus what labels.json has no column
                                 for (Γ frequencies, supercell, displacements, potential version, time)
    out/phonons_report.json      this run: one row per input with its status and, if it failed, why

Resumable: a structure whose ``phonons/<id>.json`` already holds each requested kind for the same
structure and settings is not recomputed (and results are also in the shared cache). Each finished
structure's file is written atomically at once; ``labels.json`` is rebuilt from them every
``FLUSH_SECONDS`` and at the end, so an interrupted run loses nothing but the structure in progress.
A structure that fails (unreadable file, partial occupancy, unknown element, element the potential
does not cover, calculation error) gets a reason and the others go on. An output folder made with
other settings is refused rather than mixed, and a folder another run is writing (``out/phonons_lock``)
is refused until that run ends.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from betenet.errors import InputError
from betenet.files import natural_key, write_json
from betenet.phonons.cache import cache_key, structure_hash
from betenet.phonons.fill import PhDOSProvider
from betenet.phonons.potentials import PotentialUnavailable
from betenet.phonons.provenance import mlip_provenance
from betenet.phonons.settings import KINDS, PhononSettings, kind_columns

log = logging.getLogger(__name__)

STATE_DIR = "phonons"
REPORT_FILE = "phonons_report.json"
LOCK_FILE = "phonons_lock"
CREATED_BY = "betenet phonons"
#: Seconds between rewrites of labels.json during a run (each structure's own file is written at once).
FLUSH_SECONDS = 30.0
#: Labels columns computed here (never carried over from an input dataset).
_COMPUTED = tuple(c for k in KINDS for c in kind_columns(k)) + ("min_phonon_freq_meV",)


def safe_id(ident: str) -> str:
    """An input id as a file name: characters other than letters, digits and ``._+-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", str(ident)).strip(".") or "structure"


def _recipe(settings: PhononSettings) -> dict:
    """The recipe an output folder is tied to (every kind's fields)."""
    out = mlip_provenance("fine", settings)
    out.pop("kind")
    return out


def _check_output(out: Path, settings: PhononSettings, kinds, input_dirs: list[Path]) -> None:
    """Create ``out`` or check that it is ours with the same recipe; record the kinds in metadata.json."""
    resolved = out.resolve()
    for d in input_dirs:
        if d.resolve() == resolved:
            raise InputError(out, "--out must not be an input folder; choose a new folder")
    meta_path = out / "metadata.json"
    meta = {}
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(meta_path, f"unreadable ({exc})") from None
    if (out / "labels.csv").exists() or ((out / "labels.json").exists() and meta.get("created_by") != CREATED_BY):
        raise InputError(out, "already holds a dataset not written by betenet phonons; choose a new folder")
    recipe = _recipe(settings)
    old = dict(meta.get("site_dos_provenance") or {})
    old_kinds = old.pop("kinds", [])
    if old and old != recipe:
        diffs = [f"{k} {old.get(k)!r} (folder) vs {recipe.get(k)!r} (now)" for k in sorted(set(old) | set(recipe))
                 if old.get(k) != recipe.get(k)]
        raise InputError(out, "holds PhDOS computed with other settings (" + "; ".join(diffs) + "); use another --out")
    (out / "structures").mkdir(parents=True, exist_ok=True)
    (out / STATE_DIR).mkdir(exist_ok=True)
    recipe["kinds"] = [k for k in KINDS if k in set(old_kinds) | set(kinds)]
    write_json(meta_path, {**meta, "created_by": CREATED_BY, "site_dos_provenance": recipe}, indent=1, nan_as_null=True)


def _read_state(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text())
        return state if isinstance(state, dict) else {}
    except (OSError, json.JSONDecodeError):
        log.warning("%s unreadable; recomputing that structure", path)
        return {}


def _write_structure(out: Path, eid: str, path: Path, structure) -> str:
    """Put the structure into ``out/structures``: the input file copied when the loader reads its
    suffix, else (or when relaxed) extxyz. Other files of the same id are removed."""
    from betenet.data.structures import STRUCTURE_SUFFIXES

    suffix = path.suffix.lower() if path is not None else ""
    name = f"{eid}{suffix}" if suffix in STRUCTURE_SUFFIXES else f"{eid}.extxyz"
    target = out / "structures" / name
    for other in (out / "structures").glob(f"{eid}.*"):
        if other.name != name and other.stem == eid and other.suffix.lower() in STRUCTURE_SUFFIXES:
            other.unlink()
    tmp = target.with_name(f".{name}.tmp")
    if name.endswith(".extxyz") or path is None:
        from ase.io import write
        from pymatgen.io.ase import AseAtomsAdaptor

        write(tmp, AseAtomsAdaptor.get_atoms(structure), format="extxyz")
    else:
        shutil.copyfile(path, tmp)
    tmp.replace(target)
    return f"structures/{name}"


def _kind_state(key: str, result) -> dict:
    return {"key": key, "freq_meV": result.freq_meV.tolist(), "site": np.round(result.site_dos, 8).tolist(),
            "min_freq_meV": result.min_freq_meV, "max_freq_meV": result.max_freq_meV,
            "gamma_meV": result.gamma_meV.tolist(), "supercell": list(result.supercell), "info": result.info}


def labels_record(state: dict) -> dict:
    """The labels.json record of one structure's state file."""
    rec = {"id": state["id"], **state.get("labels", {})}
    kinds = state.get("kinds", {})
    for kind in KINDS:
        if kind in kinds:
            freq_col, site_col = kind_columns(kind)
            rec[freq_col], rec[site_col] = kinds[kind]["freq_meV"], kinds[kind]["site"]
    source = kinds.get("fine") or kinds.get("coarse")
    if source is not None:
        rec["min_phonon_freq_meV"] = source["min_freq_meV"]
    return rec


def write_labels(out: Path) -> int:
    """Rebuild ``out/labels.json`` from the state files whose structure file exists; returns the count."""
    records = []
    for path in sorted((out / STATE_DIR).glob("*.json"), key=lambda p: natural_key(p.stem)):
        state = _read_state(path)
        if state.get("kinds") and (out / state.get("structure_file", "-")).is_file():
            records.append(labels_record(state))
    write_json(out / "labels.json", records, nan_as_null=True)
    return len(records)


def _carried_labels(record: dict | None) -> dict:
    from betenet.data.sources.directory import COLUMNS

    return {k: v for k, v in (record or {}).items() if k in COLUMNS and k != "id" and k not in _COMPUTED}


def _process(out: Path, eid: str, path: Path, structure, kinds, provider: PhDOSProvider, labels: dict) -> dict:
    """Compute (or find done / cached) the ``kinds`` of one structure, write its structure and state
    files; returns the state."""
    state_path = out / STATE_DIR / f"{eid}.json"
    state = _read_state(state_path)
    h = structure_hash(structure)
    if state.get("structure_hash") != h:
        state = {}
    keys = {k: cache_key(structure, k, provider.settings) for k in kinds}
    todo = [k for k in kinds if state.get("kinds", {}).get(k, {}).get("key") != keys[k]]
    if not (out / state.get("structure_file", "-")).is_file():
        todo = list(kinds)  # structure file gone: redo (from the cache) so that it is rewritten
    if not todo:
        return {**state, "status": "done"}
    statuses, relaxed = [], None
    for kind in todo:
        result, from_cache = provider.get(structure, kind, name=eid)
        state.setdefault("kinds", {})[kind] = _kind_state(keys[kind], result)
        relaxed = relaxed or result.relaxed
        statuses.append("cached" if from_cache else "computed")
    state.update(id=eid, input=str(path), structure_hash=h, labels=labels,
                 structure_file=_write_structure(out, eid, None if relaxed else path, relaxed or structure))
    write_json(state_path, state, nan_as_null=True)
    return {**state, "status": "computed" if "computed" in statuses else "cached"}


def run_batch(inputs, out, settings: PhononSettings, kinds=("coarse",), cache_dir=None, calculator=None,
              echo=None) -> dict:
    """Compute the ``kinds`` site PhDOS of every structure in ``inputs`` (files, folders, globs, or a
    dataset folder with ``structures/`` and labels) into the folder ``out`` (module docstring).

    ``echo(line)`` gets one line per structure (default: stderr). Returns a summary dict; raises
    ``InputError`` when nothing succeeded, when ``out`` is a file or cannot be written, or when another
    run holds ``out`` (:func:`betenet.locks.folder_lock`: two runs never write one folder), or at once for
    a missing optional package.
    """
    from betenet.locks import folder_lock

    with folder_lock(out, LOCK_FILE, "another `betenet phonons` run"):
        return _run_batch(inputs, out, settings, kinds, cache_dir, calculator, echo)


def _run_batch(inputs, out, settings: PhononSettings, kinds, cache_dir, calculator, echo) -> dict:
    from betenet.data.sources.directory import read_labels_table
    from betenet.data.structures import gather_inputs, load_structure

    echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    kinds = [k for k in KINDS if k in set(kinds)]
    if not kinds:
        raise InputError("kinds", f"nothing to compute; use one or more of {', '.join(KINDS)}")
    out = Path(out)
    items, labels_path = gather_inputs(list(inputs))
    labels = read_labels_table(labels_path) if labels_path else {}
    _check_output(out, settings, kinds, [Path(t) for t in inputs if Path(t).is_dir()])
    provider = PhDOSProvider(settings, cache_dir, calculator)

    rows, seen = [], {}
    last_flush = time.monotonic()
    try:
        for ident, path, reason in items:
            eid = safe_id(ident) if path is not None else ident
            row = {"id": eid, "input": str(path) if path is not None else ident}
            t0 = time.perf_counter()
            try:
                if reason is not None:
                    raise InputError(ident, reason)
                if eid in seen:
                    raise InputError(ident, f"same output id {eid!r} as input {seen[eid]}")
                seen[eid] = row["input"]
                state = _process(out, eid, path, load_structure(path), kinds, provider,
                                 _carried_labels(labels.get(ident)))
                main = state["kinds"].get("fine") or state["kinds"].get("coarse")
                row.update(status=state["status"], min_phonon_freq_meV=main["min_freq_meV"])
            except PotentialUnavailable:
                raise
            except InputError as err:
                row.update(status="failed", reason=err.reason if err.subject in (ident, eid, str(path)) else str(err))
            row["seconds"] = round(time.perf_counter() - t0, 3)
            rows.append(row)
            detail = f" ({row['reason']})" if "reason" in row else f" in {row['seconds']:.1f} s"
            echo(f"{eid}: {row['status']}{detail}")
            if time.monotonic() - last_flush > FLUSH_SECONDS:
                write_labels(out)
                last_flush = time.monotonic()
    finally:  # an interrupted run keeps every finished structure in labels.json
        n_labelled = write_labels(out)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("computed", "cached", "done", "failed")}
    report = out / REPORT_FILE
    write_json(report, {"settings": _recipe(settings), "kinds": kinds, "device": settings.device,
                         "counts": counts, "rows": rows}, indent=1, nan_as_null=True)
    summary = {"out": str(out), "labels": str(out / "labels.json"), "report": str(report),
               "potential": settings.potential, "kinds": ",".join(kinds), "inputs": len(rows), **counts,
               "entries_in_folder": n_labelled}
    if rows and counts["failed"] == len(rows):
        raise InputError(out, f"no structure succeeded ({len(rows)} failed; reasons in {report})")
    return summary
