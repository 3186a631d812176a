"""On-disk cache of computed site PhDOS, keyed on the structure's content, the PhDOS kind and the
settings (potential name and version included), so no structure is computed twice for the same
recipe, whether by ``betenet phonons``, training with ``site_dos_source=mlip`` or prediction.

Layout: ``<root>/<key[:2]>/<key>.npz`` (arrays, a JSON header and the text of phonopy's
``phonopy_params.yaml``, compressed; entries written before that text was kept lack it), written to a
temporary file and renamed into place, so a reader never sees half a file; an unreadable entry counts as
a miss and is recomputed. The default root is ``$BETENET_CACHE/phonons`` (``~/.cache/betenet/phonons``).

The structure enters the key through :func:`betenet.data.structures.structure_hash` (species, lattice
and coordinates in site order): the per-site rows follow that order, so a reordered structure is a
different key.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from betenet.data.structures import structure_hash
from betenet.files import atomic_path, cache_root
from betenet.phonons.calculate import SitePhDOS
from betenet.phonons.settings import PhononSettings, kind_columns

log = logging.getLogger(__name__)

#: Bump when the computation changes so that old entries are not reused.
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``phonons/`` of :func:`betenet.files.cache_root`."""
    return cache_root() / "phonons"


def cache_key(structure, kind: str, settings: PhononSettings) -> str:
    """The cache key of ``kind`` PhDOS of ``structure`` under ``settings`` (device excluded)."""
    kind_columns(kind)
    payload = dict(version=CACHE_VERSION, structure=structure_hash(structure), kind=kind,
                   supercell=settings.supercell_diag(kind, structure.lattice.matrix), settings=settings.key())
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class PhDOSCache:
    """Get / put :class:`~betenet.phonons.calculate.SitePhDOS` results by key under ``root``."""

    def __init__(self, root=None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> SitePhDOS | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                relaxed = None
                if header.get("relaxed"):
                    from pymatgen.core import Structure

                    relaxed = Structure.from_dict(header["relaxed"])
                params = str(data["phonopy_params"]) if "phonopy_params" in data.files else None
                return SitePhDOS(freq_meV=data["freq_meV"], site_dos=data["site_dos"],
                                 min_freq_meV=float(header["min_freq_meV"]),
                                 max_freq_meV=float(header["max_freq_meV"]), gamma_meV=data["gamma_meV"],
                                 supercell=tuple(header["supercell"]), info=dict(header["info"]), relaxed=relaxed,
                                 phonopy_params=params)
        except Exception as exc:  # a damaged entry is recomputed, not fatal
            log.warning("phonon cache entry %s unreadable (%s: %s); recomputing", path, type(exc).__name__, exc)
            return None

    def put(self, key: str, result: SitePhDOS) -> Path:
        path = self.path(key)
        header = dict(min_freq_meV=result.min_freq_meV, max_freq_meV=result.max_freq_meV,
                      supercell=list(result.supercell), info=result.info,
                      relaxed=result.relaxed.as_dict() if result.relaxed is not None else None)
        extra = {} if result.phonopy_params is None else {"phonopy_params": np.array(result.phonopy_params)}
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # compressed: the phonopy text is most of it
            np.savez_compressed(fh, freq_meV=result.freq_meV, site_dos=result.site_dos, gamma_meV=result.gamma_meV,
                                header=np.array(json.dumps(header, default=float)), **extra)
        return path
