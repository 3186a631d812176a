"""Bootstrapped ensembles: collect the trained members of a sweep, predict a2F with every member and
combine the members into the ensemble prediction.

Collecting (:func:`load_ensemble`). A source is a sweep directory (one run directory per member,
e.g. ``seed_0/``), one run directory, a checkpoint file, or a list of these. A run's checkpoint is
``checkpoints/<which>.ckpt`` (``final`` by default; ``classical``, ``critical``, ``modern`` or any
file name also work), loaded with ``torch.load(..., weights_only=True)`` and rebuilt as
``BetenetModule(**hyper_parameters)``. A member that failed (``FAILED.txt``), never finished, cannot
be read or has a different network from the first member is reported in ``Ensemble.skipped`` with
the reason and left out; the others load. Each member keeps its run's ``config_resolved.yaml``,
from which :meth:`Ensemble.datamodule` rebuilds the data (and test split) it was trained on.

Combining (:func:`combine_members`), as the paper does: the ensemble's a2F is the mean of the
members' a2F, and λ, ω_log, ω_2 and T_c are computed from that mean spectrum. The uncertainty of a
property is the spread of the members' own values of it (each member's property from its own
a2F): the standard deviation over members with ddof = 0 (0 for a single member); the a2F band is
the per-bin standard deviation, also ddof = 0.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from betenet.errors import InputError
from betenet.physics.properties import PROPERTIES, properties
from betenet.physics.units import BIN_CENTRES_MEV, MU_STAR_DEFAULT, BinGrid

log = logging.getLogger(__name__)

__all__ = [
    "Member",
    "Ensemble",
    "EnsemblePrediction",
    "load_ensemble",
    "load_member",
    "combine_members",
    "detect_source",
    "MEMBER_CHECKPOINTS",
]

#: Checkpoint names a run directory holds (``checkpoints/<name>.ckpt``).
MEMBER_CHECKPOINTS = ("final", "classical", "critical", "modern")
#: The extra property computed with ``eliashberg=True``.
ELIASHBERG_KEY = "tc_eliashberg_K"
#: Network hyper-parameters that may differ between members (set from each member's own data).
_PER_MEMBER_NET_KEYS = ("num_neighbors",)


def _natural_key(name: str):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


@dataclass
class Member:
    """One trained member: its name (the run directory's), checkpoint, rebuilt module, the
    checkpoint's ``betenet`` block (regimes) and the run's resolved config (None when absent)."""

    name: str
    checkpoint: Path
    module: torch.nn.Module
    info: dict
    config: dict | None

    @property
    def hparams(self) -> dict:
        return dict(self.module.hparams)

    @property
    def run_dir(self) -> Path | None:
        parent = self.checkpoint.parent
        return parent.parent if parent.name == "checkpoints" else None


@dataclass
class EnsemblePrediction:
    """An ensemble's prediction for N materials (see :func:`combine_members`)."""

    ids: list[str]
    formulas: list[str]
    member_a2f: np.ndarray  # [M, N, B]
    a2f_mean: np.ndarray  # [N, B]
    a2f_std: np.ndarray  # [N, B]
    properties: dict[str, np.ndarray]  # of the mean a2F, [N] each
    properties_std: dict[str, np.ndarray]  # spread of the members' own values, [N] each
    mu_star: float
    omega_meV: np.ndarray = field(default_factory=lambda: np.asarray(BIN_CENTRES_MEV, dtype=float))


def combine_members(member_a2f, mu_star: float = MU_STAR_DEFAULT, omega_meV=BIN_CENTRES_MEV,
                    eliashberg: bool = False, progress: bool = False) -> dict:
    """Ensemble statistics of member spectra ``member_a2f`` [M, N, B] on ``omega_meV`` [B].

    Returns ``dict(a2f_mean [N, B], a2f_std [N, B], properties, properties_std)``; ``properties``
    maps :data:`~betenet.physics.properties.PROPERTIES` (λ, ω_log [K], ω_2 [K], Allen–Dynes T_c
    [K] with ``mu_star``) to [N] arrays computed from the mean a2F; ``properties_std`` the standard
    deviation (ddof = 0) over members of each member's own value. ``eliashberg=True`` adds
    ``tc_eliashberg_K`` (isotropic Eliashberg T_c, one solve per member and material: slow).
    """
    preds = np.asarray(member_a2f, dtype=np.float64)
    omega = np.asarray(omega_meV, dtype=np.float64)
    if preds.ndim != 3 or preds.shape[2] != omega.size or preds.shape[0] < 1:
        raise ValueError(f"member_a2f must be [M >= 1, N, {omega.size}], got shape {preds.shape}")
    mean = preds.mean(axis=0)
    std = preds.std(axis=0)
    props = {k: np.atleast_1d(v).astype(np.float64) for k, v in properties(omega, mean, mu_star).items()}
    m, n = preds.shape[:2]
    per_member = properties(omega, preds.reshape(m * n, -1), mu_star)
    spread = {k: np.asarray(per_member[k], dtype=np.float64).reshape(m, n).std(axis=0) for k in PROPERTIES}
    if eliashberg:
        from betenet.physics.eliashberg_solver import eliashberg_tc

        members_tc = np.empty((m, n))
        props[ELIASHBERG_KEY] = np.empty(n)
        for i in tqdm(range(n), desc="Eliashberg Tc", disable=not progress, leave=False):
            props[ELIASHBERG_KEY][i] = eliashberg_tc(omega, mean[i], mu_star)
            for j in range(m):
                members_tc[j, i] = eliashberg_tc(omega, preds[j, i], mu_star)
        spread[ELIASHBERG_KEY] = members_tc.std(axis=0)
    return dict(a2f_mean=mean, a2f_std=std, properties=props, properties_std=spread)


def detect_source(path) -> str:
    """Data source kind of a dataset folder: ``release`` when it holds ``database.json``, else
    ``directory``."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "dataset folder not found")
    return "release" if (path / "database.json").is_file() else "directory"


@dataclass
class Ensemble:
    """The members that loaded and the ones skipped, as ``(name or path, reason)``."""

    members: list[Member]
    skipped: list[tuple[str, str]]
    source: str

    def __len__(self) -> int:
        return len(self.members)

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
        in_dim = self.hparams["net"].get("in_dim")
        return "none" if in_dim == 118 else None

    @property
    def graph_settings(self) -> dict:
        """Keyword arguments of ``entry_to_graph`` matching how the members' graphs were built."""
        data = (self.config or {}).get("data") or {}
        spectrum = data.get("spectrum") or self.grid.as_dict()
        return dict(site_dos_kind=self.site_dos or "none",
                    r_max=float(self.hparams["net"].get("r_max", data.get("r_max", 4.0))),
                    self_loops=bool(data.get("self_loops", True)),
                    allow_isolated=bool(data.get("allow_isolated", False)),
                    spectrum=dict(spectrum))

    def datamodule(self, data=None, source: str | None = None, cache_dir=None):
        """The members' data module, set up: same source, settings and test split as in training,
        or another dataset folder ``data`` (source detected, or ``source``) with the same graph
        settings. ``cache_dir`` overrides the graph/demo cache."""
        import hydra

        cfg = dict((self.config or {}).get("data") or {})
        if not cfg:
            raise InputError(self.source, "no member has a readable config_resolved.yaml; pass --data")
        if data is not None:
            cfg["root"] = str(data)
            cfg["source"] = source or detect_source(data)
        elif source is not None:
            cfg["source"] = source
        if cache_dir is not None:
            cfg["cache_dir"] = str(cache_dir)
        dm = hydra.utils.instantiate(cfg)
        dm.setup("test")
        return dm

    @torch.no_grad()
    def predict_members(self, graphs: Sequence, batch_size: int = 64, device: str | torch.device = "cpu",
                        progress: bool = False) -> np.ndarray:
        """a2F of every member for ``graphs`` (PyG ``Data``): [M, N, 51] float64."""
        from torch_geometric.data import Batch

        graphs = list(graphs)
        n = len(graphs)
        out_dim = int(self.hparams["net"].get("out_dim", len(BIN_CENTRES_MEV)))
        out = np.zeros((len(self.members), n, out_dim))
        if n == 0:
            return out
        device = torch.device(device)
        chunks = [graphs[i:i + batch_size] for i in range(0, n, batch_size)]
        total = len(self.members) * len(chunks)
        with tqdm(total=total, desc="predict", unit="batch", disable=not progress, leave=False) as bar:
            for j, member in enumerate(self.members):
                module = member.module.to(device).eval()
                row = 0
                for chunk in chunks:
                    batch = Batch.from_data_list([g.clone() for g in chunk]).to(device)
                    pred = module(batch).detach().to("cpu", torch.float64).numpy()
                    out[j, row:row + len(chunk)] = pred
                    row += len(chunk)
                    bar.update()
                member.module.to("cpu")
        return out

    def predict(self, graphs: Sequence, mu_star: float | None = None, eliashberg: bool = False,
                batch_size: int = 64, device: str | torch.device = "cpu", progress: bool = False,
                ids: Iterable | None = None, formulas: Iterable | None = None) -> EnsemblePrediction:
        """Ensemble prediction for ``graphs``: members' a2F, mean ± std, properties of the mean a2F
        and their spread (:func:`combine_members`). ``mu_star`` defaults to the members' own."""
        graphs = list(graphs)
        mu = self.mu_star if mu_star is None else float(mu_star)
        member_a2f = self.predict_members(graphs, batch_size, device, progress)
        omega = self.grid.centres
        stats = combine_members(member_a2f, mu, omega_meV=omega, eliashberg=eliashberg, progress=progress)
        ids = [str(getattr(g, "id", i)) for i, g in enumerate(graphs)] if ids is None else [str(i) for i in ids]
        formulas = [str(getattr(g, "formula", "")) for g in graphs] if formulas is None else list(formulas)
        return EnsemblePrediction(ids=ids, formulas=formulas, member_a2f=member_a2f, mu_star=mu, omega_meV=omega,
                                  **stats)


# --------------------------------------------------------------------------------------------
# Collecting members
# --------------------------------------------------------------------------------------------
def _read_config(run_dir: Path | None) -> dict | None:
    if run_dir is None:
        return None
    path = run_dir / "config_resolved.yaml"
    if not path.is_file():
        return None
    try:
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as exc:  # an unreadable config only loses the data link, not the member
        log.warning("%s: unreadable (%s); the member loads without its data config", path, exc)
        return None
    return cfg if isinstance(cfg, dict) else None


def load_member(path, name: str | None = None) -> Member:
    """Load one member checkpoint (``weights_only=True``); raises ``InputError`` naming the file
    when it is missing, unreadable or not a betenet member checkpoint."""
    from betenet.models.module import BetenetModule

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, truncated zip, pickle refused by weights_only, ...
        raise InputError(path, f"unreadable checkpoint ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") \
            from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise InputError(path, "not a betenet member checkpoint (needs state_dict and hyper_parameters)")
    try:
        module = BetenetModule(**ckpt["hyper_parameters"])
        module.load_state_dict(ckpt["state_dict"])
    except Exception as exc:
        raise InputError(path, f"checkpoint does not rebuild a BetenetModule ({type(exc).__name__}: "
                               f"{' '.join(str(exc).split())[:200]})") from None
    module.eval()
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
    if name is None:
        name = run_dir.name if run_dir is not None else path.stem
    return Member(name=name, checkpoint=path, module=module, info=dict(ckpt.get("betenet") or {}),
                  config=_read_config(run_dir))


def _is_run_dir(path: Path) -> bool:
    return any((path / marker).exists() for marker in
               ("checkpoints", "config_resolved.yaml", "FAILED.txt", ".hydra", "bootstrap.json"))


def _checkpoint_file(which: str) -> str:
    return which if which.endswith(".ckpt") else f"{which}.ckpt"


def _candidates(source: Path, which: str) -> list[tuple[str, Path | None, str | None]]:
    """(member name, checkpoint path or None, reason when None) for one source path."""
    if source.is_file():
        run_dir = source.parent.parent if source.parent.name == "checkpoints" else None
        return [(run_dir.name if run_dir else source.stem, source, None)]
    if not source.is_dir():
        return [(str(source), None, "not found")]
    runs = [source] if _is_run_dir(source) else sorted(
        (p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".") and _is_run_dir(p)),
        key=lambda p: _natural_key(p.name))
    out = []
    for run in runs:
        ckpt = run / "checkpoints" / _checkpoint_file(which)
        if ckpt.is_file():
            out.append((run.name, ckpt, None))
        elif (run / "FAILED.txt").is_file():
            first = (run / "FAILED.txt").read_text(errors="replace").strip().splitlines()
            out.append((run.name, None, f"failed in training ({first[-1] if first else 'FAILED.txt'})"))
        else:
            out.append((run.name, None, f"no checkpoints/{ckpt.name} (training not finished, or that regime "
                                        "was never reached)"))
    return out


def _network_signature(hparams: dict) -> dict:
    net = {k: v for k, v in dict(hparams.get("net") or {}).items() if k not in _PER_MEMBER_NET_KEYS}
    return {"net": net, "dtype": hparams.get("dtype", "float32")}


def _data_signature(config: dict | None) -> dict | None:
    data = (config or {}).get("data")
    if not isinstance(data, dict):
        return None
    return {k: data.get(k) for k in ("site_dos", "r_max", "self_loops", "allow_isolated", "spectrum")}


def load_ensemble(sources, checkpoint: str = "final") -> Ensemble:
    """Collect the members of ``sources`` (a sweep or run directory, a checkpoint file, or a list
    of these); see the module docstring. Raises ``InputError`` when no member loads."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    sources = [Path(s) for s in sources]
    label = ", ".join(str(s) for s in sources)
    if not sources:
        raise InputError("ensemble", "no ensemble source given")
    members: list[Member] = []
    skipped: list[tuple[str, str]] = []
    candidates = [c for s in sources for c in _candidates(s, checkpoint)]
    for name, path, reason in candidates:
        if path is None:
            skipped.append((name, reason))
            continue
        try:
            member = load_member(path, name)
        except InputError as err:
            skipped.append((name, err.reason))
            continue
        if members:
            ref = members[0]
            if _network_signature(member.hparams) != _network_signature(ref.hparams):
                skipped.append((name, f"different network or dtype from member {ref.name}"))
                continue
            sig, ref_sig = _data_signature(member.config), _data_signature(ref.config)
            if sig is not None and ref_sig is not None and sig != ref_sig:
                skipped.append((name, f"different graph settings {sig} from member {ref.name} {ref_sig}"))
                continue
        members.append(member)
    for name, reason in skipped:
        log.warning("ensemble member %s skipped: %s", name, reason)
    if not members:
        detail = "; ".join(f"{n}: {r}" for n, r in skipped[:3]) or "no run directories or checkpoints found"
        raise InputError(label, f"no usable ensemble member ({detail})")
    return Ensemble(members=members, skipped=skipped, source=label)
