"""Process-level settings for training and inference speed: torch threads and the C allocator.

Full-batch training allocates and frees the same large temporaries every epoch. glibc's malloc returns
freed memory at the top of its heap to the system (``M_TRIM_THRESHOLD``) and serves large blocks by fresh
``mmap`` (``M_MMAP_THRESHOLD``), so every epoch page-faults those tensors in again, unless the heap keeps
its memory (:func:`keep_freed_memory`; measured in benchmarks/RESULTS.md, "Noise, threads and the
allocator"). The price is that the process keeps its peak heap after a spike instead of shrinking back,
which a training process reaches again in the next epoch anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform
from dataclasses import dataclass
from typing import Optional

import torch

from betenet.errors import InputError

log = logging.getLogger(__name__)

#: glibc ``mallopt`` parameters (malloc.h).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: Heap top kept instead of trimmed; extra heap requested at each growth; largest block served from the
#: heap (glibc caps this one at half its 64 MiB heap size on 64-bit machines).
TRIM_THRESHOLD_BYTES = 1 << 30
TOP_PAD_BYTES = 256 << 20
MMAP_THRESHOLD_BYTES = 32 << 20


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse (module doc). True when applied; False where the C library
    is not glibc (macOS, musl, Windows), where nothing is changed."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        settings = ((M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES), (M_TOP_PAD, TOP_PAD_BYTES),
                    (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
        return all(libc.mallopt(param, value) == 1 for param, value in settings)
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class RuntimeReport:
    threads: int
    keep_freed_memory: bool


def configure(threads: Optional[int] = None, keep_memory: bool = True,
              setting: str = "runtime.threads") -> RuntimeReport:
    """Apply the runtime settings of a training or inference process.

    ``threads``: torch intra-op threads (None or 0 keeps torch's choice). Several members trained side by
    side on one machine should take one or a few threads each: OpenMP barriers stall badly when another
    process holds a core (benchmarks/RESULTS.md). ``keep_memory``: :func:`keep_freed_memory`. ``setting``
    names the setting in error messages (the config key, or a command-line option).
    """
    if threads is not None and int(threads) < 0:
        raise InputError(setting, f"must be >= 0 (0 or null: torch's choice), got {threads}")
    if threads:
        torch.set_num_threads(int(threads))
    kept = keep_freed_memory() if keep_memory else False
    report = RuntimeReport(threads=torch.get_num_threads(), keep_freed_memory=kept)
    log.info("runtime: %d torch threads, keep freed memory: %s", report.threads, report.keep_freed_memory)
    return report


#: ``extra=`` of a betenet log record meant for the run's log file only (what stdout already shows, e.g.
#: the closing summary of a member).
FILE_ONLY = {"console": False}


class ConsoleFilter(logging.Filter):
    """The console handler's filter (conf/config.yaml, ``hydra.job_logging``): betenet's own records (but not
    those logged with ``extra=FILE_ONLY``), and any record at ERROR or above. Third-party information and
    warnings (Lightning's hardware lines and tips, deprecations captured from ``warnings``) go to the run's
    log file only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        return record.name.startswith("betenet") and getattr(record, "console", True)


def quiet_third_parties() -> None:
    """Route Python warnings into logging (so :class:`ConsoleFilter` keeps them off the console and the log
    file keeps them) and ask W&B to print nothing but errors (``WANDB_SILENT``, unless the user set it)."""
    import os

    logging.captureWarnings(True)
    os.environ.setdefault("WANDB_SILENT", "true")
