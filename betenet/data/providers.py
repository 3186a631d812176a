"""Providers looked up by name: the packages that compute node-attribute values with ML potentials and that
build on this data package (``phonons``: site PhDOS, :mod:`betenet.phonons`; ``pretrained``: per-atom
features, :mod:`betenet.pretrained`).

They import the data package (structures, entries, the directory format); the data package does not import
them. It asks for one by name when a setting needs it (``site_dos_source: mlip``, ``features.model``,
``phonon_reference``), and a built-in name is resolved to its package on that first use, so ``import
betenet.data`` never loads an ML potential and the package import graph has no loop. A plugin or a test
may register another object under a name (:func:`register_provider`), e.g. a fake potential.

What the data package calls:

- ``phonons``: ``PhononSettings.from_mapping(mapping)`` (``.key()``, ``.potential``);
  ``fill_site_dos(entries, kind, settings, cache_dir, replace=, metadata=, progress=)`` → a report with
  ``failed`` {id: reason}, ``filled`` and ``kept``; ``dataset_provenance(kind, metadata)``;
  ``mlip_provenance(kind, settings)``.
- ``pretrained``: ``FeatureSettings.from_mapping(mapping)`` (``enabled``, ``dim``, ``model``, ``key()``);
  ``features_for_entries(entries, settings, cache_dir, progress=)`` → a report with ``features``
  {id: [n_atoms, F]}, ``failed`` and ``summary()``.
"""

from __future__ import annotations

import importlib

from betenet.errors import InputError

#: Built-in providers: name → the package that implements it (imported on first use).
BUILTIN_PROVIDERS = {"phonons": "betenet.phonons", "pretrained": "betenet.pretrained"}

_PROVIDERS: dict[str, object] = {}


def register_provider(name: str, implementation) -> None:
    """Serve ``implementation`` (a module or any object with the calls above) under ``name``."""
    _PROVIDERS[str(name)] = implementation


def unregister_provider(name: str) -> None:
    """Forget a registered provider (a built-in name goes back to its package)."""
    _PROVIDERS.pop(str(name), None)


def provider(name: str):
    """The provider registered as ``name``, else the built-in package of that name; ``InputError`` otherwise."""
    if name in _PROVIDERS:
        return _PROVIDERS[name]
    if name in BUILTIN_PROVIDERS:
        return importlib.import_module(BUILTIN_PROVIDERS[name])
    known = ", ".join(sorted(set(BUILTIN_PROVIDERS) | set(_PROVIDERS)))
    raise InputError(name, f"unknown provider; use one of {known}")
