"""One exclusive lock per output folder, so that two runs never write into the same folder at once:
:func:`folder_lock` holds an ``fcntl.flock`` on ``<folder>/<name>`` (the holder's host and pid written
inside) for as long as the ``with`` block runs; the kernel releases it when the process dies, so a killed
run leaves no stale lock. Used by ``betenet phonons`` (its ``--out``) and ``betenet dft run`` (each material
folder); training's run folders have their own :class:`~betenet.training.run_dir.RunLock`, which also
reports who holds them."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

from betenet.errors import InputError


@contextlib.contextmanager
def folder_lock(folder, name: str, holder: str = "another run"):
    """Hold ``<folder>/<name>`` exclusively; :class:`InputError` naming ``folder`` (and who holds it, when
    written) if ``holder`` — a phrase such as "another `betenet phonons` run" — has it already."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, "is a file, not a folder; give a folder for the output")
    path = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")
    except OSError as exc:
        raise InputError(folder, f"cannot write here ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            who = fh.read().strip()
            raise InputError(folder, f"{holder} is working on this folder" + (f" ({who})" if who else "")) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"host {socket.gethostname()} pid {os.getpid()}\n")
        fh.flush()
        yield path
    finally:
        fh.close()
