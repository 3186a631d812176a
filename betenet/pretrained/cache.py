"""On-disk cache of pretrained site features, keyed on the structure's content (the phonon cache's
structure hash) and :meth:`FeatureSettings.key`, so no structure goes through the potential twice for
the same recipe. Layout: ``<root>/<key[:2]>/<key>.npy`` ([n_atoms, dim] float32), written to a
temporary file and renamed into place (:func:`betenet.files.atomic_path`); an unreadable entry is a miss. Default root:
``$BETENET_CACHE/features`` (``~/.cache/betenet/features``)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from betenet.files import atomic_path, cache_root
from betenet.data.structures import structure_hash
from betenet.pretrained.settings import FeatureSettings

log = logging.getLogger(__name__)

#: Bump when the extraction changes so that old entries are not reused.
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``features/`` of :func:`betenet.files.cache_root`."""
    return cache_root() / "features"


def feature_key(structure, settings: FeatureSettings) -> str:
    payload = dict(version=CACHE_VERSION, structure=structure_hash(structure), settings=settings.key())
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class FeatureCache:
    def __init__(self, root=None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str, n_atoms: int, dim: int) -> np.ndarray | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("feature cache entry %s unreadable (%s); recomputing", path, exc)
            return None
        if array.shape != (n_atoms, dim):
            log.warning("feature cache entry %s has shape %s, expected %s; recomputing", path, array.shape,
                        (n_atoms, dim))
            return None
        return array

    def put(self, key: str, array: np.ndarray) -> Path:
        path = self.path(key)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: np.save adds no suffix
            np.save(fh, np.asarray(array, dtype=np.float32))
        return path
