"""The site-projected phonon DOS of each atom (variants cpd: ``coarse``, fpd: ``fine``), binned like the a2F
(:mod:`betenet.data.spectra`), ``n_bins`` columns after every other block (the coupling head reads them
there); the inputs carry ones in their place (the release's CPD/FPD encoding).

Where they come from (``site_dos_source``): the dataset's own (``dataset``); an ML potential for every entry
(``mlip``); the dataset's where given and the potential's for the rest (``fill``). The potential's are
computed in the data module's ``prepare`` step through the ``phonons`` provider
(:mod:`betenet.data.providers`, i.e. :func:`betenet.phonons.fill_site_dos`; cached under
``phonons.cache_dir``, default ``<cache_dir>/phonons``); entries it cannot do are rejected, and the
provenance is recorded in the source metadata (``site_dos_provenance``).
"""

from __future__ import annotations

import numpy as np

from betenet.data.attributes.registry import NodeAttribute, NodeSettings, register_attribute
from betenet.data.spectra import bin_site_dos, validate_binned
from betenet.errors import InputError

#: Which site-projected PhDOS the nodes carry (``variant.site_dos``).
SITE_DOS_KINDS = ("none", "coarse", "fine")
#: Where CPD/FPD PhDOS come from (``site_dos_source``; see the module docstring).
SITE_DOS_SOURCES = ("dataset", "mlip", "fill")


def site_dos_from_entry(entry, settings: NodeSettings) -> np.ndarray:
    """The entry's ``settings.site_dos`` site PhDOS binned on the settings' grid; ``InputError`` when it has none."""
    kind = settings.site_dos
    freq = getattr(entry, f"phdos_{kind}_freq_meV")
    dos = getattr(entry, f"phdos_{kind}_site")
    if dos is None:
        raise InputError(entry.id, f"no {kind} site-projected phonon DOS (needed by this variant)")
    return bin_site_dos(freq, dos, name=f"{entry.id} {kind} site PhDOS", grid=settings.bin_grid,
                        recipe=settings.recipe)


def site_dos_blocks(structure, values, label: str, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(ones, binned site PhDOS) [n, n_bins], the PhDOS checked (one row per atom, finite, not negative)."""
    dos = validate_binned(values, f"{label} site_dos", rows=len(structure), n_bins=n_bins)
    return np.ones_like(dos), dos


def prepare_site_dos(datamodule, entries: list, rejected: list, metadata: dict) -> None:
    """Refuse a PhDOS kind the source never has (unless computed), compute the missing (``fill``) or all
    (``mlip``) site PhDOS of ``entries`` (failures rejected) and record the provenance of the nodes' PhDOS
    in ``metadata["site_dos_provenance"]``."""
    from betenet.data.providers import provider

    kind = datamodule.site_dos
    if kind == "none":
        metadata["site_dos_provenance"] = {"source": "none", "kind": "none"}
        return None
    missing = (metadata.get("site_dos_missing") or {}).get(kind)
    if missing and not datamodule.computes_site_dos:  # a PhDOS kind the source never has
        raise InputError(f"variant with site_dos={kind}", missing)
    phonons = provider("phonons")
    if not datamodule.computes_site_dos:
        metadata["site_dos_provenance"] = phonons.dataset_provenance(kind, metadata)
        return None
    settings = datamodule.phonon_settings()
    report = phonons.fill_site_dos(entries, kind, settings, datamodule.phonon_cache_dir,
                                   replace=datamodule.site_dos_source == "mlip", metadata=metadata, progress=True)
    rejected.extend((i, f"{kind} PhDOS from {settings.potential}: {r}") for i, r in report.failed.items())
    failed = set(report.failed)
    entries[:] = [e for e in entries if e.id not in failed]
    provenance = phonons.mlip_provenance(kind, settings)
    provenance.update(source=datamodule.site_dos_source, n_mlip=len(report.filled), n_dataset=len(report.kept))
    metadata["site_dos_provenance"] = provenance
    return None


SITE_DOS = register_attribute(NodeAttribute(
    name="site_dos", width=lambda settings: 0 if settings.site_dos == "none" else int(settings.n_bins),
    from_entry=site_dos_from_entry, prepare=prepare_site_dos, blocks=site_dos_blocks, inputs="ones",
    enabled=lambda settings: settings.site_dos != "none", position=1000, title="site PhDOS"))
