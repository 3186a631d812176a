"""Phonons without DFT: site-projected phonon DOS (the CPD/FPD node attributes) from a universal
machine-learned interatomic potential, by finite displacements with phonopy.

Modules: :mod:`.potentials` (name → ASE calculator; SevenNet-0 default, CHGNet, EMT),
:mod:`.settings` (:class:`PhononSettings`, coarse/fine kinds), :mod:`.harmonic` (phonopy force
constants and mesh modes), :mod:`.forces` (the displaced supercells through the potential in batches),
:mod:`.dos` (broadened site DOS), :mod:`.calculate` (one structure → :class:`SitePhDOS`), :mod:`.cache`
(on-disk cache), :mod:`.fill` (PhDOS for dataset entries, used by training and prediction),
:mod:`.provenance` (where PhDOS came from; mismatch warnings), :mod:`.batch` (``betenet phonons``:
largest first, on :mod:`.workers` processes) and :mod:`.phonopy_files` (phonopy's own files and the
band structure / DOS figure). The potentials and phonopy are the optional
extra ``pip install 'betenet[phonons]'``; importing this package does not import them.
"""

from betenet.phonons.cache import PhDOSCache, cache_key, default_cache_dir, structure_hash
from betenet.phonons.calculate import SitePhDOS, site_phdos
from betenet.phonons.fill import FillReport, PhDOSProvider, fill_site_dos, labels_metadata, site_dos_for_prediction
from betenet.phonons.potentials import DEFAULT_POTENTIAL, POTENTIALS, PotentialUnavailable, make_calculator
from betenet.phonons.provenance import (dataset_provenance, mlip_provenance, provenance_from_config,
                                        provenance_warning)
from betenet.phonons.settings import KINDS, PhononSettings, kind_columns

__all__ = [
    "DEFAULT_POTENTIAL", "KINDS", "POTENTIALS", "FillReport", "PhDOSCache", "PhDOSProvider", "PhononSettings",
    "PotentialUnavailable", "SitePhDOS", "cache_key", "dataset_provenance", "default_cache_dir", "fill_site_dos",
    "kind_columns", "labels_metadata", "make_calculator", "mlip_provenance", "provenance_from_config",
    "provenance_warning", "site_dos_for_prediction", "site_phdos", "structure_hash",
]
