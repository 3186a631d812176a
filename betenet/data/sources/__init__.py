"""Dataset sources: each reads one on-disk format into a :class:`SourceData` of :class:`Entry`
objects (structure, raw spectra, labels) plus its split and the entries it had to reject, and
registers itself in :mod:`.registry` (root, reader, detector, fingerprint, config).

- :mod:`.demo`: the synthetic demo set, generated and cached in the directory format;
- :func:`load_release`: the published BETE-NET release (``database.json`` + ``structures/`` +
  ``indices/``);
- :func:`load_bee_net`: BEE-NET's Alexandria a2F database (``database.json`` + ``structures/`` +
  ``indices/``, another schema);
- :func:`load_directory`: the generic folder format (``structures/`` + ``labels.csv|json``).

Every module of this package is imported here, so a new source module registers itself without an
edit elsewhere (README.md, Contributing).
"""

import importlib
import pkgutil

from betenet.data.sources.base import Entry, SourceData, fingerprint
from betenet.data.sources.registry import (DataSource, detect_source, find_source, get_source, register_source,
                                           source_names, unregister_source)

#: Modules of this package that are not sources.
_NOT_SOURCES = ("base", "registry")


def _import_source_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _NOT_SOURCES:
            importlib.import_module(f"{__name__}.{module.name}")


_import_source_modules()

from betenet.data.sources.bee_net import load_bee_net  # noqa: E402  (registered above)
from betenet.data.sources.directory import load_directory  # noqa: E402
from betenet.data.sources.release import load_release  # noqa: E402

__all__ = ["DataSource", "Entry", "SourceData", "detect_source", "find_source", "fingerprint", "get_source",
           "load_bee_net", "load_directory", "load_release", "register_source", "source_names", "unregister_source"]
