"""Site PhDOS on demand for dataset entries and new structures: :class:`PhDOSProvider` (cache first,
then the potential, whose calculator is made once, on the first miss) and :func:`fill_site_dos`,
which gives every entry lacking a ``kind`` PhDOS the potential's (or replaces all of them) and
reports what it computed, took from the cache, kept and could not do.

This is what training with ``site_dos_source=mlip`` (``BetenetDataModule``) and prediction
(:func:`site_dos_for_prediction`: the ensemble's own recipe, and a warning per entry whose PhDOS
origin differs from the ensemble's) use; the batch command ``betenet phonons`` uses the provider too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from betenet.data.plausibility import check_atom_count
from betenet.data.structures import validate_structure
from betenet.errors import InputError
from betenet.phonons.cache import PhDOSCache, cache_key
from betenet.phonons.calculate import SitePhDOS, site_phdos
from betenet.phonons.potentials import PotentialUnavailable, make_calculator
from betenet.phonons.provenance import dataset_provenance, mlip_provenance, provenance_warning
from betenet.phonons.settings import PhononSettings, kind_columns

log = logging.getLogger(__name__)


class PhDOSProvider:
    """Site PhDOS of structures under one :class:`PhononSettings`: from the cache when there, else
    computed (and cached). ``cache_dir=False`` disables the cache; None uses the default location.
    ``calculator`` overrides the potential's own (tests, or a calculator already loaded)."""

    def __init__(self, settings: PhononSettings, cache_dir=None, calculator=None):
        self.settings = settings
        self.cache = None if cache_dir is False else PhDOSCache(cache_dir)
        self._calculator = calculator
        self.computed = 0
        self.hits = 0

    @property
    def calculator(self):
        if self._calculator is None:
            log.info("loading potential %s on %s", self.settings.potential, self.settings.device)
            self._calculator = make_calculator(self.settings.potential, self.settings.device)
        return self._calculator

    def get(self, structure, kind: str, name: str = "structure", phonopy: bool = False) -> tuple[SitePhDOS, bool]:
        """``(result, from_cache)``; failures raise ``InputError`` naming ``name``. A structure that is
        not physically possible (atoms closer than half their covalent radii, an absurd volume per atom)
        or larger than ``settings.max_atoms`` is refused before any force is computed. ``phonopy``: the
        result must carry phonopy's parameters (``SitePhDOS.phonopy_params``); a cache entry written
        before they were kept counts as a miss."""
        check_atom_count(structure, name, self.settings.max_atoms, "phonons.max_atoms")
        validate_structure(structure, name)  # whole, and physically possible
        key = cache_key(structure, kind, self.settings)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None and not (phonopy and hit.phonopy_params is None):
                self.hits += 1
                return hit, True
        result = site_phdos(structure, kind, self.settings, self.calculator, name=name)
        self.computed += 1
        if self.cache is not None:
            self.cache.put(key, result)
        return result, False


@dataclass
class FillReport:
    """What :func:`fill_site_dos` did, by entry id; ``provenance`` says where each entry's PhDOS came
    from now (``mlip_provenance`` or ``dataset_provenance``), for :func:`provenance_warning`."""

    kind: str
    settings: PhononSettings
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, dict] = field(default_factory=dict)

    @property
    def filled(self) -> list[str]:
        return self.computed + self.cached

    def summary(self) -> dict:
        return {"kind": self.kind, "potential": self.settings.potential, "computed": len(self.computed),
                "cached": len(self.cached), "kept": len(self.kept), "failed": len(self.failed)}


def fill_site_dos(entries, kind: str, settings: PhononSettings | None = None, cache_dir=None, *,
                  replace: bool = False, provider: PhDOSProvider | None = None, metadata: dict | None = None,
                  progress: bool = False) -> FillReport:
    """Give each :class:`~betenet.data.sources.base.Entry` in ``entries`` a ``kind`` site PhDOS from
    the potential of ``settings`` (default :class:`PhononSettings`), in place.

    Entries that already hold one keep it unless ``replace``. An entry whose calculation fails is
    left unchanged and listed in ``FillReport.failed`` with the reason; the others go on. A missing
    optional package (``pip install 'betenet[phonons]'``) raises ``PotentialUnavailable`` at the first
    entry that needs it. ``provider`` (sharing its loaded calculator and cache) overrides
    ``settings`` and ``cache_dir``; ``metadata`` (the source's) tells the origin of kept PhDOS.
    """
    freq_col, site_col = kind_columns(kind)
    provider = provider or PhDOSProvider(settings or PhononSettings(), cache_dir)
    report = FillReport(kind=kind, settings=provider.settings)
    entries = list(entries)
    todo = [e for e in entries if replace or getattr(e, site_col) is None]
    for entry in entries:
        if not replace and getattr(entry, site_col) is not None:
            report.kept.append(entry.id)
            report.provenance[entry.id] = dataset_provenance(kind, metadata)
    for entry in tqdm(todo, desc=f"{kind} PhDOS ({provider.settings.potential})", disable=not progress,
                      leave=False):
        try:
            result, from_cache = provider.get(entry.structure, kind, name=entry.id)
        except PotentialUnavailable:
            raise
        except InputError as err:
            report.failed[entry.id] = err.reason if err.subject == entry.id else str(err)
            continue
        setattr(entry, freq_col, result.freq_meV)
        setattr(entry, site_col, result.site_dos)
        (report.cached if from_cache else report.computed).append(entry.id)
        report.provenance[entry.id] = mlip_provenance(kind, provider.settings)
    log.info("%s PhDOS from %s: %s", kind, provider.settings.potential, report.summary())
    return report


def labels_metadata(labels_path) -> dict:
    """The ``metadata.json`` beside a labels file (a folder written by ``betenet phonons`` records
    its PhDOS provenance there); {} when absent or unreadable."""
    import json
    from pathlib import Path

    path = Path(labels_path).parent / "metadata.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def site_dos_for_prediction(entries, kind: str, trained: dict | None, *, metadata: dict | None = None,
                            compute: bool | None = None, cache_dir=None, device: str = "cpu",
                            progress: bool = False) -> tuple[FillReport | None, dict[str, str | None]]:
    """Site PhDOS of new structures for an ensemble whose PhDOS provenance is ``trained``
    (:func:`~betenet.phonons.provenance.provenance_from_config` of its config), and a warning per entry.

    ``entries``: :class:`~betenet.data.sources.base.Entry` objects, with the PhDOS a labels file gave
    them (if any), whose origin ``metadata`` tells (:func:`labels_metadata`; none: the dataset's own).
    ``compute`` (default: when the ensemble was trained on ML-potential PhDOS, ``mlip`` or ``fill``)
    fills the entries lacking one with the ensemble's recipe (``device`` where the potential runs).
    Returns ``(FillReport or None, {entry id: warning text or None})``; an entry still without PhDOS
    (not computed, or failed: see ``FillReport.failed``) gets None here and fails later as before.
    """
    entries = list(entries)
    if kind == "none":
        return None, {e.id: None for e in entries}
    if compute is None:
        compute = bool(trained) and trained.get("source") in ("mlip", "fill")
    report = None
    if compute:
        recipe = trained if trained and trained.get("source") in ("mlip", "fill") else None
        settings = PhononSettings.from_provenance(recipe, device=device)
        report = fill_site_dos(entries, kind, settings, cache_dir, metadata=metadata, progress=progress)
    _, site_col = kind_columns(kind)
    warnings = {}
    for e in entries:
        given = (report.provenance.get(e.id) if report is not None else None) or \
            (dataset_provenance(kind, metadata) if getattr(e, site_col) is not None else None)
        warnings[e.id] = provenance_warning(trained, given)
    return report, warnings
