"""The node-attribute registry: each part of an atom's vector registered once, with its width and how it is filled.

A graph's node inputs ``x`` and attributes ``attr`` (:mod:`betenet.data.graphs`) are the blocks of the
:class:`NodeAttribute` s that are on for the run's :class:`NodeSettings`, side by side in the order of
their ``position``; each block is as wide as the attribute's ``width`` says. The config resolver of the
network's input width (``node_dim``, :mod:`betenet.config`), the data module, the graphs and the
networks all read widths here (:func:`node_width`, :func:`block_slice`).

How a block is filled, in three steps, each optional:

1. ``prepare(datamodule, entries, rejected, metadata)``: once per dataset, before any graph, for every
   registered attribute that has one (on or off: it records its provenance either way), the one with
   the highest position first. It computes what an entry lacks (an ML potential's site PhDOS, a
   pretrained model's features; cached), rejects the entries it cannot do (removing them from
   ``entries``, adding ``(id, reason)`` to ``rejected``) and returns ``{entry id: values}`` or None.
2. ``from_entry(entry, settings)`` → ``[n_atoms, width]`` values of one entry (e.g. its binned site
   PhDOS); an ``InputError`` rejects that entry. Also what ``betenet predict`` calls for a new structure.
3. ``blocks(structure, values, label, n_bins)`` → ``(x block, attr block)``; by default the values
   checked (finite, one row per atom) and used as both, or ones as the input block (``inputs="ones"``).

An attribute without its own ``enabled`` is on when named in ``data.node_attributes`` (``NodeSettings.extra``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from betenet.errors import InputError
from betenet.physics.units import N_BINS, BinGrid

__all__ = ["NodeSettings", "NodeAttribute", "register_attribute", "unregister_attribute", "get_attribute",
           "attribute_names", "registered", "active", "node_width", "block_slice", "node_vectors", "entry_values"]


@dataclass(frozen=True)
class NodeSettings:
    """What decides the node vector: which site PhDOS (``none``, ``coarse``, ``fine``) on ``n_bins`` bins, the
    pretrained features' width, and the other attributes switched on by name (``data.node_attributes``).
    ``grid`` and ``recipe`` say how raw spectra are binned (``data.spectrum``; entry level only)."""

    site_dos: str = "none"
    n_bins: int = N_BINS
    features_dim: int = 0
    extra: tuple[str, ...] = ()
    grid: BinGrid | None = None
    recipe: str = "physical"

    def __post_init__(self):
        object.__setattr__(self, "extra", tuple(str(a) for a in (self.extra or ())))
        if self.grid is not None and int(self.grid.n_bins) != int(self.n_bins):
            raise ValueError(f"n_bins {self.n_bins} is not the grid's {self.grid.n_bins}")

    @classmethod
    def of(cls, site_dos: str = "none", grid: BinGrid | None = None, recipe: str = "physical",
           features_dim: int = 0, extra=()) -> NodeSettings:
        grid = grid or BinGrid()
        return cls(site_dos=str(site_dos), n_bins=grid.n_bins, features_dim=int(features_dim), extra=tuple(extra or ()),
                   grid=grid, recipe=recipe)

    @property
    def bin_grid(self) -> BinGrid:
        return self.grid if self.grid is not None else BinGrid(n_bins=self.n_bins)


@dataclass(frozen=True)
class NodeAttribute:
    """One part of the node vector (see the module docstring for the fields' roles)."""

    name: str
    width: Callable[[NodeSettings], int]
    from_entry: Callable[[Any, NodeSettings], Any] | None = None
    prepare: Callable[..., dict | None] | None = None
    blocks: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None
    inputs: str = "values"  # the x block: "values" (the same numbers) or "ones"
    enabled: Callable[[NodeSettings], bool] | None = None  # None: when named in NodeSettings.extra
    always: bool = False  # built from the structure alone (one-hot Z): present in every graph
    position: int = 500
    title: str = ""  # how errors name its values
    version: str = "1"  # part of the graph cache key of the data that uses it: bump when its values change

    def is_on(self, settings: NodeSettings) -> bool:
        return bool(self.enabled(settings)) if self.enabled is not None else self.name in settings.extra

    def fill(self, structure, values, label: str, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
        """``(x block, attr block)`` of one structure."""
        if self.blocks is not None:
            return self.blocks(structure, values, label, n_bins)
        v = np.asarray(values, dtype=float)
        n = len(structure)
        if v.ndim != 2 or v.shape[0] != n or not np.isfinite(v).all():
            title = self.title or f"node attribute {self.name}"
            raise InputError(label, f"{title} must be a finite [{n}, F] array, got shape {v.shape}")
        if self.inputs not in ("values", "ones"):
            raise ValueError(f"node attribute {self.name}: inputs must be 'values' or 'ones', got {self.inputs!r}")
        return (np.ones_like(v) if self.inputs == "ones" else v), v


_ATTRIBUTES: dict[str, NodeAttribute] = {}


def _origin(attribute: NodeAttribute) -> str:
    return f"{getattr(attribute.width, '__module__', '?')}.{getattr(attribute.width, '__qualname__', '?')}"


def register_attribute(attribute: NodeAttribute, replace: bool = False) -> NodeAttribute:
    """Add ``attribute`` to the registry (once: another attribute of the same name is refused unless ``replace``)."""
    known = _ATTRIBUTES.get(attribute.name)
    if known is not None and not replace and _origin(known) != _origin(attribute):
        raise ValueError(f"node attribute {attribute.name!r} is registered already (by {_origin(known)})")
    _ATTRIBUTES[attribute.name] = attribute
    return attribute


def unregister_attribute(name: str) -> None:
    """Remove an attribute (tests that register a toy one)."""
    _ATTRIBUTES.pop(name, None)


def attribute_names() -> tuple[str, ...]:
    """The registered attributes in column order."""
    return tuple(a.name for a in registered())


def get_attribute(name: str) -> NodeAttribute:
    """The attribute registered as ``name``; ``InputError`` naming the known ones otherwise."""
    if name not in _ATTRIBUTES:
        raise InputError(name, f"unknown node attribute; use one of {', '.join(attribute_names())}")
    return _ATTRIBUTES[name]


def registered() -> list[NodeAttribute]:
    """Every registered attribute in column order (``position``, then name)."""
    return sorted(_ATTRIBUTES.values(), key=lambda a: (a.position, a.name))


def active(settings: NodeSettings) -> list[NodeAttribute]:
    """The attributes that are on for ``settings``, in column order. A name in ``settings.extra`` must be a
    registered attribute that is switched on by name (not by a setting of its own)."""
    for name in settings.extra:
        if get_attribute(name).enabled is not None:
            raise InputError(f"data.node_attributes: {name}", "this attribute is switched on by its own setting "
                                                              "(variant, features), not by name")
    return [a for a in registered() if a.is_on(settings)]


def node_width(settings: NodeSettings | None = None) -> int:
    """Width of the node inputs and attributes for ``settings`` (default: the one-hot(Z) block alone)."""
    settings = settings or NodeSettings()
    return sum(int(a.width(settings)) for a in active(settings))


def block_slice(name: str, settings: NodeSettings | None = None) -> slice:
    """The columns of attribute ``name`` in the node vector for ``settings``."""
    settings = settings or NodeSettings()
    start = 0
    for a in active(settings):
        width = int(a.width(settings))
        if a.name == name:
            return slice(start, start + width)
        start += width
    raise InputError(name, "not a node attribute of these settings")


def node_vectors(structure, values: Mapping[str, Any], label: str, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, attr)`` [n_atoms, width] of one structure: the blocks of every ``always`` attribute and of each
    attribute given ``values`` (name → values; None = absent), side by side in column order."""
    unknown = sorted(set(k for k, v in values.items() if v is not None) - set(_ATTRIBUTES))
    if unknown:
        raise InputError(label, f"unknown node attribute {unknown[0]}; use one of {', '.join(attribute_names())}")
    xs, attrs = [], []
    for a in registered():
        value = values.get(a.name)
        if value is None and not a.always:
            continue
        x, attr = a.fill(structure, value, label, n_bins)
        xs.append(x)
        attrs.append(attr)
    return np.concatenate(xs, axis=1), np.concatenate(attrs, axis=1)


def entry_values(entry, settings: NodeSettings, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Values of every attribute on for ``settings``: ``given`` (e.g. prepared features), else read from
    ``entry`` (``from_entry``), which must give them as wide as the attribute says."""
    values = dict(given or {})
    for a in active(settings):
        if a.always or values.get(a.name) is not None:
            continue
        if a.from_entry is None:
            raise InputError(entry.id, f"no values of node attribute {a.name} (its prepare step gave none)")
        v = a.from_entry(entry, settings)
        width = int(a.width(settings))
        shape = np.shape(v)
        if len(shape) != 2 or shape[1] != width:
            raise InputError(entry.id, f"node attribute {a.name}: {width} values per atom expected, got shape {shape}")
        values[a.name] = v
    return values
