"""Per-material resumable state: ``state.json`` records each step's status; a finished step is never rerun.

A step is recorded ``done`` only after its program exited with status 0, its output holds QE's
``JOB DONE`` and every product file exists (:func:`missing_products`). A step recorded ``done``
whose products have since disappeared is reported, not rerun. ``running`` (interrupted) and
``failed`` steps are run again. The file is rewritten atomically after every change, and
:func:`locked` keeps two runners off one folder (an ``fcntl`` lock, released when the process dies).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from betenet.dft.workflow import JOB_DONE, STATE_FILE, Step
from betenet.errors import InputError
from betenet.locks import folder_lock

LOCK_FILE = ".betenet-dft.lock"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class MaterialState:
    """The ``state.json`` of one material folder."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.path = self.workdir / STATE_FILE
        self.steps: dict[str, dict] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self.steps = dict(data["steps"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InputError(self.path, f"unreadable state file ({type(exc).__name__}: {exc})") from None

    def status(self, name: str) -> str:
        """'done', 'running', 'failed' or 'pending'."""
        return self.steps.get(name, {}).get("status", "pending")

    def is_done(self, name: str) -> bool:
        return self.status(name) == "done"

    def save(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"steps": self.steps}, indent=1))
        tmp.replace(self.path)

    def started(self, name: str, command: str) -> None:
        previous = self.steps.get(name, {})
        self.steps[name] = {"status": "running", "command": command, "started": _now(),
                            "host": socket.gethostname(), "attempt": previous.get("attempt", 0) + 1}
        self.save()

    def done(self, name: str, seconds: float, products: list[str]) -> None:
        self.steps[name].update(status="done", finished=_now(), seconds=round(seconds, 3), products=products)
        self.save()

    def failed(self, name: str, seconds: float, reason: str) -> None:
        self.steps[name].update(status="failed", finished=_now(), seconds=round(seconds, 3), reason=reason)
        self.save()


def missing_products(workdir: Path, step: Step) -> list[str]:
    """Products of ``step`` (files or folders, relative to ``workdir``) that do not exist."""
    return [p for p in step.products if not (workdir / p).exists()]


def output_finished(workdir: Path, step: Step) -> bool:
    """True when the step's output file ends a normal QE run (contains ``JOB DONE``)."""
    if step.output is None:
        return True
    path = workdir / step.output
    if not path.is_file():
        return False
    with path.open("rb") as fh:  # the banner is at the end; read at most the last 64 kB
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 65536))
        return JOB_DONE.encode() in fh.read()


def locked(workdir):
    """Hold an exclusive lock on a material folder; :class:`InputError` if another runner has it."""
    return folder_lock(workdir, LOCK_FILE, "another `betenet dft run`")
