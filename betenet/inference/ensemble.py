"""Bootstrapped ensembles: collect the trained members of a sweep, predict a2F with every member and
combine the members into the ensemble prediction.

Collecting (:func:`load_ensemble`) from a sweep directory (one run folder per member, e.g.
``seed_0/``), one run folder, a checkpoint file, or a list of these. A run's checkpoint is
``checkpoints/<which>.ckpt`` (``final`` by default; ``classical``, ``critical``, ``modern`` or any
file name also work; layout: :class:`~betenet.training.run_dir.RunDir`), loaded with
``torch.load(..., weights_only=True)``. A member that failed (``FAILED.txt``), never finished or
cannot be read is reported in ``Ensemble.skipped`` with the reason and left out. Members must
share one network and one way of building graphs: the largest compatible group is kept (ties: the
group of the first member in natural order), and every other member is skipped with the settings
in which it differs. Each member keeps its run's ``config_resolved.yaml`` (from which
:meth:`Ensemble.datamodule` rebuilds the data it was trained on) and the elements of its
training set (for the unseen-element warnings of :mod:`betenet.inference.predict`).

Combining: :mod:`betenet.inference.combine` (mean a2F, properties of the mean, members' spread).

Calibrated spread: when the ensemble folder (one folder holding the member folders) has a
``calibration.json`` (``betenet calibrate``; :mod:`betenet.inference.calibration`) fitted for these
members and checkpoints, every std (properties and a2F band) is multiplied by its property's scale
and the prediction's ``calibration`` note says by what; otherwise the stds are the members' own.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from betenet import validation
from betenet.errors import InputError
from betenet.files import natural_key
from betenet.inference.calibration import Calibration, read_calibration
from betenet.inference.combine import (PROGRESS_MIN_STRUCTURES, EnsemblePrediction,
                                       combine_members, show_progress)
from betenet.physics.units import BIN_CENTRES_MEV, MU_STAR_DEFAULT, BinGrid
from betenet.training.run_dir import REGIME_CHECKPOINTS, RunDir, datamodule_from_config, fingerprint_differences

log = logging.getLogger(__name__)

__all__ = [
    "Member",
    "Ensemble",
    "EnsemblePrediction",
    "load_ensemble",
    "load_member",
    "combine_members",
    "detect_source",
    "show_progress",
    "MEMBER_CHECKPOINTS",
    "PROGRESS_MIN_STRUCTURES",
]

#: Checkpoint names a run folder holds (``checkpoints/<name>.ckpt``).
MEMBER_CHECKPOINTS = (RunDir.FINAL,) + REGIME_CHECKPOINTS
#: Network hyper-parameters that may differ between members (set from each member's own data).
_PER_MEMBER_NET_KEYS = ("num_neighbors", "fused")
#: Graph settings members must share (data config keys).
_GRAPH_KEYS = ("site_dos", "r_max", "self_loops", "allow_isolated", "spectrum")
@dataclass
class Member:
    """One trained member: its name (the run folder's), checkpoint, rebuilt module, the
    checkpoint's ``betenet`` block (regimes, fingerprint, training elements) and the run's resolved
    config (None when absent)."""

    name: str
    checkpoint: Path
    module: torch.nn.Module
    info: dict
    config: dict | None
    train_elements: frozenset[str] | None = None

    @property
    def hparams(self) -> dict:
        return dict(self.module.hparams)

    @property
    def run_dir(self) -> RunDir | None:
        return RunDir.of_checkpoint(self.checkpoint)


def detect_source(path) -> str:
    """Data source of a dataset folder, as the source registry tells it
    (:func:`betenet.data.sources.registry.detect_source`: ``bee_net`` or ``release`` when it holds
    ``database.json``, BEE-NET's by its index file or a2F columns, else ``directory``)."""
    from betenet.data.sources import detect_source as detect

    return detect(path)


@dataclass(repr=False)
class Ensemble:
    """The members that loaded and the ones skipped, as ``(name or path, reason)``; ``label`` names
    the folders and files they were collected from. ``repr`` is one line: members, variant, features,
    checkpoint, calibration and folder."""

    members: list[Member]
    skipped: list[tuple[str, str]]
    label: str
    calibration: Calibration | None = None  # applied to every std by predict

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        checkpoints = ", ".join(sorted({m.checkpoint.name for m in self.members}))
        features = ((self.config or {}).get("features") or {}).get("model")  # as recorded: repr never raises
        features = None if features in (None, "none") else features
        parts = [f"{len(self)} member{'s' if len(self) != 1 else ''}", f"variant {self.variant}",
                 *([f"features {features}"] if features else []), f"checkpoint {checkpoints}",
                 "calibrated" if self.calibration is not None else "not calibrated",
                 *([f"{len(self.skipped)} skipped"] if self.skipped else []), f"from {self.label}"]
        return f"Ensemble({', '.join(parts)})"

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def hparams(self) -> dict:
        return self.members[0].hparams

    @property
    def config(self) -> dict | None:
        """The first member's resolved run config that is readable (None when no member has one)."""
        return next((m.config for m in self.members if m.config is not None), None)

    @property
    def mu_star(self) -> float:
        return float(self.hparams.get("mu_star", MU_STAR_DEFAULT))

    @property
    def grid(self) -> BinGrid:
        """The binned grid the members predict on (their ``bins`` hyper-parameter; the paper's grid
        for checkpoints written before it was recorded)."""
        return BinGrid.from_config(self.hparams.get("bins"))

    @property
    def variant(self) -> str:
        """The variant name from the run config (``cso``, ``cpd``, ``fpd``), else from the input width."""
        cfg = self.config
        if cfg and isinstance(cfg.get("variant"), dict) and cfg["variant"].get("name"):
            return str(cfg["variant"]["name"])
        return "cso" if self.site_dos == "none" else "unknown"

    @property
    def site_dos(self) -> str | None:
        """Which site-projected PhDOS the nodes carry: ``none``, ``coarse`` or ``fine`` (from the
        run config; without one, ``none`` for a one-hot-only input and None when it cannot be told)."""
        cfg = self.config
        if cfg and isinstance(cfg.get("data"), dict) and "site_dos" in cfg["data"]:
            return str(cfg["data"]["site_dos"])
        from betenet.data.attributes import node_width

        in_dim = self.hparams["net"].get("in_dim")
        return "none" if in_dim == node_width() else None

    @property
    def features(self):
        """The members' pretrained site features (:class:`~betenet.pretrained.FeatureSettings`; model
        ``none`` for members trained without, or before features existed)."""
        from betenet.pretrained import FeatureSettings

        return FeatureSettings.from_mapping((self.config or {}).get("features"))

    @property
    def r_max(self) -> float:
        data = (self.config or {}).get("data") or {}
        return float(self.hparams["net"].get("r_max", data.get("r_max", 4.0)))

    @property
    def graph_settings(self) -> dict:
        """Keyword arguments of ``entry_to_graph`` matching how the members' graphs were built."""
        data = (self.config or {}).get("data") or {}
        spectrum = data.get("spectrum") or self.grid.as_dict()
        settings = dict(site_dos_kind=self.site_dos or "none", r_max=self.r_max,
                        self_loops=bool(data.get("self_loops", True)),
                        allow_isolated=bool(data.get("allow_isolated", False)),
                        spectrum=dict(spectrum))
        if data.get("node_attributes"):  # further registered node attributes (betenet/data/attributes/)
            settings["node_attributes"] = tuple(data["node_attributes"])
        return settings

    def trained_ids(self) -> tuple[set[str], list[str]]:
        """``(ids any member trained on, names of members without a bootstrap record)``, from each member's
        ``bootstrap.json``: what a held-out score must not contain."""
        ids, unknown = set(), []
        for m in self.members:
            run = m.run_dir
            record = run.read_bootstrap() if run is not None else None
            if not record or "train_ids" not in record:
                unknown.append(m.name)
                continue
            ids.update(str(i) for i in record["train_ids"])
        return ids, unknown

    def element_coverage(self) -> tuple[dict[str, int], int]:
        """``({element: members whose training set holds it}, members with a record of their
        training elements)``; members trained before that record existed count in neither."""
        known = [m.train_elements for m in self.members if m.train_elements is not None]
        counts: dict[str, int] = {}
        for elements in known:
            for e in elements:
                counts[e] = counts.get(e, 0) + 1
        return counts, len(known)

    def datamodule(self, data=None, source: str | None = None, cache_dir=None):
        """The members' data module, set up: same source, settings and test split as in training,
        or another dataset folder ``data`` (source detected, or ``source``) with the same graph
        settings. ``cache_dir`` overrides the graph/demo cache."""
        cfg = (self.config or {}).get("data")
        if not cfg:
            raise InputError(self.label, f"no member has a readable {RunDir.CONFIG}; pass --data")
        if data is not None:
            source = source or detect_source(data)
        return datamodule_from_config(cfg, "test", root=data, source=source, cache_dir=cache_dir)

    @torch.no_grad()
    def predict_members(self, graphs: Sequence, batch_size: int = 64, device: str | torch.device = "cpu",
                        progress: bool | str = "auto") -> np.ndarray:
        """a2F of every member for ``graphs`` (PyG ``Data``): [M, N, B] float64 (B bins of the members' grid).
        ``batch_size`` (graphs per forward pass) must be ≥ 1. Each batch is collated, cast and prepared for
        the fused path once and evaluated by every member (they share one network and graph construction:
        the same numbers as each member preparing its own), the members on ``device`` together."""
        from torch_geometric.data import Batch

        batch_size = validation.batch_size(batch_size)
        graphs = list(graphs)
        n = len(graphs)
        out_dim = int(self.hparams["net"].get("out_dim", len(BIN_CENTRES_MEV)))
        out = np.zeros((len(self.members), n, out_dim))
        if n == 0:
            return out
        device = torch.device(device)
        modules = [m.module.to(device).eval() for m in self.members]
        lead = modules[0]
        # the fused path's evaluator (models/fused) and the module's dtype cast; a plain torch module has neither
        evaluator = getattr(getattr(lead, "net", None), "evaluator", None)
        cast = getattr(lead, "_cast", lambda b: b)
        n_batches = -(-n // batch_size)
        try:
            with tqdm(total=len(modules) * n_batches, desc="predict", unit="batch",
                      disable=not show_progress(progress, n), leave=False) as bar:
                for start in range(0, n, batch_size):
                    # each batch collated, cast and prepared once for every member (one network, one graph
                    # construction: the members' own preparations would be the same)
                    batch = Batch.from_data_list([g.clone() for g in graphs[start:start + batch_size]]).to(device)
                    batch = cast(batch)
                    prepared = evaluator.prepare(batch) if evaluator is not None and evaluator.serves(batch) else None
                    for j, module in enumerate(modules):
                        pred = module(batch) if prepared is None else module.net(batch, prepared=prepared)
                        out[j, start:start + batch.num_graphs] = pred.detach().to("cpu", torch.float64).numpy()
                        bar.update()
        finally:
            for member in self.members:
                member.module.to("cpu")
        return out

    def predict(self, graphs: Sequence, mu_star: float | None = None, eliashberg: bool = False,
                batch_size: int = 64, device: str | torch.device = "cpu", progress: bool | str = "auto",
                ids: Iterable | None = None, formulas: Iterable | None = None) -> EnsemblePrediction:
        """Ensemble prediction for ``graphs``: members' a2F, mean ± std, properties of the mean a2F
        and their spread (:func:`combine_members`; scaled by ``calibration`` when the ensemble has
        one). ``mu_star`` defaults to the members' own; it must lie in [0, 0.4]
        (:func:`betenet.validation.mu_star`)."""
        graphs = list(graphs)
        mu = validation.mu_star(self.mu_star if mu_star is None else mu_star)
        member_a2f = self.predict_members(graphs, batch_size, device, progress)
        omega = self.grid.centres
        stats = combine_members(member_a2f, mu, omega_meV=omega, eliashberg=eliashberg,
                                progress=show_progress(progress, len(graphs)))
        ids = [str(getattr(g, "id", i)) for i, g in enumerate(graphs)] if ids is None else [str(i) for i in ids]
        formulas = [str(getattr(g, "formula", "")) for g in graphs] if formulas is None else list(formulas)
        note = None
        if self.calibration is not None:
            stats, note = self.calibration.apply(stats, len(self))
        return EnsemblePrediction(ids=ids, formulas=formulas, member_a2f=member_a2f, mu_star=mu, omega_meV=omega,
                                  calibration=note, **stats)

    def predict_structures(self, structures, ids: Iterable | None = None, labels: dict | None = None,
                           mu_star: float | None = None, eliashberg: bool = False, batch_size: int = 64,
                           device: str | torch.device = "cpu", progress: bool | str = "auto",
                           spectra: bool = False):
        """Predict pymatgen ``Structure``s or ASE ``Atoms`` (a list, or a dict id → structure;
        file paths work too): a pandas DataFrame with the columns of ``betenet predict``'s CSV
        (``id``, ``formula``, ``lambda``, ``lambda_std``, ..., ``status``, ``warnings``; NaN where
        a structure could not be predicted, ``status`` says why). ``ids`` default to the dict's
        keys or ``"0"``, ``"1"``, ...; CPD/FPD ensembles read each structure's site PhDOS from
        ``labels`` (id → record with the ``phdos_*`` columns of the directory format).

        ``spectra=True`` returns ``(table, spectra)`` instead, ``spectra`` a
        :class:`~betenet.inference.predict.PredictedSpectra`: the bin centres ``omega_meV`` [B] and
        the mean a2F and its std, ``a2f_mean`` / ``a2f_std`` [N, B], row ``i`` for the table's row
        ``i`` (NaN where that structure could not be predicted)::

            table, spectra = ens.predict_structures(structures, spectra=True)
            plt.plot(spectra.omega_meV, spectra.a2f_mean[0])

        Refused with ``InputError`` before anything is computed: ids repeated within one call (rows
        would be ambiguous: give unique ``ids``), ``batch_size`` below 1, ``mu_star`` outside
        [0, 0.4]. A structure that cannot be used (e.g. a cell of zero volume) only fails its own row."""
        from betenet.inference.inputs import build_rows
        from betenet.inference.predict import check_options, predict_rows, row_spectra

        check_options(batch_size, mu_star)
        if isinstance(structures, dict):
            ids = list(structures) if ids is None else list(ids)
            structures = list(structures.values())
        else:
            structures = list(structures)
            ids = [str(i) for i in range(len(structures))] if ids is None else list(ids)
        if len(ids) != len(structures):
            raise InputError("ids", f"{len(ids)} ids for {len(structures)} structures")
        repeated = sorted(i for i, n in Counter(map(str, ids)).items() if n > 1)
        if repeated:
            raise InputError("ids", f"repeated within one call: {', '.join(repeated[:5])}; give each structure "
                                    "its own id (ids=...)")
        items = [(str(i), s, None) for i, s in zip(ids, structures)]
        rows = build_rows(items, self, labels, progress=progress)
        frame, pred = predict_rows(self, rows, mu_star=mu_star, eliashberg=eliashberg, batch_size=batch_size,
                                   device=device, progress=progress)
        return (frame, row_spectra(rows, pred, self.grid.centres)) if spectra else frame


# --------------------------------------------------------------------------------------------
# Collecting members
# --------------------------------------------------------------------------------------------
def _train_elements(info: dict, run: RunDir | None) -> frozenset[str] | None:
    elements = info.get("train_elements")
    if elements is None and run is not None:
        try:
            elements = (run.read_member() or {}).get("train_elements")
        except InputError:
            elements = None
    return None if elements is None else frozenset(elements)


def load_member(path, name: str | None = None) -> Member:
    """Load one member checkpoint (``weights_only=True``); raises ``InputError`` naming the file
    when it is missing, unreadable or not a betenet member checkpoint."""
    from betenet.training.checkpoints import load_member_checkpoint

    path = Path(path)
    module, info = load_member_checkpoint(path)
    run = RunDir.of_checkpoint(path)
    if name is None:
        name = run.name if run is not None else path.stem
    return Member(name=name, checkpoint=path, module=module, info=info,
                  config=None if run is None else run.read_config(), train_elements=_train_elements(info, run))


def _candidates(path: Path, which: str) -> list[tuple[str, Path | None, str | None]]:
    """(member name, checkpoint path or None, reason when None) for one folder or checkpoint."""
    if path.is_file():
        run = RunDir.of_checkpoint(path)
        return [(run.name if run else path.stem, path, None)]
    if not path.is_dir():
        return [(str(path), None, "not found")]
    runs = [RunDir(path)] if RunDir(path).is_run_dir() else sorted(
        (RunDir(p) for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and RunDir(p).is_run_dir()),
        key=lambda r: natural_key(r.name))
    out = []
    for run in runs:
        ckpt = run.checkpoint(which)
        if ckpt.is_file():
            out.append((run.name, ckpt, None))
        elif run.failure() is not None:
            out.append((run.name, None, f"failed in training ({run.failure()})"))
        else:
            out.append((run.name, None, f"no {RunDir.CHECKPOINTS}/{ckpt.name} (training not finished, or that "
                                        "regime was never reached)"))
    return out


def _network_signature(hparams: dict) -> dict:
    net = {k: v for k, v in dict(hparams.get("net") or {}).items() if k not in _PER_MEMBER_NET_KEYS}
    return {"net": net, "dtype": hparams.get("dtype", "float32")}


def _data_signature(config: dict | None) -> dict | None:
    data = (config or {}).get("data")
    if not isinstance(data, dict):
        return None
    return {**{k: data.get(k) for k in _GRAPH_KEYS}, "node_attributes": list(data.get("node_attributes") or [])}


def _key(signature) -> str:
    return json.dumps(signature, sort_keys=True, default=str)


def _compatible_group(members: list[Member]) -> tuple[list[Member], list[tuple[str, str]]]:
    """The largest group of members sharing one network and one graph construction (members
    without a run config share any graph construction); ties go to the first member's group.
    Returns (kept, [(name, reason)]) with each reason naming the settings that differ."""
    nets = [_network_signature(m.hparams) for m in members]
    datas = [_data_signature(m.config) for m in members]
    groups: dict[tuple[str, str | None], list[int]] = {}
    for i, (net, data) in enumerate(zip(nets, datas)):
        groups.setdefault((_key(net), None if data is None else _key(data)), []).append(i)

    candidates = []
    for (net, data), idx in groups.items():
        if data is not None:
            candidates.append(sorted(idx + groups.get((net, None), [])))
        elif not any(n == net and d is not None for n, d in groups):
            candidates.append(sorted(idx))
    kept_idx = min(candidates, key=lambda c: (-len(c), c[0]))
    ref = kept_idx[0]
    kept = [members[i] for i in kept_idx]
    skipped = []
    sides = ("here", f"in the {len(kept)} member(s) kept")
    for i, m in enumerate(members):
        if i in kept_idx:
            continue
        diffs = fingerprint_differences(nets[i], nets[ref], sides=sides)
        if diffs:
            reason = "different network: " + "; ".join(diffs)
        else:
            diffs = fingerprint_differences(datas[i] or {}, datas[ref] or {}, sides=sides)
            reason = "different graph settings: " + "; ".join(f"data.{d}" for d in diffs)
        skipped.append((m.name, reason))
    return kept, skipped


def load_ensemble(paths, checkpoint: str = RunDir.FINAL, calibrated: bool = True) -> Ensemble:
    """Collect the members of ``paths`` (a sweep or run folder, a checkpoint file, the name of an
    ensemble shipped with betenet such as ``"jarvis-tc"``, or a list of these); see the module
    docstring. One ensemble folder's ``calibration.json`` is read and kept when it fits the members
    (else a warning says why not); ``calibrated=False`` ignores it (the members' own spread).
    Raises ``InputError`` when no member loads."""
    from betenet.inference.shipped import resolve

    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [resolve(s) for s in paths]  # a shipped ensemble's name, e.g. "jarvis-tc", where no such path exists
    label = ", ".join(str(s) for s in paths)
    if not paths:
        raise InputError("ensemble", "no ensemble folder or checkpoint given")
    loaded: list[Member] = []
    skipped: list[tuple[str, str]] = []
    for name, path, reason in (c for p in paths for c in _candidates(p, checkpoint)):
        if path is None:
            skipped.append((name, reason))
            continue
        try:
            loaded.append(load_member(path, name))
        except InputError as err:
            skipped.append((name, err.reason))
    members: list[Member] = []
    if loaded:
        members, different = _compatible_group(loaded)
        skipped += different
    for name, reason in skipped:
        log.warning("ensemble member %s skipped: %s", name, reason)
    if not members:
        detail = "; ".join(f"{n}: {r}" for n, r in skipped[:3]) or "no run folders or checkpoints found"
        raise InputError(label, f"no usable ensemble member ({detail})")
    unknown = [m.name for m in members if m.train_elements is None]
    if unknown:
        log.warning("members %s have no record of their training elements (trained before betenet kept it): "
                    "unseen elements are not flagged for them", ", ".join(unknown[:5]))
    ensemble = Ensemble(members=members, skipped=skipped, label=label)
    folder = paths[0] if len(paths) == 1 and paths[0].is_dir() and not RunDir(paths[0]).is_run_dir() else None
    calibration = read_calibration(folder) if calibrated and folder is not None else None
    if calibration is not None:
        reason = calibration.mismatch(ensemble)
        if reason:
            log.warning("%s not applied: %s", calibration.path, reason)
        else:
            ensemble.calibration = calibration
    return ensemble
