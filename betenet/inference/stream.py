"""A prediction pool read in chunks, and its outputs appended per chunk so that a run can stop anywhere
and go on: what streaming ``betenet predict`` (:func:`betenet.inference.predict.predict_files`) uses.

Inputs (:func:`open_inputs`), in the order given:

* structure files, folders and glob patterns, as :func:`betenet.data.structures.gather_inputs` reads
  them (ids are file stems; when two inputs share one, both use their path; a dataset folder's labels
  file is found);
* an extxyz file with several structures: one input per frame, id ``<stem>:<k>`` (k from 0), read one
  frame after another (a file with one frame is an ordinary structure file, id ``<stem>``);
* an ASE database (``.db``): one input per row, id ``<stem>:<row id>``;
* a list file (``.txt`` or ``.list``): one path or glob per line, relative to the list file's folder
  (blank lines and lines starting with ``#`` are skipped).

Only the ids and paths of the pool are listed up front; structures are read, graphed and predicted a
chunk at a time, so memory does not grow with the pool.

Outputs (:class:`PartialRun`): while a run is under way its results live in ``<out>.partial/``:
``rows.csv`` (the CSV's header and rows, appended per chunk), ``spectra.jsonl`` (one JSON line per
predicted entry), ``ids.txt`` (the ids done, one per line) and ``manifest.json`` (rewritten atomically
after each chunk: the run's fingerprint, the running counts and the byte length of each appended file,
so a chunk half written when the process died is cut off again). A run started again with the same
ensemble, inputs and options continues after the last whole chunk, says how many inputs it carried
over, and at the end writes the final CSV and spectra JSON (each atomically) exactly as one
uninterrupted run writes them, then removes the folder. A run with another fingerprint starts afresh.
Two runs into one ``--out`` at once are refused (:func:`betenet.locks.folder_lock`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from betenet.errors import InputError
from betenet.files import atomic_path, to_jsonable, write_json

__all__ = ["InputPool", "open_inputs", "chunked", "PartialRun", "LIST_SUFFIXES", "DATABASE_SUFFIXES",
           "DEFAULT_CHUNK_SIZE"]

#: Suffixes of list files and of ASE databases; extxyz files may hold many frames.
LIST_SUFFIXES = (".txt", ".list")
DATABASE_SUFFIXES = (".db",)
MULTI_FRAME_SUFFIXES = (".extxyz", ".xyz")
#: Inputs per chunk (read, graphed, predicted and appended together).
DEFAULT_CHUNK_SIZE = 256
#: The partial folder of an output ``out``: ``<out>.partial``; its files.
PARTIAL_SUFFIX = ".partial"
ROWS_FILE, SPECTRA_FILE, IDS_FILE, MANIFEST_FILE = "rows.csv", "spectra.jsonl", "ids.txt", "manifest.json"
LOCK_NAME = "predict_lock"
#: Version of the partial folder's layout (a folder of another version is started afresh).
PARTIAL_VERSION = 1


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
def _list_file_lines(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the list file ({exc})") from None
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line if Path(line).is_absolute() else str(path.parent / line))
    return out


def _count_xyz_frames(path: Path) -> int | None:
    """Frames of an (ext)xyz file by its atom-count lines, without parsing them; None when the file is
    not laid out that way (it is then read as one structure file, which reports what is wrong)."""
    n = 0
    try:
        with open(path) as fh:
            while True:
                line = fh.readline()
                if not line:
                    return n
                if not line.strip():
                    continue
                natoms = int(line.split()[0])
                fh.readline()
                for _ in range(natoms):
                    if not fh.readline():
                        return None
                n += 1
    except (OSError, ValueError, UnicodeDecodeError):
        return None


@dataclass
class _Container:
    """A file of many structures: ``kind`` extxyz or db, ``count`` entries."""

    kind: str
    path: Path
    base: str
    count: int


@dataclass
class InputPool:
    """The inputs of a prediction (module docstring): ``parts`` in order (lists of ``(id, path, reason)``
    items, or multi-structure files read lazily), ``total`` inputs, ``labels`` (a dataset folder's labels
    file, if one was given) and ``files`` (every file read: structure, list and database files)."""

    parts: list = field(default_factory=list)
    total: int = 0
    labels: Path | None = None
    files: list[Path] = field(default_factory=list)
    description: list[str] = field(default_factory=list)
    window: tuple[int, int] | None = None  # (start, stop) positions of a :meth:`select`ed share

    def __iter__(self):
        """``(id, source, reason)`` per input, in order: ``source`` a path, or ASE Atoms for an entry of a
        multi-structure file."""
        items = self._all()
        yield from items if self.window is None else itertools.islice(items, *self.window)

    def _all(self):
        for part in self.parts:
            if isinstance(part, _Container):
                yield from _container_items(part)
            else:
                yield from part

    def select(self, start: int, stop: int) -> "InputPool":
        """The inputs at positions ``start`` to ``stop`` (excluded) of this pool, with the ids they have in
        the whole pool (one array task's share of ``betenet screen --cluster``); its :func:`fingerprint`
        names the range. The inputs before ``start`` are passed over without reading their structures
        (frames of a multi-structure file are parsed on the way)."""
        if self.window is not None:
            raise ValueError("select() of a pool that is already a selection")
        start, stop = max(0, int(start)), min(int(stop), self.total)
        return replace(self, window=(start, stop), total=max(0, stop - start),
                       description=[*self.description, f"inputs {start}:{stop}"])


def _container_items(c: _Container):
    if c.kind == "db":
        import ase.db

        db = ase.db.connect(str(c.path))
        for row in db.select():
            yield f"{c.base}:{row.id}", row.toatoms(), None
        return
    from ase.io import iread

    k = 0
    try:
        for atoms in iread(str(c.path), index=":", format="extxyz"):
            yield f"{c.base}:{k}", atoms, None
            k += 1
    except Exception as exc:  # a damaged frame: it and the rest of the file get the reason
        reason = " ".join(f"cannot read frame {k} of {c.path.name}: {type(exc).__name__}: {exc}".split())[:300]
        for j in range(k, c.count):
            yield f"{c.base}:{j}", None, reason


def open_inputs(inputs) -> InputPool:
    """List the inputs of a prediction (module docstring) without reading the structures."""
    from betenet.data.structures import gather_inputs

    args: list[str] = []
    pool = InputPool()
    for text in map(str, inputs):
        path = Path(text)
        if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            pool.files.append(path)
            args += _list_file_lines(path)
        else:
            args.append(text)
    parts: list = []
    for text in args:
        path = Path(text)
        suffix = path.suffix.lower()
        count = None
        if path.is_file() and suffix in DATABASE_SUFFIXES:
            import ase.db

            try:
                count = ase.db.connect(str(path)).count()
            except Exception as exc:
                parts.append([(text, None, " ".join(f"cannot open the ASE database: {type(exc).__name__}: "
                                                    f"{exc}".split())[:300])])
                continue
            parts.append(_Container("db", path, path.stem, count))
        elif path.is_file() and suffix in MULTI_FRAME_SUFFIXES and (count := _count_xyz_frames(path) or 0) > 1:
            parts.append(_Container("extxyz", path, path.stem, count))
        else:
            items, labels = gather_inputs([text])
            pool.labels = pool.labels or labels
            parts.append(items)
            continue
        pool.files.append(path)
    # ids shared by two inputs: both use their path (as gather_inputs does within one call)
    counts: dict[str, int] = {}
    for part in parts:
        if isinstance(part, _Container):
            counts[part.base] = counts.get(part.base, 0) + 1
        else:
            for ident, _, _ in part:
                counts[ident] = counts.get(ident, 0) + 1
    for part in parts:
        if isinstance(part, _Container):
            if counts[part.base] > 1:
                part.base = str(part.path)
            pool.total += part.count
        else:
            part[:] = [(str(p) if counts[i] > 1 and p is not None else i, p, r) for i, p, r in part]
            pool.files += [Path(p) for _, p, _ in part if p is not None]
            pool.total += len(part)
    pool.parts = parts
    pool.description = list(map(str, inputs))
    return pool


def chunked(items, size: int):
    """Lists of up to ``size`` consecutive items of the iterable ``items``."""
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------
def _file_identity(path: Path) -> list:
    try:
        st = path.stat()
        return [str(path.resolve()), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(path), None, None]


def fingerprint(pool: InputPool, ensemble_files, options: dict) -> str:
    """What makes two runs the same: the inputs as given (resolved), the identity (path, size, time) of
    every input file and member checkpoint, and the options that change a number."""
    h = hashlib.sha256()
    h.update(json.dumps({"inputs": [str(Path(t).resolve()) if Path(t).exists() else t for t in pool.description],
                         "total": pool.total, "options": to_jsonable(options, True)}, sort_keys=True).encode())
    for path in list(pool.files) + [Path(p) for p in ensemble_files]:
        h.update(json.dumps(_file_identity(Path(path))).encode())
    return h.hexdigest()


def partial_dir(out) -> Path:
    """``<out>.partial`` (beside the CSV ``out``)."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


class PartialRun:
    """The partial outputs of a streaming prediction into ``out`` (module docstring). Use as a context
    manager (holds the folder's lock); :attr:`done_ids`, :attr:`counts` and :attr:`header` are what an
    earlier run with the same ``fingerprint`` left; :meth:`append` adds a chunk; :meth:`finish` writes the
    final files and removes the folder."""

    def __init__(self, out, fingerprint: str):
        self.out = Path(out)
        self.folder = partial_dir(out)
        self.fingerprint = fingerprint
        self.done_ids: set[str] = set()
        self.counts: dict = {}
        self.header: dict | None = None
        self.carried = 0
        self._lock = None

    def __enter__(self) -> "PartialRun":
        from betenet.locks import folder_lock

        self._lock = folder_lock(self.folder, LOCK_NAME, "another `betenet predict` run into this --out")
        self._lock.__enter__()
        self._load()
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.__exit__(*exc)
            self._lock = None

    def _path(self, name: str) -> Path:
        return self.folder / name

    def _reset(self) -> None:
        for name in (ROWS_FILE, SPECTRA_FILE, IDS_FILE, MANIFEST_FILE):
            self._path(name).unlink(missing_ok=True)
        self.done_ids, self.counts, self.header, self.carried = set(), {}, None, 0

    def _load(self) -> None:
        try:
            manifest = json.loads(self._path(MANIFEST_FILE).read_text())
        except (OSError, ValueError):
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("version") != PARTIAL_VERSION or \
                manifest.get("fingerprint") != self.fingerprint:
            self._reset()
            return
        sizes = manifest.get("bytes", {})
        for name in (ROWS_FILE, SPECTRA_FILE, IDS_FILE):  # cut off a chunk the process died while appending
            path = self._path(name)
            size = int(sizes.get(name, 0))
            if not path.exists() or path.stat().st_size < size:
                self._reset()
                return
            with open(path, "r+b") as fh:
                fh.truncate(size)
        self.done_ids = set(self._path(IDS_FILE).read_text().splitlines())
        self.counts = dict(manifest.get("counts", {}))
        self.header = manifest.get("header")
        self.carried = len(self.done_ids)

    def append(self, csv_text: str, spectra_entries: list, ids: list[str], counts: dict, header: dict | None) -> None:
        """Add one chunk: its CSV text (with the header line for the first chunk of the run), its predicted
        entries (dicts, written as JSON lines), the ids it covered and the running ``counts``; ``header``:
        the spectra file's run-level fields (the first chunk that predicted something sets them)."""
        with open(self._path(ROWS_FILE), "a", newline="") as fh:
            fh.write(csv_text)
        with open(self._path(SPECTRA_FILE), "a") as fh:
            for entry in spectra_entries:
                fh.write(json.dumps(to_jsonable(entry, True), allow_nan=False) + "\n")
        with open(self._path(IDS_FILE), "a") as fh:
            fh.writelines(f"{i}\n" for i in ids)
        for name in (ROWS_FILE, SPECTRA_FILE, IDS_FILE):
            with open(self._path(name), "rb+") as fh:
                os.fsync(fh.fileno())
        self.done_ids.update(ids)
        self.counts = dict(counts)
        if self.header is None and header is not None:
            self.header = header
        write_json(self._path(MANIFEST_FILE), {
            "version": PARTIAL_VERSION, "fingerprint": self.fingerprint, "counts": self.counts,
            "header": self.header, "out": str(self.out),
            "bytes": {n: self._path(n).stat().st_size for n in (ROWS_FILE, SPECTRA_FILE, IDS_FILE)}},
            nan_as_null=True)

    @property
    def has_rows(self) -> bool:
        path = self._path(ROWS_FILE)
        return path.exists() and path.stat().st_size > 0

    def finish(self, spectra_path: Path, default_header: dict) -> None:
        """Write the final CSV (``out``) and spectra JSON (``spectra_path``: the run-level fields, then
        ``entries`` in order, as one ``json.dumps`` of the whole would), then remove the folder."""
        with atomic_path(self.out) as tmp:
            shutil.copyfile(self._path(ROWS_FILE), tmp)
        header = dict(self.header or default_header)
        header.pop("entries", None)
        head = json.dumps(to_jsonable({**header, "entries": []}, True), allow_nan=False)
        assert head.endswith("[]}")
        with atomic_path(spectra_path) as tmp, open(tmp, "w") as dst, open(self._path(SPECTRA_FILE)) as src:
            dst.write(head[:-2])
            for k, line in enumerate(src):
                dst.write((", " if k else "") + line.rstrip("\n"))
            dst.write("]}\n")
        self.__exit__(None, None, None)
        shutil.rmtree(self.folder, ignore_errors=True)
