"""The data-source registry: every source (``demo``, ``directory``, ``release``, ``bee_net``, or one of
your own) is registered once, as a :class:`DataSource`, by the module that reads it.

The data module (which folder, which reader, which published bootstrap), the ``--data-source`` choices
of the command line, ensemble loading (which format a dataset folder has) and the run folder (the
member's data fingerprint, which settings belong to it) all ask this registry; none of them names a
source. An unknown name is refused with the list of known ones.

A source module registers itself when imported (``register_source(DataSource(...))``); the package
``betenet.data.sources`` imports each of its modules, so a new module there is found without another
edit, and a module elsewhere registers by being imported. Recipe: README.md, Contributing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from betenet.data.sources.base import SourceData, fingerprint
from betenet.errors import InputError

__all__ = ["DataSource", "register_source", "unregister_source", "get_source", "find_source", "source_names",
           "detect_source", "folder_root", "folder_fingerprint", "release_format_bootstrap"]


def folder_root(settings: Mapping) -> Path:
    """The dataset folder ``settings["root"]`` (``data.root``), which must be set and exist."""
    root = settings.get("root")
    if root is None:
        raise InputError(settings.get("source", "data.source"), "data.root must be set for this source")
    if not Path(root).is_dir():
        raise InputError(root, "dataset folder not found")
    return Path(root)


def folder_fingerprint(settings: Mapping) -> str:
    """The names and contents of every file under ``data.root`` (:func:`~betenet.data.sources.base.fingerprint`):
    a copy of the folder elsewhere is the same data."""
    root = settings.get("root")
    if root is None or not Path(root).exists():
        raise InputError(root if root is not None else "data.root", "dataset folder not found")
    return fingerprint(Path(root))


def release_format_bootstrap(indices: Path, k: int, metadata: dict) -> tuple[list[str], list[str] | None]:
    """Member ``k`` of a release-format ``indices/`` folder (``idx_train_V2_k.txt``, ``idx_valid_V2_k.txt``)."""
    from betenet.data.splits import release_bootstrap

    member = release_bootstrap(indices, k)
    return [str(i) for i in member.drawn], [str(i) for i in member.val_ids]


@dataclass(frozen=True)
class DataSource:
    """One data source.

    - ``read(root, **options)`` → :class:`~betenet.data.sources.base.SourceData`: the reader;
      ``options`` are ``data.source_options``, of which it takes those named in ``options``.
    - ``root(settings)`` → the folder ``read`` gets, from the data settings (``root``, ``cache_dir``,
      ``source_options`` and the source's own ``settings``); default: ``data.root``, which must exist.
    - ``detect(folder)`` → how surely a dataset folder is in this format (``betenet evaluate --data``
      without ``--data-source``): False or 0 for not, True (1) or a higher number for a more specific
      layout (BEE-NET's ``database.json``, 2, over any ``database.json``, 1); a ``fallback`` source is
      chosen only when no other claims the folder.
    - ``fingerprint(settings)`` → what the member's data is (the run folder's ``member.json``);
      default: the names and contents of the folder's files.
    - ``bootstrap(indices, k, metadata)`` → member ``k``'s published draw and validation ids
      (``data.bootstrap=release``); default: the release's ``indices/`` format.
    - ``settings``: top-level ``data.*`` keys that belong to this source alone (the demo's size and seed):
      part of a member only when it is the member's source.
    - ``config``: its file ``conf/data/<config>.yaml`` (default: the name); ``needs_root``: whether
      ``data.root`` must be given.
    """

    name: str
    read: Callable[..., SourceData]
    root: Callable[[Mapping], Path] = folder_root
    detect: Callable[[Path], bool | int] | None = None
    fallback: bool = False
    fingerprint: Callable[[Mapping], str] = folder_fingerprint
    bootstrap: Callable[[Path, int, dict], tuple[list[str], list[str] | None]] = release_format_bootstrap
    options: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    config: str | None = None
    needs_root: bool = True
    description: str = ""

    @property
    def config_name(self) -> str:
        return self.config or self.name

    def check_options(self, options: Mapping | None) -> dict:
        """The ``data.source_options`` as a dict; ``InputError`` for one this source does not take."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            takes = ", ".join(self.options) if self.options else "none"
            raise InputError(f"data.source_options.{unknown[0]}", f"source {self.name} takes no such option "
                                                                  f"(it takes: {takes})")
        return options

    def read_folder(self, root: Path, options: Mapping | None = None) -> SourceData:
        """``read`` with the ``data.source_options`` this source takes (:meth:`check_options`)."""
        return self.read(root, **self.check_options(options))


_SOURCES: dict[str, DataSource] = {}


def register_source(source: DataSource, replace: bool = False) -> DataSource:
    """Add ``source`` to the registry (once: another source of the same name is refused unless ``replace``)."""
    known = _SOURCES.get(source.name)
    if known is not None and not replace and _origin(known) != _origin(source):
        raise ValueError(f"data source {source.name!r} is registered already (by {_origin(known)})")
    _SOURCES[source.name] = source
    return source


def _origin(source: DataSource) -> str:
    """Where a source's reader is defined (a module imported again registers the same source again)."""
    return f"{getattr(source.read, '__module__', '?')}.{getattr(source.read, '__qualname__', '?')}"


def unregister_source(name: str) -> None:
    """Remove a source (tests that register a toy one)."""
    _SOURCES.pop(name, None)


def source_names() -> tuple[str, ...]:
    """The registered sources, sorted."""
    return tuple(sorted(_SOURCES))


def find_source(name) -> DataSource | None:
    """The source registered as ``name``, or None."""
    return _SOURCES.get(str(name))


def get_source(name) -> DataSource:
    """The source registered as ``name``; ``InputError`` naming the known ones otherwise."""
    source = find_source(name)
    if source is None:
        raise InputError(name, f"unknown data source; use one of {', '.join(source_names())}")
    return source


def detect_source(path) -> str:
    """The source whose ``detect`` claims the dataset folder ``path`` most surely (the ``fallback`` one when
    no other claims it); ``InputError`` when none does, or several equally."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "dataset folder not found")
    claims = {s.name: (0 if s.fallback else 1, float(s.detect(path) or 0)) for s in _SOURCES.values()
              if s.detect is not None}
    claims = {name: rank for name, rank in claims.items() if rank[1] > 0}
    if not claims:
        raise InputError(path, f"not a dataset folder of any known source ({', '.join(source_names())})")
    best = max(claims.values())
    names = sorted(name for name, rank in claims.items() if rank == best)
    if len(names) > 1:
        raise InputError(path, f"claimed by several data sources ({', '.join(names)}): name one")
    return names[0]
