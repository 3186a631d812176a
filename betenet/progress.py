"""One progress line for a long loop over a pool (``betenet phonons``, streaming ``betenet predict``):
on a terminal a tqdm bar with rate and ETA; elsewhere (a log file, a cluster job) a plain line every
``every`` items and one at the end, e.g.::

    phonons: 120/5000 structures (97 computed, 3 cached, 18 done, 2 failed), 1.31/s, ETA 1 h 02 min

Lines about single items (a failure and its reason) go through :meth:`ProgressLine.note`, which keeps
the bar intact. Everything goes to stderr unless another stream is given.
"""

from __future__ import annotations

import math
import sys
import time

__all__ = ["ProgressLine", "format_duration", "default_every"]


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``; ``?`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min"


def default_every(total: int) -> int:
    """Items between two plain progress lines: about 1 % of ``total``, at least 1 and at most 1000."""
    return int(min(1000, max(1, round(total / 100))))


class ProgressLine:
    """Progress of ``total`` items (module docstring). ``update(n, counts)`` after items finish
    (``counts``: a dict of running tallies shown in brackets), ``note(line)`` for a line of its own,
    ``close()`` at the end (prints the last plain line). ``tty`` None: whether ``stream`` is a terminal;
    ``every`` None: :func:`default_every`; ``initial``: items already done before this run (counted
    in the position, not in the rate)."""

    def __init__(self, total: int, desc: str, unit: str = "structure", every: int | None = None, stream=None,
                 tty: bool | None = None, initial: int = 0):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else bool(tty)
        self.every = int(every) if every else default_every(self.total)
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.done = int(initial)
        self.initial = int(initial)
        self.counts: dict = {}
        self.start = time.monotonic()
        self._last_line = self.done
        self.bar = None
        if self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.done, desc=desc, unit=unit, file=self.stream,
                            dynamic_ncols=True, leave=True)

    def _tallies(self) -> str:
        shown = [f"{v} {k}" for k, v in self.counts.items() if v]
        return ", ".join(shown)

    def line(self) -> str:
        """The plain progress line as it stands."""
        elapsed = time.monotonic() - self.start
        fresh = self.done - self.initial
        rate = fresh / elapsed if elapsed > 0 and fresh > 0 else math.nan
        eta = (self.total - self.done) / rate if rate and math.isfinite(rate) else math.nan
        tallies = self._tallies()
        rate_text = f"{rate:.3g}/s" if math.isfinite(rate) else "-/s"
        text = f"{self.desc}: {self.done}/{self.total} {self.unit}s"
        if tallies:
            text += f" ({tallies})"
        text += f", {rate_text}, elapsed {format_duration(elapsed)}"
        if self.done < self.total:
            text += f", ETA {format_duration(eta)}"
        return text

    def update(self, n: int = 1, counts: dict | None = None) -> None:
        self.done += int(n)
        if counts is not None:
            self.counts = dict(counts)
        if self.bar is not None:
            self.bar.update(int(n))
            if self.counts:
                self.bar.set_postfix_str(self._tallies(), refresh=False)
        elif self.done - self._last_line >= self.every:
            self._print(self.line())
            self._last_line = self.done

    def note(self, text: str) -> None:
        """A line of its own (e.g. an item that failed, with why), above the bar on a terminal."""
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            self._print(text)

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.done != self._last_line or self.done == self.initial:
            self._print(self.line())
            self._last_line = self.done

    def __enter__(self) -> "ProgressLine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
