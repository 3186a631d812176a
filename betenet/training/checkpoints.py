"""A member's own checkpoint files: plain tensors and built-in types only, so they load with
``torch.load(..., weights_only=True)`` (never unpickling code), written atomically.

A checkpoint holds ``state_dict``, ``hyper_parameters`` (``BetenetModule``'s constructor
arguments) and a ``betenet`` block: the regimes, the final choice, the member's fingerprint
(``member``) and the elements of its training set (``train_elements``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from betenet.errors import InputError

__all__ = ["save_member_checkpoint", "load_member_checkpoint", "checkpoint_problem"]


def save_member_checkpoint(path: Path, state_dict: dict, hparams: dict, info: dict) -> None:
    """Write ``{"state_dict", "hyper_parameters", "betenet": info}`` to ``path`` (via a temporary file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": state_dict, "hyper_parameters": hparams, "betenet": info}, tmp)
    tmp.replace(path)


def _short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _read(path: Path):
    """The checkpoint's content (``weights_only``); ``InputError`` naming the file when it is missing
    or does not load."""
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, truncated zip, pickle refused by weights_only, ...
        raise InputError(path, f"unreadable checkpoint ({_short(exc)})") from None


def checkpoint_problem(path) -> str | None:
    """Why the checkpoint file ``path`` (betenet's or Lightning's) cannot be used: missing, not
    loadable (e.g. truncated) or without weights; None when it loads."""
    try:
        ckpt = _read(Path(path))
    except InputError as err:
        return err.reason
    return None if isinstance(ckpt, dict) and "state_dict" in ckpt else "holds no state_dict"


def load_member_checkpoint(path) -> tuple[torch.nn.Module, dict]:
    """``(BetenetModule in eval mode, the checkpoint's betenet block)``; raises ``InputError``
    naming the file when it is missing, unreadable or not a betenet member checkpoint."""
    from betenet.models.module import BetenetModule

    path = Path(path)
    ckpt = _read(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise InputError(path, "not a betenet member checkpoint (needs state_dict and hyper_parameters)")
    try:
        module = BetenetModule(**ckpt["hyper_parameters"])
        module.load_state_dict(ckpt["state_dict"])
    except Exception as exc:
        raise InputError(path, f"checkpoint does not rebuild a BetenetModule ({_short(exc)})") from None
    module.eval()
    return module, dict(ckpt.get("betenet") or {})
