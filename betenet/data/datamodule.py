"""BetenetDataModule: source → crystal graphs (cached on disk) → bootstrap / out-of-bag / test loaders.

Graphs are built once per (source, processing settings) and cached under a key hashed from both,
so a changed source or setting rebuilds. The bootstrap member (`seed`) only decides which cached
graphs land in train (with duplicate weights) and validation (out-of-bag); the test split is fixed
by the source's own split or an element-balanced 80/20 split. The source (its folder, reader and published
bootstrap) comes from the source registry (:mod:`betenet.data.sources.registry`), the parts of each node's
vector from the node-attribute registry (:mod:`betenet.data.attributes`).

What a graph carries as truth. ``y`` [1, B] is the binned a2F (``betenet.data.spectra``; a NaN row
when the entry has none): the reference of every a2F-derived property, which losses and metrics
compute from it at their own μ*, exactly as from a prediction (like with like). ``reported``
[1, 4] holds the scalar values the dataset ships (:data:`~betenet.physics.properties.PROPERTIES`
order, NaN = not given), computed by the dataset from its raw spectrum or measured otherwise:
they supervise entries without an a2F (e.g. Tc-only data) and are reported in a separate column
set, never mixed with the binned reference.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torch_geometric.data import Batch, Data

from betenet import validation
from betenet.files import cache_root
from betenet.data.attributes import NodeSettings, active, block_slice, entry_values, get_attribute, registered
from betenet.data.attributes.site_dos import SITE_DOS_KINDS, SITE_DOS_SOURCES
from betenet.data.filters import (DEFAULT_NEGATIVE_A2F_TOL, DEFAULT_UNSTABLE_THRESHOLD_MEV, FILTERS, FilterReport,
                                  apply_filters)
from betenet.data.graphs import graph_stats, structure_to_graph
from betenet.data.providers import provider
from betenet.data.sources.base import Entry, beyond_bounds, fingerprint, label_bounds
from betenet.data.sources.registry import get_source
from betenet.data.spectra import RECIPES, bin_spectrum, lambda_above_window
from betenet.data.splits import (SPLIT_KEYS, BootstrapSplit, bootstrap_member, element_balanced_split, given_split,
                                 member_from_draw, subsample_member)
from betenet.errors import InputError
from betenet.physics.properties import PROPERTIES
from betenet.physics.units import BinGrid

log = logging.getLogger(__name__)

#: Bump when graph construction changes so old caches are not reused.
GRAPH_CACHE_VERSION = 3
#: A raw a2F losing more than this share of λ above the binned window is warned about.
LAMBDA_LOST_WARN = 0.01
__all__ = ["BetenetDataModule", "BuiltGraphs", "SITE_DOS_KINDS", "SITE_DOS_SOURCES", "entry_to_graph",
           "graph_elements", "full_batch_loader", "reported_values", "spectrum_settings", "checked_settings"]


def checked_settings(seed, split_seed, test_fraction, batch_size, bounds, prefix: str = "") -> tuple:
    """``(seed, split_seed, test_fraction, batch_size, label bounds)`` checked (:mod:`betenet.validation`,
    :func:`~betenet.data.sources.base.label_bounds`): ``InputError`` naming the first one out of range
    as ``<prefix><name>`` (``seed`` is the top-level setting)."""
    return (validation.seed(seed, "seed"), validation.seed(split_seed, f"{prefix}split_seed"),
            validation.open_fraction(test_fraction, f"{prefix}test_fraction"),
            None if batch_size is None else validation.batch_size(batch_size, f"{prefix}batch_size"),
            label_bounds(bounds, f"{prefix}label_bounds"))


def reported_values(entry: Entry) -> np.ndarray:
    """[4] the scalars the dataset ships for ``entry`` in :data:`PROPERTIES` order, NaN where absent."""
    return np.array([float(entry.labels.get(name, np.nan)) for name in PROPERTIES])


def spectrum_settings(spectrum: dict | None) -> tuple[BinGrid, str]:
    """(bin grid, recipe) of a ``data.spectrum`` config mapping (None: the paper's grid, ``physical``)."""
    spectrum = dict(spectrum or {})
    recipe = str(spectrum.get("recipe", "physical"))
    if recipe not in RECIPES:
        raise InputError("data.spectrum.recipe", f"unknown recipe {recipe!r}; use one of {RECIPES}")
    return BinGrid.from_config(spectrum), recipe


def entry_to_graph(entry: Entry, site_dos_kind: str = "none", r_max: float = 4.0,
                   self_loops: bool = True, allow_isolated: bool = False, spectrum: dict | None = None,
                   features=None, node_attributes=(), prepared: dict | None = None) -> Data:
    """One dataset entry → graph with binned target ``y`` (NaN row when absent) and ``reported`` [1, 4].

    ``spectrum`` (``data.spectrum``: recipe, start_meV, step_meV, n_bins) sets how a2F and site
    PhDOS are binned (``betenet.data.spectra``); ``features`` [n_atoms, F] are the entry's pretrained
    site features (:mod:`betenet.pretrained`), or None; ``node_attributes`` names the other registered
    node attributes the graph carries (``data.node_attributes``, :mod:`betenet.data.attributes`), whose values
    are read from the entry unless ``prepared`` holds them (name → values, the data module's prepare step)."""
    if site_dos_kind not in SITE_DOS_KINDS:
        raise ValueError(f"site_dos must be one of {SITE_DOS_KINDS}, got {site_dos_kind!r}")
    grid, recipe = spectrum_settings(spectrum)
    y = None
    if entry.a2f is not None:
        y = bin_spectrum(entry.a2f_freq_meV, entry.a2f, name=f"{entry.id} a2F", grid=grid, recipe=recipe)
    features_dim = 0 if features is None else int(np.shape(features)[-1])
    settings = NodeSettings.of(site_dos_kind, grid, recipe, features_dim, node_attributes)
    values = entry_values(entry, settings, {**dict(prepared or {}), "features": features})
    graph = structure_to_graph(entry.structure, r_max=r_max, self_loops=self_loops, y=y, id=entry.id,
                               allow_isolated=allow_isolated, n_bins=grid.n_bins, attributes=values)
    if y is None:
        graph.y = torch.full((1, grid.n_bins), float("nan"))
    graph.reported = torch.as_tensor(reported_values(entry), dtype=torch.float32).view(1, -1)
    return graph


def graph_elements(graph: Data) -> set[str]:
    """Element symbols of a graph, read from the one-hot(Z) block of its node attributes."""
    from pymatgen.core.periodic_table import Element

    numbers = graph.attr[:, block_slice("element")].argmax(dim=1) + 1
    return {Element.from_Z(int(k)).symbol for k in torch.unique(numbers)}


@dataclass
class BuiltGraphs:
    graphs: dict[str, Data]
    rejected: list[tuple[str, str]]
    splits: dict[str, list[str]] | None
    metadata: dict
    bootstrap_dir: Path | None = None


class _FullBatch(Dataset):
    """A dataset of one pre-collated batch: full-batch training without per-epoch collation."""

    def __init__(self, batch: Batch):
        self.batch = batch

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.batch


def _collate_one(items):
    return items[0]


def full_batch_loader(graphs: list[Data]) -> DataLoader:
    """A loader yielding all ``graphs`` as one batch, collated once (the paper's full-batch training)."""
    return DataLoader(_FullBatch(Batch.from_data_list(graphs)), batch_size=1, collate_fn=_collate_one)


class BetenetDataModule(pl.LightningDataModule):
    """Bootstrap member `seed`: resampled train (weighted), out-of-bag validation, fixed test."""

    def __init__(self, source: str = "demo", root: str | None = None, site_dos: str = "none",
                 r_max: float = 4.0, self_loops: bool = True, allow_isolated: bool = False, seed: int = 0,
                 bootstrap: str = "weighted",
                 test_fraction: float = 0.2, split_seed: int = 0, batch_size: int | None = None,
                 cache_dir: str | None = None, demo_size: int | None = None, demo_seed: int | None = None,
                 num_workers: int = 0, filters: tuple[str, ...] | list[str] | None = FILTERS,
                 unstable_threshold_meV: float = DEFAULT_UNSTABLE_THRESHOLD_MEV,
                 negative_a2f_tol: float = DEFAULT_NEGATIVE_A2F_TOL, spectrum: dict | None = None,
                 splits_file: str | None = None, site_dos_source: str = "dataset", phonons: dict | None = None,
                 phonon_reference: bool = False, features: dict | None = None,
                 source_options: dict | None = None, label_bounds: dict | None = None,
                 node_attributes: tuple[str, ...] | list[str] | None = None, subsample_fraction: float = 0.8):
        super().__init__()
        seed, split_seed, test_fraction, batch_size, self.label_bounds = checked_settings(
            seed, split_seed, test_fraction, batch_size, label_bounds)  # label_bounds: label -> upper bound or None

        self.data_source = get_source(source)  # the registry's: root, reader, published bootstrap
        self.features = provider("pretrained").FeatureSettings.from_mapping(features)
        self.features_cache = (features or {}).get("cache_dir")
        if bootstrap not in ("weighted", "unique", "release", "release_unique", "subsample"):
            raise ValueError("bootstrap must be weighted, unique, release, release_unique or subsample")
        self.subsample_fraction = validation.open_fraction(subsample_fraction, "subsample_fraction")
        if site_dos_source not in SITE_DOS_SOURCES:
            raise InputError(f"site_dos_source={site_dos_source}", f"use one of {', '.join(SITE_DOS_SOURCES)}")
        self.site_dos_source, self.phonons = site_dos_source, dict(phonons or {})
        self.phonon_reference = bool(phonon_reference)
        self.source, self.root, self.site_dos = source, root, site_dos
        self.source_options = self.data_source.check_options(source_options)  # reader options: bee_net's smearing
        self.allow_isolated = allow_isolated
        self.r_max, self.self_loops, self.seed, self.bootstrap = r_max, self_loops, seed, bootstrap
        self.test_fraction, self.split_seed, self.batch_size = test_fraction, split_seed, batch_size
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root()
        self.demo_size, self.demo_seed, self.num_workers = demo_size, demo_seed, num_workers
        self.filters = tuple(filters or ())
        self.unstable_threshold_meV, self.negative_a2f_tol = unstable_threshold_meV, negative_a2f_tol
        self.splits_file = splits_file
        self.grid, self.recipe = spectrum_settings(spectrum)
        self.spectrum = {"recipe": self.recipe, **self.grid.as_dict()}
        self.node_attributes = tuple(str(a) for a in (node_attributes or ()))
        active(self.node_settings)  # refuses an unknown data.node_attributes now, not after reading the source
        self.filter_report: FilterReport | None = None
        self.built: BuiltGraphs | None = None
        self.split_ids: dict[str, list[str]] = {}
        self.member: BootstrapSplit | None = None

    # ---- the source and the node attributes (their registries) ------------------------------
    @property
    def source_settings(self) -> dict:
        """What the source's ``root`` and ``fingerprint`` read: the data settings of its registry entry."""
        return {"source": self.source, "root": self.root, "cache_dir": self.cache_dir, "demo_size": self.demo_size,
                "demo_seed": self.demo_seed, "source_options": self.source_options}

    def source_root(self) -> Path:
        """The folder the source reads (the demo set is generated, once, on first use)."""
        return self.data_source.root(self.source_settings)

    @property
    def node_settings(self) -> NodeSettings:
        """What decides the graphs' node vectors (:mod:`betenet.data.attributes`)."""
        return NodeSettings.of(self.site_dos, self.grid, self.recipe, self.features.dim, self.node_attributes)

    # ---- building and caching -------------------------------------------------------------
    def cache_key(self, root: Path) -> str:
        settings = dict(version=GRAPH_CACHE_VERSION, source=self.source, site_dos=self.site_dos,
                        r_max=self.r_max, self_loops=self.self_loops, allow_isolated=self.allow_isolated,
                        spectrum=self.spectrum, filters=list(self.filters),
                        unstable_threshold_meV=self.unstable_threshold_meV, negative_a2f_tol=self.negative_a2f_tol,
                        label_bounds=self.label_bounds, root=str(root.resolve()), fingerprint=fingerprint(root))
        if self.computes_site_dos or self.phonon_reference:
            settings["site_dos_source"] = self.site_dos_source
            settings["phonons"] = self.phonon_settings().key()
            settings["phonon_reference"] = self.phonon_reference
        if self.features.enabled:
            settings["features"] = self.features.key()
        if self.source_options:
            settings["source_options"] = self.source_options
        if self.node_attributes:
            settings["node_attributes"] = {a: get_attribute(a).version for a in self.node_attributes}
        return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def build_graphs(self) -> BuiltGraphs:
        """Graphs of every usable entry, from the on-disk cache when source and settings are unchanged."""
        root = self.source_root()
        path = self.cache_dir / "graphs" / f"{self.cache_key(root)}.pt"
        if path.exists():
            log.info("graphs loaded from cache %s", path)
            built = BuiltGraphs(**torch.load(path, weights_only=False))
            self._warn_window(built)
            return built
        data = self.data_source.read_folder(root, self.source_options)
        graphs, rejected = {}, list(data.rejected)
        entries = self.apply_filters(self.apply_label_bounds(data.entries, rejected), rejected)
        prepared = self.prepare_attributes(entries, rejected, data.metadata)
        phonon_wlog = self._phonon_omega_log(entries) if self.phonon_reference else {}
        lost = {}
        for entry in entries:
            given = {name: values.get(entry.id) for name, values in prepared.items()}
            try:
                graphs[entry.id] = entry_to_graph(entry, self.site_dos, self.r_max, self.self_loops,
                                                  self.allow_isolated, self.spectrum, given.pop("features", None),
                                                  self.node_attributes, given)
            except InputError as err:
                rejected.append((entry.id, err.reason))
                continue
            graphs[entry.id].phonon_omega_log_K = torch.tensor([phonon_wlog.get(entry.id, float("nan"))])
            if entry.a2f is not None:
                share = lambda_above_window(entry.a2f_freq_meV, entry.a2f, self.grid)
                if share > LAMBDA_LOST_WARN:
                    lost[entry.id] = share
        data.metadata["lambda_above_window"] = lost
        log.info("built %d graphs, rejected %d entries", len(graphs), len(rejected))
        built = BuiltGraphs(graphs, rejected, data.splits, data.metadata, data.bootstrap_dir)
        self._warn_window(built)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({f.name: getattr(built, f.name) for f in dataclasses.fields(built)}, tmp)
        tmp.replace(path)
        return built

    def _warn_window(self, built: BuiltGraphs) -> None:
        """One warning per entry whose raw a2F has more than 1 % of its λ above the binned window."""
        lost = built.metadata.get("lambda_above_window") or {}
        for entry_id, share in lost.items():
            log.warning("%s: %.1f %% of lambda lies above the %.2f meV top of the binned window and is not "
                        "represented (widen data.spectrum: step_meV / n_bins)", entry_id, 100 * share,
                        self.grid.top_meV)

    # ---- node attributes computed ahead: site PhDOS of an ML potential, pretrained features -----
    def prepare_attributes(self, entries: list[Entry], rejected: list[tuple[str, str]], metadata: dict) -> dict:
        """Run the ``prepare`` step of every registered node attribute that has one, highest position first
        (site PhDOS, then features): ``{attribute: {entry id: values}}``; entries they cannot do are
        removed from ``entries`` and rejected with the reason (:mod:`betenet.data.attributes`)."""
        prepared = {}
        for attribute in reversed(registered()):
            if attribute.prepare is not None:
                values = attribute.prepare(self, entries, rejected, metadata)
                if values is not None:
                    prepared[attribute.name] = values
        return prepared

    @property
    def computes_site_dos(self) -> bool:
        """Whether the nodes' site PhDOS come (in part) from an ML potential (``site_dos_source`` mlip or fill)."""
        return self.site_dos != "none" and self.site_dos_source != "dataset"

    def phonon_settings(self):
        """The ``phonons`` settings as the ``phonons`` provider reads them (:mod:`betenet.data.providers`)."""
        return provider("phonons").PhononSettings.from_mapping(self.phonons)

    @property
    def phonon_cache_dir(self) -> Path:
        """Where computed site PhDOS are cached: ``phonons.cache_dir``, else ``<cache_dir>/phonons``."""
        return Path(self.phonons.get("cache_dir") or self.cache_dir / "phonons")

    @property
    def feature_cache_dir(self) -> Path:
        """Where pretrained site features are cached: ``features.cache_dir``, else ``<cache_dir>/features``."""
        return Path(self.features_cache) if self.features_cache else self.cache_dir / "features"

    def _phonon_omega_log(self, entries: list[Entry]) -> dict[str, float]:
        """ω_log (K) of each entry's coarse phonon DOS (a2F moments of the total DOS g), from the
        entry's own PhDOS or the ML potential's (cached): the reference of the loss's
        ``omega_log_prior``, for heads that do not read the PhDOS (CSO). Entries without one get none."""
        from betenet.physics.properties import properties

        report = provider("phonons").fill_site_dos(entries, "coarse", self.phonon_settings(), self.phonon_cache_dir,
                                                   progress=True)
        for entry_id, reason in report.failed.items():
            log.warning("%s: no phonon omega_log reference (%s)", entry_id, reason)
        out = {}
        for e in entries:
            if e.phdos_coarse_site is not None:
                f, g = e.phdos_coarse_freq_meV, e.phdos_coarse_site.sum(axis=0)
                out[e.id] = float(properties(f[f > 0], np.clip(g[f > 0], 0, None))["omega_log_K"])
        return out

    @property
    def site_dos_provenance(self) -> dict | None:
        """Where the node PhDOS of the built graphs came from (:mod:`betenet.phonons.provenance`)."""
        return None if self.built is None else self.built.metadata.get("site_dos_provenance")

    def apply_label_bounds(self, entries: list[Entry], rejected: list[tuple[str, str]]) -> list[Entry]:
        """The entries whose scalar labels lie within ``label_bounds``; the others are rejected with
        the label and bound named, and counted in the log."""
        kept, before = [], len(rejected)
        for e in entries:
            reason = beyond_bounds(e, self.label_bounds, "data.label_bounds")
            if reason is None:
                kept.append(e)
            else:
                rejected.append((e.id, reason))
        if len(rejected) > before:
            log.warning("label bounds: %d entries rejected with a label above its bound (e.g. %s: %s)",
                        len(rejected) - before, *rejected[before])
        return kept

    def apply_filters(self, entries: list[Entry], rejected: list[tuple[str, str]]) -> list[Entry]:
        """The configured data filters (NaN, unstable, negative a2F, duplicates), each reported with a count."""
        if not self.filters:
            return entries
        records = []
        for e in entries:
            rec = {"id": e.id, "structure": e.structure}
            if e.a2f is not None:
                rec["a2f"] = e.a2f
            if "min_phonon_freq_meV" in e.extra:
                rec["min_phonon_freq_meV"] = e.extra["min_phonon_freq_meV"]
            records.append(rec)
        _, report = apply_filters(records, filters=self.filters, threshold_meV=self.unstable_threshold_meV,
                                  tol=self.negative_a2f_tol)
        for line in report.lines():
            log.info("filter %s", line)
        self.filter_report = report
        rejected.extend((str(i), f"filter {name}: {reason}") for i, (name, reason) in report.rejected.items())
        keep = set(report.kept)
        return [e for e in entries if e.id in keep]

    def _train_test_ids(self, built: BuiltGraphs) -> tuple[list[str], list[str], list[str] | None]:
        """``splits_file`` when given (a ``splits.json``-style file outside the dataset, e.g. a
        cross-validation fold), else the source's own split when it gives one (``splits.json``, the
        release's indices; an empty test set is kept as given), else an element-balanced split of
        every graph."""
        ids = list(built.graphs)
        splits = built.splits
        if self.splits_file is not None:
            given = given_split(self.splits_file)
            splits = {key: [str(i) for i in getattr(given, key)] for key in SPLIT_KEYS}
        if splits is not None:
            listed = {i for part in splits.values() for i in part}
            unlisted = [i for i in ids if i not in listed]
            if unlisted:
                log.warning("%d entries are in no split of the source (e.g. %s): they are not trained on "
                            "(predict only)", len(unlisted), ", ".join(unlisted[:5]))
            test = [i for i in splits.get("test", []) if i in built.graphs]
            train = [i for i in splits.get("train", []) if i in built.graphs]
            if not train:
                raise InputError(self.root or self.source, "the given split has no usable training entry")
            val = [i for i in splits.get("val", []) if i in built.graphs] or None
            return train, test, val
        elements = {i: graph_elements(g) for i, g in built.graphs.items()}
        train, test = element_balanced_split(ids, elements, test_fraction=self.test_fraction,
                                             seed=self.split_seed)
        return list(train), list(test), None

    def setup(self, stage: str | None = None) -> None:
        if self.built is not None:
            return
        self.built = self.build_graphs()
        for entry_id, reason in self.built.rejected:  # every time, also when the graphs come from the cache
            log.warning("rejected %s: %s", entry_id, reason)
        if not self.built.graphs:
            first = "; ".join(f"{i}: {r}" for i, r in self.built.rejected[:3])
            raise InputError(self.root or self.source, f"no usable entries ({len(self.built.rejected)} "
                             f"rejected, e.g. {first})")
        train, test, given_val = self._train_test_ids(self.built)
        if self.bootstrap.startswith("release"):
            indices = self.built.bootstrap_dir
            if indices is None:
                raise InputError(self.source, "bootstrap=release needs a release-format source with indices/")
            mode = "unique" if self.bootstrap == "release_unique" else "weighted"
            drawn, val = self.data_source.bootstrap(indices, self.seed, self.built.metadata)
            keep = set(self.built.graphs)
            drawn = [i for i in drawn if i in keep]
            if val is None:  # no validation file: the out-of-bag rest of the training split
                val = [i for i in train if i not in set(drawn)]
            member = member_from_draw(drawn, [i for i in val if i in keep], mode)
        elif self.bootstrap == "subsample":
            member = subsample_member(train, self.seed, self.subsample_fraction)
        else:
            member = bootstrap_member(train, self.seed, mode=self.bootstrap)
        if given_val:
            member = dataclasses.replace(member, val_ids=given_val)
        self.member = member
        self.split_ids = {"train": list(member.train_ids), "val": list(member.val_ids), "test": test,
                          "predict": list(self.built.graphs)}
        self.log_statistics()

    # ---- statistics -----------------------------------------------------------------------
    def statistics(self) -> dict:
        graphs = list(self.built.graphs.values())
        stats = graph_stats(graphs)
        reported = torch.cat([g.reported for g in graphs]) if graphs else torch.empty(0, len(PROPERTIES))
        ys = torch.cat([g.y for g in graphs]) if graphs else torch.empty(0, self.grid.n_bins)
        stats["with_a2f"] = int(torch.isfinite(ys).all(-1).sum())
        for j, name in enumerate(PROPERTIES):
            stats[f"reported_{name}"] = int(torch.isfinite(reported[:, j]).sum())
        stats["rejected"] = len(self.built.rejected)
        stats.update({f"n_{k}": len(v) for k, v in self.split_ids.items()})
        return stats

    def log_statistics(self) -> None:
        log.info("dataset: %s", json.dumps(self.statistics()))

    @property
    def num_neighbors(self) -> float:
        """Mean number of edges per atom of the training graphs (the network's neighbour normalisation)."""
        train = [self.built.graphs[i] for i in self.split_ids["train"]]
        return float(graph_stats(train)["num_neighbors"])

    # ---- what evaluation reads -------------------------------------------------------------
    @property
    def fitting_ids(self) -> list[str]:
        """The entries the members were fitted on: the bootstrap training ids, then their out-of-bag rest."""
        return list(dict.fromkeys(self.split_ids["train"] + self.split_ids["val"]))

    def source_entries(self, ids=None) -> list[Entry]:
        """The source's entries as its reader gives them (structures and raw columns, before graphs): all of
        them, or those whose id is in ``ids``."""
        entries = self.data_source.read_folder(self.source_root(), self.source_options).entries
        wanted = None if ids is None else set(ids)
        return [e for e in entries if wanted is None or e.id in wanted]

    # ---- loaders --------------------------------------------------------------------------
    def graphs_for(self, split: str) -> list[Data]:
        ids = self.split_ids[split]
        weights = dict(zip(self.member.train_ids, self.member.weights)) if split == "train" else {}
        out = []
        for i in ids:
            g = self.built.graphs[i].clone()
            g.weight = torch.tensor([float(weights.get(i, 1.0))])
            out.append(g)
        return out

    def _loader(self, split: str) -> DataLoader:
        graphs = self.graphs_for(split)
        if not graphs:
            raise InputError(split, f"the {split} split is empty")
        if self.batch_size is None or self.batch_size >= len(graphs):
            return full_batch_loader(graphs)
        from torch_geometric.loader import DataLoader as GeoLoader

        return GeoLoader(graphs, batch_size=self.batch_size, shuffle=(split == "train"),
                         num_workers=self.num_workers)

    def train_dataloader(self):
        return self._loader("train")

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")

    def predict_dataloader(self):
        return self._loader("predict")
