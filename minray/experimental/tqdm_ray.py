"""A tqdm-style progress bar for tasks and actors, as Ray's `ray.experimental.tqdm_ray`.

Ray sends the bars of every worker to the driver, which draws them in place. Here workers write
to the driver's own stderr, so each bar is a line written there: at the first update, then at
most once per `flush_interval_s` (1 s), and on `close()`, e.g.

    train: 40%|########            | 40/100 it (pid 4242)

Lines, not a bar redrawn in place: several processes share the terminal, and lines from one
never overwrite another's. `position` is accepted and has no effect.
"""

from __future__ import annotations

import builtins
import os
import sys
import time
from collections.abc import Iterable, Iterator

_WIDTH = 20


def safe_print(*args, **kwargs) -> None:
    """Ray's print that does not disturb its bars; bars here are whole lines, so plain print."""
    builtins.print(*args, **kwargs)


class tqdm:  # noqa: N801 - Ray's (and tqdm's) name
    """A progress bar: `for x in tqdm(items, desc="load")`, or `update(n)` by hand."""

    DEFAULT_FLUSH_INTERVAL_SECONDS = 1.0

    def __init__(self, iterable: Iterable | None = None, desc: str | None = None,
                 total: int | None = None, unit: str | None = None,
                 position: int | None = None, flush_interval_s: float | None = None):
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except (TypeError, AttributeError):
                total = None
        self._iterable = iterable
        self._desc = desc or ""
        self._total = total
        self._unit = unit or "it"
        self._pos = position or 0
        self._n = 0
        self._closed = False
        self._interval = (self.DEFAULT_FLUSH_INTERVAL_SECONDS if flush_interval_s is None
                          else flush_interval_s)
        self._last_flush = float("-inf")
        self._last_line = ""

    def update(self, n: int = 1) -> None:
        self._n += n
        self._flush()

    def set_description(self, desc: str) -> None:
        self._desc = desc
        self._flush()

    def refresh(self) -> None:
        self._flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._flush(force=True)

    @property
    def n(self) -> int:
        return self._n

    @n.setter
    def n(self, n: int) -> None:
        self._n = n

    @property
    def total(self) -> int | None:
        return self._total

    @total.setter
    def total(self, total: int | None) -> None:
        self._total = total

    def __iter__(self) -> Iterator:
        if self._iterable is None:
            raise ValueError("No iterable provided")
        for item in self._iterable:
            self.update(1)
            yield item
        self.close()

    def __enter__(self) -> tqdm:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _flush(self, force: bool = False) -> None:
        """Write the bar if the interval passed; when forced, if it changed since last time."""
        now = time.monotonic()
        if not force and now - self._last_flush < self._interval:
            return
        line = self._line()
        if force and line == self._last_line:
            return
        self._last_flush, self._last_line = now, line
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def _line(self) -> str:
        prefix = f"{self._desc}: " if self._desc else ""
        if self._total:
            done = min(self._n / self._total, 1.0)
            filled = int(done * _WIDTH)
            bar = f"{done:4.0%}|{'#' * filled}{' ' * (_WIDTH - filled)}| {self._n}/{self._total}"
        else:
            bar = f"{self._n}"
        return f"{prefix}{bar} {self._unit} (pid {os.getpid()})"
