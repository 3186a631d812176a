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
    out/phonopy/<id>/<kind>/     phonopy's own phonopy_params.yaml (force constants included; read by
                                 phonopy.load / phonopy-load) and, with --plot, band_dos.png
                                 (:mod:`betenet.phonons.phonopy_files`)
    out/phonons_report.json      this run: one row per input with its status and, if it failed or was
                                 skipped, why

Order and parallelism: the structures still to compute go largest first (atoms in their supercells),
so the longest do not finish last; with ``jobs`` > 1 they are spread over that many worker processes,
each loading the potential once (:mod:`betenet.phonons.workers`; one torch thread each unless
``threads``), and every displaced supercell of a structure goes through the potential in batches
(:mod:`betenet.phonons.forces`). Structures with more atoms than ``settings.max_atoms`` are skipped with
a one-line reason. Progress: a bar on a terminal, else a line every ``progress_every`` structures
(:class:`betenet.progress.ProgressLine`), and one line per structure that failed or was skipped. With
``cluster`` the same structures run as a submitit job array instead (:mod:`betenet.phonons.cluster`).

Resumable: a structure whose ``phonons/<id>.json`` already holds each requested kind for the same
structure and settings, with its phonopy files, is not recomputed (and results are also in the shared
cache). Each finished structure's files are written atomically at once (by the worker that computed
it); ``labels.json`` is rebuilt from them every ``FLUSH_SECONDS`` or more (never more than a tenth of
the time) and at the end, so an interrupted run loses nothing but the structures in progress.
A structure that fails (unreadable file, partial occupancy, unknown element, element the potential
does not cover, calculation error, a worker process that died on it) gets a reason and the others go
on. An output folder made with other settings is refused rather than mixed, and a folder another run
is writing (``out/phonons_lock``) is refused until that run ends.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
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
#: Seconds between rewrites of labels.json during a run (each structure's own file is written at once); the
#: interval grows to ten times the last rewrite's duration for large folders.
FLUSH_SECONDS = 30.0
#: Row statuses, in the order the summary lists them; a run succeeded when some row is one of the first three.
STATUSES = ("computed", "cached", "done", "skipped", "failed")
#: Labels columns computed here (never carried over from an input dataset).
_COMPUTED = tuple(c for k in KINDS for c in kind_columns(k)) + ("min_phonon_freq_meV", "structure_hash")


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
    if state.get("labels_structure_hash"):  # of the structure file the PhDOS belong to (the relaxed one, if relaxed)
        rec["structure_hash"] = state["labels_structure_hash"]
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


def _kind_complete(out: Path, state: dict, kind: str, key: str, plot: bool) -> bool:
    """Whether ``state`` holds ``kind`` under ``key`` with its phonopy files (and figure, with ``plot``)."""
    entry = state.get("kinds", {}).get(kind, {})
    if entry.get("key") != key:
        return False
    files = entry.get("phonopy") or {}
    wanted = ("params", "plot") if plot else ("params",)
    return all(files.get(w) and (out / files[w]).is_file() for w in wanted)


def _todo_kinds(out: Path, state: dict, structure, kinds, settings: PhononSettings, plot: bool) -> list[str]:
    """The kinds of ``structure`` still to compute (or to take from the cache) given its state file."""
    if state.get("structure_hash") != structure_hash(structure) or \
            not (out / state.get("structure_file", "-")).is_file():
        return list(kinds)  # a new structure, or its structure file gone: redo it (from the cache) all
    return [k for k in kinds if not _kind_complete(out, state, k, cache_key(structure, k, settings), plot)]


def _title(eid: str, structure, kind: str, result, settings: PhononSettings) -> str:
    from betenet.phonons.potentials import get_potential

    cells = "×".join(map(str, result.supercell))
    return (f"{eid} ({structure.composition.reduced_formula}): {get_potential(settings.potential).model}, "
            f"{kind} PhDOS, {cells} supercell")


def _work(out: Path, task: dict, kinds, provider: PhDOSProvider, plot: bool) -> dict:
    """Compute (or take from the cache) the missing kinds of one structure and write its files (structure,
    state, phonopy's); returns its report row. Errors of the structure become the row's reason."""
    from betenet.data.structures import load_structure

    from betenet.phonons.phonopy_files import write_files

    t0 = time.perf_counter()
    eid, path = task["id"], Path(task["path"])
    row = {"id": eid, "input": str(path)}
    try:
        structure = load_structure(path)
        state_path = out / STATE_DIR / f"{eid}.json"
        state = _read_state(state_path)
        todo = _todo_kinds(out, state, structure, kinds, provider.settings, plot)
        if state.get("structure_hash") != structure_hash(structure):
            state = {}
        statuses, relaxed = [], None
        for kind in todo:
            result, from_cache = provider.get(structure, kind, name=eid, phonopy=True)
            entry = _kind_state(cache_key(structure, kind, provider.settings), result)
            shown = result.relaxed or structure
            entry["phonopy"] = write_files(out, eid, kind, result, shown, plot,
                                           _title(eid, shown, kind, result, provider.settings),
                                           provider.settings.sigma_meV)
            state.setdefault("kinds", {})[kind] = entry
            relaxed = relaxed or result.relaxed
            statuses.append("cached" if from_cache else "computed")
        if todo:
            state.update(id=eid, input=str(path), structure_hash=structure_hash(structure), labels=task["labels"],
                         structure_file=_write_structure(out, eid, None if relaxed else path, relaxed or structure))
            # the hash a reader computes from the file written (read back: no rounding of its own can differ)
            state["labels_structure_hash"] = structure_hash(load_structure(out / state["structure_file"]))
            write_json(state_path, state, nan_as_null=True)
        main = state["kinds"].get("fine") or state["kinds"].get("coarse")
        status = "done" if not todo else "computed" if "computed" in statuses else "cached"
        row.update(status=status, min_phonon_freq_meV=main["min_freq_meV"])
    except PotentialUnavailable:
        raise
    except InputError as err:
        row.update(status="failed", reason=err.reason if err.subject in (eid, str(path)) else str(err))
    except Exception as exc:  # a bug or an OS error on one structure: report it, go on with the others
        log.debug("%s failed", eid, exc_info=True)
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        row.update(status="failed", reason=f"unexpected error ({reason})")
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


# -- worker processes (--jobs N): each builds its provider, and loads the potential, once ------------------
_WORKER: dict = {}


def _init_worker(out: str, kinds, settings: PhononSettings, cache_dir, plot: bool) -> None:
    provider = PhDOSProvider(settings, cache_dir)
    error = None
    try:
        provider.calculator  # load the potential now, once per worker
    except Exception as exc:  # raised from the first task (an initializer that raises breaks the pool)
        error = exc
    _WORKER.update(out=Path(out), kinds=list(kinds), provider=provider, plot=plot, error=error)


def _work_in_worker(task: dict) -> dict:
    if _WORKER.get("error") is not None:
        raise _WORKER["error"]
    return _work(_WORKER["out"], task, _WORKER["kinds"], _WORKER["provider"], _WORKER["plot"])


def _cluster_task(group: list, out: str, kinds, settings: PhononSettings, cache_dir, plot: bool,
                  workers: int) -> list:
    """One array task of ``--cluster`` (:mod:`betenet.phonons.cluster`): its structures, on ``workers``
    processes; returns ``[(task, row), ...]``."""
    import warnings

    from betenet.runtime import configure

    warnings.filterwarnings("ignore", category=UserWarning, module=r"pymatgen(\..*)?")
    configure(threads=1)
    if workers > 1 and len(group) > 1:
        from betenet.phonons.workers import run_tasks

        rows: list = []
        run_tasks(group, _work_in_worker, workers, on_done=lambda task, row: rows.append((task, row)),
                  on_crash=lambda task, why: rows.append((task, _failed_row(task, why))),
                  initializer=_init_worker, initargs=(out, kinds, settings, cache_dir, plot))
        return rows
    provider = PhDOSProvider(settings, cache_dir)
    return [(task, _work(Path(out), task, kinds, provider, plot)) for task in group]


def _failed_row(task: dict, reason: str) -> dict:
    return {"id": task["id"], "input": task["path"], "status": "failed", "reason": reason}


def run_batch(inputs, out, settings: PhononSettings, kinds=("coarse",), cache_dir=None, calculator=None,
              echo=None, *, jobs: int = 1, threads: int | None = None, plot: bool = False,
              progress_every: int | None = None, progress_stream=None, cluster: str | None = None,
              cluster_chunk: int | None = None, cluster_options=()) -> dict:
    """Compute the ``kinds`` site PhDOS of every structure in ``inputs`` (files, folders, globs, or a
    dataset folder with ``structures/`` and labels) into the folder ``out`` (module docstring).

    ``jobs``: worker processes (1: in this process, with ``calculator`` when given); ``threads``: torch
    threads of each worker (default 1). ``plot``: also each structure's band structure and DOS figure.
    ``echo(line)``, when given, gets one line per structure instead of the progress line (which goes to
    ``progress_stream``, default stderr). ``cluster`` (``local`` or ``slurm``): the structures to compute
    run as a submitit job array (:mod:`betenet.phonons.cluster`: ``jobs`` tasks locally, tasks of
    ``cluster_chunk`` structures on Slurm, resources from conf/cluster with ``cluster_options``).
    Returns a summary dict; raises ``InputError`` when nothing succeeded, when ``out`` is a file or cannot
    be written, or when another run holds ``out`` (:func:`betenet.locks.folder_lock`: two runs never
    write one folder), or at once for a missing optional package.
    """
    from betenet.locks import folder_lock

    if isinstance(jobs, bool) or int(jobs) != jobs or jobs < 1:
        raise InputError("--jobs", f"must be an integer >= 1, got {jobs!r}")
    if threads is not None and (int(threads) != threads or threads < 1):
        raise InputError("--threads", f"must be an integer >= 1 for the workers, got {threads!r}")
    resources = None
    if cluster is not None:
        from betenet.phonons.cluster import CLUSTERS, cluster_resources

        if cluster not in CLUSTERS:
            raise InputError(f"--cluster {cluster}", f"unknown; use one of {', '.join(CLUSTERS)}")
        if cluster_chunk is not None and (int(cluster_chunk) != cluster_chunk or cluster_chunk < 1):
            raise InputError("--cluster-chunk", f"must be an integer >= 1, got {cluster_chunk!r}")
        resources = cluster_resources(cluster_options, settings.device)
    with folder_lock(out, LOCK_FILE, "another `betenet phonons` run"):
        return _run_batch(inputs, Path(out), settings, kinds, cache_dir, calculator, echo, int(jobs), threads,
                          plot, progress_every, progress_stream, (cluster, cluster_chunk, resources))


class _Reporter:
    """The rows of a run by input position, the counts, the progress line or ``echo``, and the periodic
    rewrite of labels.json."""

    def __init__(self, out: Path, total: int, echo, every, stream):
        from betenet.progress import ProgressLine

        self.out, self.echo = out, echo
        self.rows: dict[int, dict] = {}
        self.counts = dict.fromkeys(STATUSES, 0)
        self.progress = None if echo is not None else ProgressLine(total, "phonons", every=every, stream=stream)
        self.interval, self.last_flush = FLUSH_SECONDS, time.monotonic()

    def add(self, index: int, row: dict) -> None:
        self.rows[index] = row
        self.counts[row["status"]] += 1
        detail = f" ({row['reason']})" if "reason" in row else f" in {row.get('seconds', 0):.1f} s"
        if self.echo is not None:
            self.echo(f"{row['id']}: {row['status']}{detail}")
        else:
            if "reason" in row:
                self.progress.note(f"{row['id']}: {row['status']}{detail}")
            self.progress.update(1, self.counts)
        if time.monotonic() - self.last_flush > self.interval:
            t = time.monotonic()
            write_labels(self.out)
            self.last_flush = time.monotonic()
            self.interval = max(FLUSH_SECONDS, 10 * (self.last_flush - t))

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()


def _run_batch(inputs, out: Path, settings: PhononSettings, kinds, cache_dir, calculator, echo, jobs, threads,
               plot, progress_every, progress_stream, on_cluster=(None, None, None)) -> dict:
    from betenet.data.plausibility import check_atom_count
    from betenet.data.sources.directory import read_labels_table
    from betenet.data.structures import gather_inputs, load_structure

    t_start = time.perf_counter()
    kinds = [k for k in KINDS if k in set(kinds)]
    if not kinds:
        raise InputError("kinds", f"nothing to compute; use one or more of {', '.join(KINDS)}")
    items, labels_path = gather_inputs(list(inputs))
    labels = read_labels_table(labels_path) if labels_path else {}
    _check_output(out, settings, kinds, [Path(t) for t in inputs if Path(t).is_dir()])

    report = _Reporter(out, len(items), echo, progress_every, progress_stream)
    tasks, seen = [], {}
    try:
        # plan in this process: what failed already, what is done, what is too large, and the size of the rest
        for index, (ident, path, reason) in enumerate(items):
            eid = safe_id(ident) if path is not None else ident
            row = {"id": eid, "input": str(path) if path is not None else ident}
            try:
                if reason is not None:
                    raise InputError(ident, reason)
                if eid in seen:
                    raise InputError(ident, f"same output id {eid!r} as input {seen[eid]}")
                seen[eid] = row["input"]
                structure = load_structure(path)
                try:
                    check_atom_count(structure, eid, settings.max_atoms, "--max-atoms")
                except InputError as err:
                    report.add(index, {**row, "status": "skipped", "reason": err.reason})
                    continue
                state = _read_state(out / STATE_DIR / f"{eid}.json")
                if not _todo_kinds(out, state, structure, kinds, settings, plot):
                    main = state["kinds"].get("fine") or state["kinds"].get("coarse")
                    report.add(index, {**row, "status": "done", "min_phonon_freq_meV": main["min_freq_meV"],
                                       "seconds": 0.0})
                    continue
                weight = len(structure) * sum(math.prod(settings.supercell_diag(k, structure.lattice.matrix))
                                              for k in kinds)
                tasks.append({"index": index, "id": eid, "path": str(path), "weight": weight,
                              "labels": _carried_labels(labels.get(ident))})
            except InputError as err:
                report.add(index, {**row, "status": "failed",
                                   "reason": err.reason if err.subject in (ident, eid, str(path)) else str(err)})
        tasks.sort(key=lambda t: (-t["weight"], t["index"]))  # largest first
        cluster, chunk, resources = on_cluster
        if cluster is not None and tasks:
            from betenet.phonons.cluster import CLUSTER_DIR, deal, n_groups, run_on_cluster

            groups = deal(tasks, n_groups(cluster, len(tasks), jobs, chunk))
            workers = 1 if cluster == "local" else int(resources.get("cpus_per_task") or 1)
            run_on_cluster(cluster, out / CLUSTER_DIR, groups, _cluster_task,
                           (str(out), kinds, settings, cache_dir, plot, workers),
                           on_done=lambda task, row: report.add(task["index"], row),
                           on_failed=lambda task, why: report.add(task["index"], _failed_row(task, why)),
                           resources=resources)
        elif jobs == 1 or len(tasks) <= 1:
            provider = PhDOSProvider(settings, cache_dir, calculator)
            for task in tasks:
                report.add(task["index"], _work(out, task, kinds, provider, plot))
        else:
            from betenet.phonons.workers import run_tasks

            run_tasks(tasks, _work_in_worker, jobs,
                      on_done=lambda task, row: report.add(task["index"], row),
                      on_crash=lambda task, why: report.add(task["index"], _failed_row(task, why)),
                      initializer=_init_worker, initargs=(str(out), kinds, settings, cache_dir, plot),
                      threads=threads or 1)
    finally:  # an interrupted run keeps every finished structure in labels.json
        report.close()
        n_labelled = write_labels(out)
    rows = [report.rows[i] for i in sorted(report.rows)]
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    report_path = out / REPORT_FILE
    write_json(report_path, {"settings": _recipe(settings), "kinds": kinds, "device": settings.device, "jobs": jobs,
                             "cluster": on_cluster[0], "counts": counts, "rows": rows}, indent=1, nan_as_null=True)
    summary = {"out": str(out), "labels": str(out / "labels.json"), "report": str(report_path),
               "potential": settings.potential, "kinds": ",".join(kinds), "jobs": jobs, "inputs": len(rows),
               **counts, "entries_in_folder": n_labelled, "phonopy_files": str(out / "phonopy"),
               "seconds": round(time.perf_counter() - t_start, 1)}
    succeeded = counts["computed"] + counts["cached"] + counts["done"]
    if rows and not succeeded:
        raise InputError(out, f"no structure succeeded ({counts['failed']} failed, {counts['skipped']} skipped; "
                              f"reasons in {report_path})")
    return summary
