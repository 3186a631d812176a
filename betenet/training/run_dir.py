"""A member's run folder: the one place that knows its file layout, the fingerprint that says which
member it holds, and the lock that keeps a second training out of it.

Layout (everything else asks :class:`RunDir` for these paths)::

    <run>/member.json             which member the folder holds: its fingerprint (seed, variant, data
                                  settings and the data's own fingerprint, model and loss settings),
                                  the elements of its training set, its W&B run id and, once trained,
                                  its closing summary (``result``: betenet/training/closing.py)
    <run>/config_resolved.yaml    the resolved config
    <run>/bootstrap.json          the member's train (with weights), validation and test ids
    <run>/rejected.json           entries the data source left out, each with its reason
    <run>/metrics.csv             one row per epoch: the complete record, kept across resumes
    <run>/regimes.json            classical / critical / modern epochs, the final choice, test metrics
    <run>/double_descent.png
    <run>/FAILED.txt              traceback of a member that failed in a sweep
    <run>/checkpoints/last.ckpt   rolling Lightning checkpoint (resume)
    <run>/checkpoints/{classical,critical,modern,final}.ckpt
    <run>/.hydra/                 the command's Hydra config, overrides and settings
    <run>/.lock                   the lock file (``fcntl.flock``), holder's pid and host inside

A training resumes from ``last.ckpt``, or reports the member complete, only when the requested
member's fingerprint equals every record of the folder (``member.json`` and the fingerprint stored
in each checkpoint); otherwise :class:`MemberMismatch` names the folder and the differing settings.
:meth:`RunDir.lock` holds an OS lock for the whole training: a second training of the same folder
stops with :class:`RunDirBusy` before it writes anything. The lock dies with its process, so a
lock file left behind by ``kill -9`` never blocks.
"""

from __future__ import annotations

import copy
import fcntl
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from betenet.errors import InputError
from betenet.files import natural_key, write_json

log = logging.getLogger(__name__)

__all__ = ["RunDir", "RunLock", "RunDirBusy", "MemberMismatch", "member_fingerprint", "data_fingerprint",
           "fingerprint_differences", "datamodule_from_config", "REGIME_CHECKPOINTS"]

#: Checkpoints of the three regimes (``checkpoints/<regime>.ckpt``).
REGIME_CHECKPOINTS = ("classical", "critical", "modern")
#: Data settings that do not change which member a folder holds: where caches live, loader workers,
#: and where the data lies (its content is the data fingerprint, so a moved dataset is the same data).
_DATA_NOT_IDENTITY = ("_target_", "cache_dir", "num_workers", "root")
#: Network settings that do not change the member: ``fused`` is the same function computed faster.
_NET_NOT_IDENTITY = ("fused",)
#: Checkpoint key holding the member fingerprint (Lightning's last.ckpt and betenet's own checkpoints).
CHECKPOINT_KEY = "betenet_member"


class RunDirBusy(InputError):
    """Another process is training into this run folder."""


class MemberMismatch(InputError):
    """The run folder holds another member than the one requested."""


# --------------------------------------------------------------------------------------------
# Member fingerprint
# --------------------------------------------------------------------------------------------
def _plain(cfg, keys=("seed", "variant", "data", "model")) -> dict:
    """``keys`` of a config (DictConfig, resolved, or a plain dict) as plain containers."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
                for k in keys if k in cfg}
    return copy.deepcopy({k: cfg[k] for k in keys if k in cfg})


def data_fingerprint(data: Mapping) -> str:
    """The fingerprint of a data config's source, as its registry entry computes it
    (:mod:`betenet.data.sources.registry`): the demo set's generator key (its content follows from
    generator version, size and seed), else the source folder's file fingerprint (names and contents)."""
    from betenet.data.sources import get_source

    return get_source(data.get("source")).fingerprint(data)


def _other_sources_settings(source) -> tuple[str, ...]:
    """The data settings that belong to registered sources other than ``source`` (the demo's size and
    seed, for any source but the demo)."""
    from betenet.data.sources import find_source, source_names

    own = set(getattr(find_source(source), "settings", ()))
    return tuple(sorted({k for name in source_names() for k in find_source(name).settings} - own))


def _member_data(data: Mapping) -> dict:
    """The data settings that define a member (``_DATA_NOT_IDENTITY`` and the settings of other sources
    left out; ``label_bounds`` only when not the default, ``node_attributes`` only when some are named,
    ``subsample_fraction`` only for ``bootstrap=subsample``, so that folders trained before these settings existed
    keep their member)."""
    from betenet.data.sources.base import LABEL_BOUNDS

    drop = _DATA_NOT_IDENTITY + _other_sources_settings(data.get("source"))
    if data.get("label_bounds") in (None, LABEL_BOUNDS):
        drop += ("label_bounds",)
    if not data.get("node_attributes"):
        drop += ("node_attributes",)
    if data.get("bootstrap") != "subsample":  # the share of a subsample defines only subsampled members
        drop += ("subsample_fraction",)
    from betenet.phonons.settings import PhononSettings

    out = {k: v for k, v in data.items() if k not in drop}
    phonons = out.get("phonons")
    if isinstance(phonons, Mapping) and phonons.get("max_atoms") == PhononSettings.max_atoms:
        # the atom limit at its default, as folders trained before the setting existed had none
        out["phonons"] = {k: v for k, v in phonons.items() if k != "max_atoms"}
    return out


def _comparable(fingerprint: Mapping) -> dict:
    """A stored fingerprint with the data settings :func:`member_fingerprint` keeps now."""
    out = dict(fingerprint)
    if isinstance(out.get("data"), Mapping):
        out["data"] = _member_data(out["data"])
    if isinstance(out.get("model"), Mapping):
        out["model"] = _member_model(out["model"])
    return out


#: Loss settings that got a config entry after members were trained, with the value those members used: left out
#: of the fingerprint while at that value, so their folders keep their member.
_LOSS_DEFAULTS_ADDED_LATER = {"tc_weight_power": 0.0, "tc_weight_scale_K": 5.0}


def _member_model(model: Mapping) -> dict:
    """The model settings that define a member: the loss's ``property_scales`` (and the settings of
    ``_LOSS_DEFAULTS_ADDED_LATER``) only when not the default, so that folders trained before the setting had a
    config entry keep their member."""
    from betenet.models.losses import DEFAULT_PROPERTY_SCALES

    out = dict(model)
    loss = out.get("loss")
    if isinstance(loss, Mapping):
        drop = {k for k, v in _LOSS_DEFAULTS_ADDED_LATER.items() if k in loss and loss[k] == v}
        if dict(loss.get("property_scales") or DEFAULT_PROPERTY_SCALES) == DEFAULT_PROPERTY_SCALES:
            drop.add("property_scales")
        out["loss"] = {k: v for k, v in loss.items() if k not in drop}
    return out


def member_fingerprint(cfg, with_data_fingerprint: bool = True) -> dict:
    """What defines a member: ``seed``, ``variant``, the data settings and the data's fingerprint
    (its content), the model and loss settings. Settings that only say where or how fast (data and
    cache folders, loader workers, ``model.net.fused``) and trainer / callback settings (how long)
    are left out."""
    plain = _plain(cfg)
    data = _member_data(dict(plain.get("data") or {}))
    model = {k: v for k, v in dict(plain.get("model") or {}).items() if not k.startswith("_")}
    model["net"] = {k: v for k, v in dict(model.get("net") or {}).items() if k not in _NET_NOT_IDENTITY}
    out = {"seed": plain.get("seed"), "variant": plain.get("variant"), "data": data, "model": _member_model(model)}
    if with_data_fingerprint:
        out["data_fingerprint"] = data_fingerprint(plain.get("data") or {})
    return out


def _flatten(obj, prefix: str = "") -> dict[str, object]:
    if isinstance(obj, Mapping) and obj:
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def fingerprint_differences(stored: Mapping, requested: Mapping, ignore: tuple[str, ...] = (),
                            sides: tuple[str, str] = ("in the folder", "requested")) -> list[str]:
    """``"key: A in the folder, B requested"`` for every setting (dotted key) that differs;
    ``sides`` names the two records."""
    a, b = _flatten(stored), _flatten(requested)
    missing = object()
    keys = list(b) + [k for k in a if k not in b]
    out = []
    for key in keys:
        if key in ignore or any(key.startswith(f"{i}.") for i in ignore):
            continue
        x, y = a.get(key, missing), b.get(key, missing)
        if x == y:
            continue
        if key == "data_fingerprint":
            out.append("the data's files changed since this member was trained (data fingerprint "
                       f"{str(x)[:12]}... in the folder, {str(y)[:12]}... now)")
            continue
        shown = ["(absent)" if v is missing else json.dumps(v) for v in (x, y)]
        out.append(f"{key}: {shown[0]} {sides[0]}, {shown[1]} {sides[1]}")
    return out


# --------------------------------------------------------------------------------------------
# Lock
# --------------------------------------------------------------------------------------------
class RunLock:
    """An exclusive ``fcntl.flock`` on ``path`` for as long as it is held (context manager).

    The holder's pid, host, start time and command are written into the file for the message a
    second process gets. The OS drops the lock when the holder dies, so a file left by ``kill -9``
    is stale and taken over (``stale`` then holds what the dead holder wrote)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: int | None = None
        self.stale: dict | None = None

    def _read(self, fd: int) -> dict | None:
        try:
            text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            return json.loads(text) if text else None
        except (OSError, ValueError):
            return None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read(fd)
            os.close(fd)
            who = (f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"
                   if holder else "another process")
            raise RunDirBusy(self.path.parent, f"another training is using this run folder ({who}); wait for "
                                               "it to end or train into another folder (hydra.run.dir=...)") from None
        self.stale = self._read(fd)
        if self.stale:
            log.info("run folder %s: lock left by pid %s on %s (no longer running) taken over", self.path.parent,
                     self.stale.get("pid"), self.stale.get("host"))
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:1000]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)  # an empty file: released cleanly
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# --------------------------------------------------------------------------------------------
# Data module from a run's config
# --------------------------------------------------------------------------------------------
def datamodule_from_config(data_cfg: Mapping, stage: str = "test", root=None, source: str | None = None,
                           cache_dir=None):
    """A ``BetenetDataModule`` from a run's ``data`` config, set up for ``stage``: the same source,
    settings and splits as in training, or another dataset folder ``root`` (with its ``source``)
    read with the same graph settings. ``cache_dir`` overrides the graph/demo cache."""
    import hydra

    cfg = dict(data_cfg)
    if root is not None:
        cfg["root"] = str(root)
    if source is not None:
        cfg["source"] = source
    if cache_dir is not None:
        cfg["cache_dir"] = str(cache_dir)
    dm = hydra.utils.instantiate(cfg)
    dm.setup(stage)
    return dm


# --------------------------------------------------------------------------------------------
# The run folder
# --------------------------------------------------------------------------------------------
class RunDir:
    """One member's run folder (see the module docstring for its layout)."""

    MEMBER = "member.json"
    CONFIG = "config_resolved.yaml"
    BOOTSTRAP = "bootstrap.json"
    REJECTED = "rejected.json"
    METRICS = "metrics.csv"
    REGIMES = "regimes.json"
    FIGURE = "double_descent.png"
    FAILED = "FAILED.txt"
    HYDRA = ".hydra"
    LOCK = ".lock"
    CHECKPOINTS = "checkpoints"
    LAST = "last"
    FINAL = "final"
    #: Anything of these marks a folder as a run folder.
    MARKERS = (CHECKPOINTS, MEMBER, CONFIG, FAILED, HYDRA, BOOTSTRAP)
    #: The files of the folder itself that it owns, and the sub-folders all of whose files it owns.
    FILES = (MEMBER, CONFIG, BOOTSTRAP, REJECTED, METRICS, REGIMES, FIGURE, FAILED, LOCK)
    FOLDERS = (CHECKPOINTS, HYDRA)

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def find(cls, root) -> list[RunDir]:
        """The run folders at or below ``root``, at any depth (a sweep with ``hydra.sweep.subdir`` of
        several levels), in natural order; nothing inside a run folder, nor hidden or ``wandb``
        folders, is searched."""
        root = Path(root)
        if cls(root).is_run_dir():
            return [cls(root)]
        if not root.is_dir():
            return []
        found = []
        for child in sorted(root.iterdir(), key=lambda p: natural_key(p.name)):
            if child.is_dir() and not child.name.startswith(".") and child.name != "wandb":
                found += cls.find(child)
        return found

    @classmethod
    def of_checkpoint(cls, checkpoint) -> RunDir | None:
        """The run folder a checkpoint file lies in (``<run>/checkpoints/x.ckpt``), else None."""
        parent = Path(checkpoint).parent
        return cls(parent.parent) if parent.name == cls.CHECKPOINTS else None

    @classmethod
    def owner_of(cls, path) -> RunDir | None:
        """The run folder of which ``path`` is a file (one of :data:`FILES`, or anything under
        :data:`FOLDERS`), whether or not that file exists yet; None when it is no run folder's."""
        path = Path(path).absolute()
        if path.name in cls.FILES and cls(path.parent).is_run_dir():
            return cls(path.parent)
        for folder in path.parents:
            if folder.name in cls.FOLDERS and cls(folder.parent).is_run_dir():
                return cls(folder.parent)
        return None

    # ---- paths -----------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / self.CHECKPOINTS

    def checkpoint(self, which: str = FINAL) -> Path:
        """``checkpoints/<which>.ckpt`` (``which`` may already end in ``.ckpt``)."""
        return self.checkpoint_dir / (which if which.endswith(".ckpt") else f"{which}.ckpt")

    @property
    def last(self) -> Path:
        return self.checkpoint(self.LAST)

    @property
    def final(self) -> Path:
        return self.checkpoint(self.FINAL)

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def figure(self) -> Path:
        return self.path / self.FIGURE

    # ---- state -----------------------------------------------------------------------------
    def is_run_dir(self) -> bool:
        return self.path.is_dir() and any((self.path / m).exists() for m in self.MARKERS)

    def checkpoint_problem(self, which: str = FINAL) -> str | None:
        """Why ``checkpoints/<which>.ckpt`` cannot be used (missing, truncated, ...); None when it loads."""
        from betenet.training.checkpoints import checkpoint_problem

        return checkpoint_problem(self.checkpoint(which))

    def is_complete(self) -> bool:
        """``final.ckpt`` loads and ``regimes.json`` exists (a truncated final checkpoint is not a member)."""
        return (self.path / self.REGIMES).is_file() and self.checkpoint_problem(self.FINAL) is None

    def set_aside(self, which: str) -> Path:
        """Move ``checkpoints/<which>.ckpt`` to ``<which>.ckpt.corrupt`` (kept for a look; replacing an
        older one), so that neither a resume nor an ensemble reads it; returns the new path."""
        path = self.checkpoint(which)
        return path.replace(path.with_name(path.name + ".corrupt"))

    def failure(self) -> str | None:
        """The last line of ``FAILED.txt`` (the error), or None when the member did not fail."""
        path = self.path / self.FAILED
        if not path.is_file():
            return None
        lines = path.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else self.FAILED

    def status(self) -> str | None:
        """``complete`` (its final checkpoint loads), ``failed``, ``incomplete`` (started, not finished)
        or None (not a run)."""
        if self.checkpoint_problem(self.FINAL) is None:
            return "complete"
        if (self.path / self.FAILED).is_file():
            return "failed"
        return "incomplete" if self.is_run_dir() else None

    # ---- records ---------------------------------------------------------------------------
    def _write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(text)
        tmp.replace(path)
        return path

    def _write_json(self, name: str, obj, indent: int | None = 2) -> Path:
        return write_json(self.path / name, obj, indent=indent)

    def _read_json(self, name: str) -> dict | None:
        path = self.path / name
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(path, f"unreadable ({exc})") from None

    def write_config(self, cfg) -> Path:
        from omegaconf import OmegaConf

        return self._write_text(self.CONFIG, OmegaConf.to_yaml(cfg, resolve=True))

    def read_config(self) -> dict | None:
        """The resolved run config as a plain dict; None when absent or unreadable (with a warning)."""
        path = self.path / self.CONFIG
        if not path.is_file():
            return None
        try:
            from omegaconf import OmegaConf

            cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        except Exception as exc:  # an unreadable config only loses the data link, not the member
            log.warning("%s: unreadable (%s)", path, exc)
            return None
        return cfg if isinstance(cfg, dict) else None

    def write_bootstrap(self, record: dict) -> Path:
        return self._write_json(self.BOOTSTRAP, record, indent=1)

    def read_bootstrap(self) -> dict | None:
        return self._read_json(self.BOOTSTRAP)

    def write_regimes(self, summary: dict) -> Path:
        return self._write_json(self.REGIMES, summary)

    def read_regimes(self) -> dict | None:
        return self._read_json(self.REGIMES)

    def write_rejected(self, rejected) -> Path:
        return self._write_json(self.REJECTED, [{"id": str(i), "reason": str(r)} for i, r in rejected], indent=1)

    def read_rejected(self) -> list[dict] | None:
        return self._read_json(self.REJECTED)

    def write_failed(self, text: str) -> Path:
        return self._write_text(self.FAILED, text)

    def clear_failed(self) -> None:
        (self.path / self.FAILED).unlink(missing_ok=True)

    def write_hydra_snapshot(self, task_cfg) -> None:
        """Hydra's per-job record (``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``) of
        ``task_cfg``, written under the lock (``hydra.output_subdir`` is null so that Hydra does
        not write it before the lock is held). Nothing when not run by Hydra."""
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        if not HydraConfig.initialized():
            return
        hydra_cfg = HydraConfig.get()
        self._write_text(f"{self.HYDRA}/config.yaml", OmegaConf.to_yaml(task_cfg))
        self._write_text(f"{self.HYDRA}/hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})))
        self._write_text(f"{self.HYDRA}/overrides.yaml", OmegaConf.to_yaml(hydra_cfg.overrides.task))

    # ---- member identity ---------------------------------------------------------------------
    def read_member(self) -> dict | None:
        """``member.json``: ``{"fingerprint", "train_elements", "wandb_run_id"}`` or None."""
        return self._read_json(self.MEMBER)

    def write_member(self, fingerprint: dict, train_elements=None, wandb_run_id: str | None = None) -> dict:
        record = {"fingerprint": fingerprint,
                  "train_elements": None if train_elements is None else sorted(train_elements),
                  "wandb_run_id": wandb_run_id}
        self._write_json(self.MEMBER, record)
        return record

    def write_member_result(self, result: dict) -> dict:
        """Add the member's closing summary (``betenet.training.closing``) to ``member.json`` as
        ``result``; the fingerprint and the rest of the record are kept."""
        record = self.read_member() or {}
        record["result"] = result
        self._write_json(self.MEMBER, record)
        return record

    def read_member_result(self) -> dict | None:
        """The closing summary kept in ``member.json`` (None before the member finished)."""
        return (self.read_member() or {}).get("result")

    def wandb_run_id(self) -> str:
        """The member's W&B run id, kept in ``member.json`` so a resumed run logs to the same run."""
        record = self.read_member() or {}
        return record.get("wandb_run_id") or uuid.uuid4().hex[:12]

    def _stored_fingerprints(self) -> Iterator[tuple[str, dict | None]]:
        """(record name, fingerprint) for every record of the folder that names its member."""
        import torch

        member = self.read_member()
        if member is not None:
            yield self.MEMBER, member.get("fingerprint")
        for ckpt in (self.last, self.final):
            if ckpt.is_file():
                try:
                    data = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
                except Exception as exc:  # set aside by the training run (betenet.training.run)
                    log.warning("%s: unreadable (%s); its member is not checked", ckpt, type(exc).__name__)
                    continue
                stored = data.get(CHECKPOINT_KEY) if isinstance(data, dict) else None
                if stored is None and isinstance(data, dict):
                    stored = (data.get("betenet") or {}).get("member")
                if stored is not None:
                    yield f"{self.CHECKPOINTS}/{ckpt.name}", stored

    def check_member(self, requested: dict) -> None:
        """Raise :class:`MemberMismatch` unless every record of the folder that names a member
        (``member.json``, the fingerprint in ``last.ckpt`` / ``final.ckpt``; for folders written
        before fingerprints, ``config_resolved.yaml``) names ``requested``."""
        found = False
        for record, stored in self._stored_fingerprints():
            found = True
            diffs = fingerprint_differences(_comparable(stored or {}), requested)
            if diffs:
                raise MemberMismatch(self.path, self._mismatch_message(record, diffs))
        if found:
            return
        has_checkpoints = self.last.is_file() or self.final.is_file()
        if not has_checkpoints:
            return
        legacy = self.read_config()
        if legacy is None:
            raise MemberMismatch(self.path, "holds checkpoints but no record of which member they are "
                                            f"({self.MEMBER} or {self.CONFIG}); train into another folder")
        stored = member_fingerprint(legacy, with_data_fingerprint=False)
        diffs = fingerprint_differences(stored, requested, ignore=("data_fingerprint", "model.net.num_neighbors"))
        if diffs:
            raise MemberMismatch(self.path, self._mismatch_message(self.CONFIG, diffs))

    @staticmethod
    def _mismatch_message(record: str, diffs: list[str]) -> str:
        shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        return (f"this run folder holds another member ({record}: {shown}); nothing was changed. Train this "
                "member into another folder (hydra.run.dir=... or a sweep subdir), or remove this folder")

    # ---- lock and data ---------------------------------------------------------------------
    def lock(self) -> RunLock:
        """The folder's lock (a context manager); raises :class:`RunDirBusy` when held elsewhere."""
        return RunLock(self.path / self.LOCK)

    def datamodule(self, stage: str = "test", root=None, source: str | None = None, cache_dir=None):
        """The member's data module rebuilt from its ``config_resolved.yaml`` (see
        :func:`datamodule_from_config`)."""
        cfg = self.read_config()
        if cfg is None or not isinstance(cfg.get("data"), dict):
            raise InputError(self.path, f"no readable {self.CONFIG} (not a training run folder?)")
        return datamodule_from_config(cfg["data"], stage, root=root, source=source, cache_dir=cache_dir)
