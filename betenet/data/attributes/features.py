"""Pretrained site features (:mod:`betenet.pretrained`: what a universal potential learned about each atom),
``features.dim`` columns after the element block, the same numbers as inputs and attributes.

They are on when ``features.model`` is not ``none``. The data module's ``prepare`` step computes them for
every entry at once through the ``pretrained`` provider (:mod:`betenet.data.providers`; cached under
``features.cache_dir``, default ``<cache_dir>/features``); an entry the model cannot do (an element it does
not cover) is rejected with the reason, and the recipe is recorded in the source metadata.
"""

from __future__ import annotations

from betenet.data.attributes.registry import NodeAttribute, register_attribute


def prepare_features(datamodule, entries: list, rejected: list, metadata: dict) -> dict | None:
    """``{entry id: [n_atoms, F] features}`` of ``entries`` (those it cannot do removed and rejected)."""
    from betenet.data.providers import provider

    settings = datamodule.features
    if not settings.enabled:
        return None
    report = provider("pretrained").features_for_entries(entries, settings, datamodule.feature_cache_dir,
                                                          progress=True)
    rejected.extend((i, f"features from {settings.model}: {r}") for i, r in report.failed.items())
    entries[:] = [e for e in entries if e.id not in report.failed]
    metadata["features_provenance"] = {**settings.key(), "dim": settings.dim, **report.summary()}
    return report.features


FEATURES = register_attribute(NodeAttribute(
    name="features", width=lambda settings: int(settings.features_dim), prepare=prepare_features,
    enabled=lambda settings: int(settings.features_dim) > 0, position=100, title="pretrained features"))
