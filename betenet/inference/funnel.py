"""Stage 2 of ``betenet screen`` (:mod:`betenet.inference.screen`): the top of stage 1's ranking gets the site
PhDOS the second ensemble reads, from the phonons engine, and is ranked again by that ensemble.

* **Cut.** The first ``ceil(fraction × ranked)`` inputs of stage 1's ranking go on (``fraction`` default
  :data:`DEFAULT_STAGE2_FRACTION`; with a stage-1 threshold, only those of them at or above it); every other
  ranked input is dropped at ``cut`` with its rank or T_c.
* **Phonons.** The second ensemble's PhDOS kind (coarse or fine), with the recipe it was trained on when
  that was an ML potential's (:func:`~betenet.phonons.provenance.provenance_from_config`; ``potential``
  overrides it), else ``potential`` (default SevenNet-0) with the default recipe: its rows then carry
  predict's PhDOS-origin warning. The structures are written to ``stage2/inputs/`` under file-safe ids
  (:func:`betenet.phonons.batch.safe_id`) and go through ``betenet phonons``' engine
  (:func:`betenet.phonons.batch.run_batch`: largest first, ``jobs`` worker processes or the ``cluster`` job
  array, the ``max_atoms`` limit, the shared cache, finished structures skipped on a rerun) into the dataset
  folder ``stage2/phonons/``. A structure whose phonons failed or were skipped is dropped at ``phonons``
  with the engine's reason (element the potential does not cover, too many atoms, ...). An ensemble that
  reads no PhDOS skips this step.
* **Ranking.** The structures with PhDOS, in stage-1 rank order, through the streaming engine of ``betenet
  predict`` with the folder's labels (``stage2/predictions.csv`` + ``.json``, resumable); an input it
  cannot predict is dropped at ``stage 2`` with its status; the others are ranked under their pool ids.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from betenet.errors import InputError
from betenet.files import csv_cell
from betenet.inference.candidates import READ_COLUMNS, ranked
from betenet.physics.properties import TC_ALLEN_DYNES

__all__ = ["DEFAULT_STAGE2_FRACTION", "STAGE2_DIR", "Stage2", "stage2_fraction", "phonon_settings", "select",
           "run_stage2"]

#: Share of stage 1's ranking sent to stage 2 when neither ``--stage2-fraction`` nor ``--stage1-threshold``
#: is given (the paper's two-stage flow sent 15 % of its test split to CPD).
DEFAULT_STAGE2_FRACTION = 0.1
STAGE2_DIR, INPUTS_DIR, PHONONS_DIR = "stage2", "inputs", "phonons"
#: Stage 2's predictions: of the structures whose phonons were computed here; of those with given PhDOS.
PREDICTIONS_CSV, GIVEN_CSV = "predictions.csv", "predictions_given.csv"
#: Statuses of ``betenet phonons``' report that leave a structure with its PhDOS.
PHONONS_OK = ("computed", "cached", "done")


@dataclass
class Stage2:
    """What stage 2 did: its ``ranking`` (pool ids), ``reasons`` (pool id → (dropped_at, reason)) for the
    inputs it dropped, a flat ``summary`` and a ``report`` for ``candidates.json``."""

    ranking: object
    reasons: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)


def stage2_fraction(fraction: float | None, threshold: float | None) -> float:
    """The share of the ranking sent on: ``fraction`` when given; else every candidate (the threshold alone
    decides) with a threshold, :data:`DEFAULT_STAGE2_FRACTION` without."""
    if fraction is not None:
        if not (isinstance(fraction, (int, float)) and 0.0 < fraction <= 1.0):
            raise InputError("--stage2-fraction", f"must be in (0, 1], got {fraction!r}")
        return float(fraction)
    return 1.0 if threshold is not None else DEFAULT_STAGE2_FRACTION


def phonon_settings(ensemble, potential: str | None = None, device: str = "cpu", max_atoms: int | None = None):
    """``(kind, PhononSettings or None)``: the PhDOS kind ``ensemble`` reads and how to compute it (module
    docstring); None for an ensemble that reads none."""
    from betenet.phonons.provenance import provenance_from_config
    from betenet.phonons.settings import PhononSettings

    kind = ensemble.site_dos
    if kind is None:
        raise InputError(ensemble.label, "cannot tell which site PhDOS the stage-2 members read (no run config "
                                         "beside the checkpoints); use the run folders")
    if kind == "none":
        return kind, None
    trained = provenance_from_config(ensemble.config) or {}
    recipe = trained if trained.get("source") in ("mlip", "fill") else {}
    return kind, PhononSettings.from_provenance(recipe, potential=potential, device=device, max_atoms=max_atoms)


def select(ranking, fraction: float, threshold: float | None) -> tuple[list[str], dict]:
    """``(ids sent to stage 2 in rank order, {id: ("cut", reason)} for the others)`` (module docstring)."""
    n = len(ranking)
    n_top = min(n, max(1, math.ceil(fraction * n - 1e-9))) if n else 0
    selected, reasons = [], {}
    for rank, ident, tc in zip(ranking["rank"], ranking["id"], ranking[TC_ALLEN_DYNES]):
        if rank > n_top:
            reasons[ident] = ("cut", f"rank {rank} of {n}: below the top {fraction * 100:g} % ({n_top}) sent to "
                                     "stage 2")
        elif threshold is not None and not tc >= threshold:
            reasons[ident] = ("cut", f"stage-1 Tc {csv_cell(tc) or 'NaN'} K below --stage1-threshold {threshold:g} K")
        else:
            selected.append(ident)
    return selected, reasons


def _file_names(selected: list[str]) -> dict[str, str]:
    """Pool id → file-safe id (unique: a clash gets ``__<position>``)."""
    from betenet.phonons.batch import safe_id

    names, used = {}, set()
    for k, ident in enumerate(selected, 1):
        name = safe_id(ident)
        name = name if name not in used else f"{name}__{k}"
        used.add(name)
        names[ident] = name
    return names


def _structure_file(folder: Path, name: str) -> Path | None:
    from betenet.data.structures import STRUCTURE_SUFFIXES

    return next((folder / f"{name}{s}" for s in STRUCTURE_SUFFIXES if (folder / f"{name}{s}").is_file()), None)


def _sources(pool, wanted: set) -> dict:
    """Id → source (path or ASE Atoms) of the inputs ``wanted``, read from ``pool`` (one pass, stopping early)."""
    found = {}
    for ident, source, _ in pool:
        if ident in wanted and ident not in found:
            found[ident] = source
            if len(found) == len(wanted):
                break
    return found


def _write_inputs(sources: dict, names: dict[str, str], folder: Path) -> None:
    """Each input of ``names`` into ``folder`` as ``<file-safe id>.<suffix>``: its file copied, or written as
    extxyz (an entry of a multi-structure file, or a format the folder reader does not know)."""
    from ase.io import write

    from betenet.data.structures import STRUCTURE_SUFFIXES, load_structure
    from betenet.files import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    for ident, name in names.items():
        source = sources[ident]
        if _structure_file(folder, name) is not None:
            continue
        if isinstance(source, Path) and source.suffix.lower() in STRUCTURE_SUFFIXES:
            with atomic_path(folder / f"{name}{source.suffix.lower()}") as tmp:
                shutil.copyfile(source, tmp)
            continue
        if isinstance(source, (str, Path)):
            from pymatgen.io.ase import AseAtomsAdaptor

            source = AseAtomsAdaptor.get_atoms(load_structure(source, name=str(source)))
        with atomic_path(folder / f"{name}.extxyz") as tmp:
            write(tmp, source, format="extxyz")


def _given(selected: list[str], kind: str, labels_path) -> set[str]:
    """The selected inputs whose labels file (``--labels``) already holds the ``kind`` site PhDOS."""
    if not labels_path or kind == "none":
        return set()
    from betenet.data.sources.directory import read_labels_table
    from betenet.phonons.settings import kind_columns

    table, column = read_labels_table(labels_path), kind_columns(kind)[1]
    return {i for i in selected if (table.get(i) or {}).get(column) is not None}


def _pool_of(ids: list[str], sources: dict):
    """The inputs ``ids`` (their pool ids and sources) as a pool of their own."""
    from betenet.inference.stream import InputPool

    items = [(i, sources[i], None) for i in ids]
    return InputPool(parts=[items], total=len(items), files=[s for _, s, _ in items if isinstance(s, Path)],
                     description=["screen stage 2", *ids])


def _phonons(folder: Path, settings, kind: str, options, run: bool = True) -> dict[str, dict]:
    """Run the phonons engine on ``folder/inputs`` into ``folder/phonons`` (``run`` False: read what an earlier
    run wrote); file-safe id → its report row."""
    from betenet.phonons.batch import REPORT_FILE, run_batch

    out = folder / PHONONS_DIR
    try:
        if run:
            run_batch([str(folder / INPUTS_DIR)], out, settings, kinds=(kind,), cache_dir=options.phonons_cache,
                      jobs=options.jobs, threads=options.threads if options.jobs > 1 else None,
                      progress_every=options.progress_every, progress_stream=options.progress_stream,
                      cluster=options.cluster, cluster_options=options.cluster_options)
    except InputError as err:  # no structure succeeded: each has its reason in the report
        if not (err.subject == str(out) and "no structure succeeded" in err.reason):
            raise
    rows = json.loads((out / REPORT_FILE).read_text())["rows"]
    return {str(r["id"]): r for r in rows}


def _predict(ensemble, inputs, csv_path: Path, labels, options, complete: bool):
    """Stage 2's prediction table of the inputs ``inputs()`` into ``csv_path`` (only read back when ``complete``)."""
    from betenet.inference.predict import predict_files, read_table

    if not complete:
        predict_files(ensemble, inputs(), csv_path, labels=labels, mu_star=options.mu_star,
                      batch_size=options.batch_size, device=options.device, chunk_size=options.chunk_size,
                      progress=options.progress, progress_every=options.progress_every,
                      progress_stream=options.progress_stream, label="screen stage 2")
    return read_table(csv_path, columns=READ_COLUMNS)


def run_stage2(ensemble, pool, stage1, out, options, labels_path=None, complete: bool = False) -> Stage2:
    """Stage 2 (module docstring) of the stage-1 ranking ``stage1`` (:func:`~betenet.inference.candidates.ranked`)
    of ``pool`` with ``ensemble``, in ``out/stage2``; ``options``: a
    :class:`~betenet.inference.screen.ScreenOptions`. Inputs whose ``labels_path`` (``--labels``) holds the
    PhDOS already, and every input when the ensemble reads none, are predicted as they are
    (``stage2/predictions_given.csv``); the others get their phonons computed first. ``complete``: an earlier
    run with the same fingerprint finished stage 2, so only its files are read."""
    import pandas as pd

    folder = Path(out) / STAGE2_DIR
    fraction = stage2_fraction(options.stage2_fraction, options.stage1_threshold)
    kind, settings = phonon_settings(ensemble, options.potential, options.device, options.max_atoms)
    selected, reasons = select(stage1, fraction, options.stage1_threshold)
    given = _given(selected, kind, labels_path) if settings is not None else set(selected)
    direct = [i for i in selected if i in given]
    names = _file_names([i for i in selected if i not in given])
    sources = {} if complete or not selected else _sources(pool, set(selected))
    if names and not complete:
        _write_inputs(sources, names, folder / INPUTS_DIR)
    phonon_rows = _phonons(folder, settings, kind, options, not complete) if names else {}
    computed, files = [], []
    for ident, name in names.items():
        row = phonon_rows.get(name)
        path = _structure_file(folder / PHONONS_DIR / "structures", name)
        if row is None or row["status"] not in PHONONS_OK or path is None:
            why = "no row in the phonons report" if row is None else f"{row['status']}: {row.get('reason', '')}" \
                if row["status"] not in PHONONS_OK else "its structure file is missing from the phonons folder"
            reasons[ident] = ("phonons", why)
            continue
        computed.append(ident)
        files.append(path)
    tables = []
    if direct:
        tables.append(_predict(ensemble, lambda: _pool_of(direct, sources), folder / GIVEN_CSV,
                               labels_path if settings is not None else None, options, complete))
    if computed:
        table = _predict(ensemble, lambda: [str(f) for f in files], folder / PREDICTIONS_CSV,
                         folder / PHONONS_DIR / "labels.json", options, complete)
        back = {names[i]: i for i in computed}
        table["id"] = [back.get(i, i) for i in table["id"]]
        tables.append(table)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=READ_COLUMNS)
    for ident, status in zip(table["id"], table["status"]):
        if status != "ok":
            reasons[ident] = ("stage 2", status)
    ranking = ranked(table)
    statuses = [r["status"] for r in phonon_rows.values()]
    summary = {"stage2_kind": kind, "stage2_fraction": fraction, "stage1_threshold_K": options.stage1_threshold,
               "sent_to_stage2": len(selected), "phdos_from_labels": len(direct) if settings is not None else 0,
               "phonons_ok": sum(s in PHONONS_OK for s in statuses), "phonons_skipped": statuses.count("skipped"),
               "phonons_failed": statuses.count("failed"), "ranked_stage2": len(ranking)}
    if len(ranking):
        summary["top_stage2"] = ranking["id"][0]
    report = {"ensemble": ensemble.label, "members": ensemble.names, "phonons": None if settings is None else {
        "kind": kind, "folder": str(folder / PHONONS_DIR), **settings.key()}, **summary}
    return Stage2(ranking, reasons, summary, report)
