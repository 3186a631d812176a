"""Pretrained site features of structures: :class:`FeatureProvider` (cache first, then the model,
loaded once on the first miss) and :func:`features_for_entries`, which gives every dataset entry its
[n_atoms, dim] features and reports what it computed, took from the cache and could not do (an element
the potential does not cover: one line of reason per structure; the rest go on). Used by training
(``BetenetDataModule`` with ``features.model`` set), prediction and screening."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from betenet.errors import InputError
from betenet.phonons.potentials import PotentialUnavailable
from betenet.pretrained.cache import FeatureCache, feature_key
from betenet.pretrained.models import get_feature_model, invariants
from betenet.pretrained.settings import FeatureSettings

log = logging.getLogger(__name__)


class FeatureProvider:
    """Features under one :class:`FeatureSettings`; ``cache_dir=False`` disables the cache."""

    def __init__(self, settings: FeatureSettings, cache_dir=None):
        if not settings.enabled:
            raise InputError("features.model=none", "no feature model to compute with")
        self.settings = settings
        self.model = get_feature_model(settings.model)
        self.cache = None if cache_dir is False else FeatureCache(cache_dir)
        self._extractor = None
        self.computed = 0
        self.hits = 0

    @property
    def extractor(self):
        if self._extractor is None:
            log.info("loading feature model %s on %s", self.settings.model, self.settings.device)
            self._extractor = self.model.load(self.settings.device)
        return self._extractor

    def compute(self, structure, name: str = "structure") -> np.ndarray:
        """[n_atoms, dim] features of ``structure`` straight from the model (no cache)."""
        extractor = self.extractor
        if extractor.elements is not None:
            missing = sorted({site.specie.symbol for site in structure} - set(extractor.elements))
            if missing:
                raise InputError(name, f"element{'s' if len(missing) > 1 else ''} {', '.join(missing)} not covered "
                                 f"by {self.model.description.split(':')[0]}")
        try:
            raw = extractor(structure, self.settings.blocks)
        except PotentialUnavailable:
            raise
        except Exception as exc:  # the potential's own failure on a strange structure: one line, go on
            raise InputError(name, f"{self.settings.model} features failed ({type(exc).__name__}: {exc})") from None
        parts = [invariants(raw[b], self.model.block_irreps[b], self.settings.norms) for b in self.settings.blocks]
        out = np.concatenate(parts, axis=1)
        if not np.isfinite(out).all():
            raise InputError(name, f"{self.settings.model} features are not finite")
        return out

    def get(self, structure, name: str = "structure") -> tuple[np.ndarray, bool]:
        """``(features [n_atoms, dim], from_cache)``; failures raise ``InputError`` naming ``name``."""
        key = feature_key(structure, self.settings)
        if self.cache is not None:
            hit = self.cache.get(key, len(structure), self.settings.dim)
            if hit is not None:
                self.hits += 1
                return hit, True
        out = self.compute(structure, name)
        self.computed += 1
        if self.cache is not None:
            self.cache.put(key, out)
        return out.astype(np.float32), False


@dataclass
class FeatureReport:
    settings: FeatureSettings
    features: dict[str, np.ndarray] = field(default_factory=dict)
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        return {"model": self.settings.model, "computed": len(self.computed), "cached": len(self.cached),
                "failed": len(self.failed)}


def features_for_entries(entries, settings: FeatureSettings, cache_dir=None, *, provider: FeatureProvider | None = None,
                         progress: bool = False) -> FeatureReport:
    """Features of every entry (objects with ``id`` and ``structure``); failures listed with their reason."""
    provider = provider or FeatureProvider(settings, cache_dir)
    report = FeatureReport(settings=provider.settings)
    for entry in tqdm(list(entries), desc=f"features ({settings.model})", disable=not progress, leave=False):
        try:
            array, hit = provider.get(entry.structure, name=entry.id)
        except PotentialUnavailable:
            raise
        except InputError as err:
            report.failed[entry.id] = err.reason if err.subject == entry.id else str(err)
            continue
        report.features[entry.id] = array
        (report.cached if hit else report.computed).append(entry.id)
    log.info("pretrained features: %s", report.summary())
    return report
