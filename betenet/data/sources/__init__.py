"""Dataset sources: each reads one on-disk format into a :class:`SourceData` of :class:`Entry`
objects (structure, raw spectra, labels) plus its split and the entries it had to reject.

- :func:`load_release`: the published BETE-NET release (``database.json`` + ``structures/`` +
  ``indices/``);
- :func:`load_bee_net`: BEE-NET's Alexandria a2F database (``database.json`` + ``structures/`` +
  ``indices/``, another schema);
- :func:`load_directory`: the generic folder format (``structures/`` + ``labels.csv|json``),
  also used for the cached demo set.
"""

from betenet.data.sources.base import Entry, SourceData, fingerprint
from betenet.data.sources.bee_net import load_bee_net
from betenet.data.sources.directory import load_directory
from betenet.data.sources.release import load_release

__all__ = ["Entry", "SourceData", "fingerprint", "load_bee_net", "load_directory", "load_release"]
