"""Progress of env setup: events that `Setup` emits, and the console that shows them.

A person waiting for a 40 s install should see which env is being prepared, which step runs,
how long it has taken, where the log is, and the installer's own last line. Setup emits events
only once it builds something (a cached env emits none, so it costs nothing and prints
nothing); a reporter is any callable taking an event. `Console` renders them on a stream once
a setup has run for `delay` seconds: a live line on a terminal (with the installer's last line),
a few plain lines otherwise (one per step, and every `heartbeat` seconds a line with the elapsed
time and the installer's last line, so a CI log shows a long download moving).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

QUIET_VAR = "MINRAY_QUIET"
SHOW_AFTER_VAR = "MINRAY_PROGRESS_AFTER_SECONDS"
SHOW_AFTER_SECONDS = 1.0
PLAIN_HEARTBEAT_SECONDS = 30.0
_SPINNER = "|/-\\"


@dataclass(frozen=True)
class SetupStarted:
    """An env began building: its id, what it holds in a few words, its setup log."""
    env_id: str
    summary: str
    log_path: str | None


@dataclass(frozen=True)
class StepStarted:
    """A step of one field's setup (venv, download, unpack, install, check, create)."""
    env_id: str
    field: str
    step: str
    detail: str = ""


@dataclass(frozen=True)
class InstallerOutput:
    """A line a setup command printed (the installer's own progress)."""
    env_id: str
    line: str


@dataclass(frozen=True)
class SetupFinished:
    """The build ended: ready, failed (`error`), or interrupted (Ctrl-C, a job's stop)."""
    env_id: str
    seconds: float
    error: str | None = None
    interrupted: bool = False


Event = SetupStarted | StepStarted | InstallerOutput | SetupFinished
Reporter = Callable[[Event], None]


def show_after() -> float:
    """Seconds a setup runs before it is shown (MINRAY_PROGRESS_AFTER_SECONDS, default 1)."""
    try:
        return float(os.environ.get(SHOW_AFTER_VAR) or SHOW_AFTER_SECONDS)
    except ValueError:
        return SHOW_AFTER_SECONDS


def quiet() -> bool:
    """MINRAY_QUIET set to anything but "" or "0" silences progress."""
    return os.environ.get(QUIET_VAR, "") not in ("", "0")


@dataclass
class _Shown:
    """One env being prepared, as the console knows it."""
    started: SetupStarted
    t0: float
    step: str = "starting"
    last_line: str = ""
    shown: bool = False
    next_heartbeat: float = field(default=0.0)


class Console:
    """Renders events on `stream` (stderr by default) once a setup has run `delay` seconds.

    Thread-safe: the driver prepares envs on several threads at once. On a terminal one live
    line is redrawn by a ticker thread, which runs only while something is being prepared.
    """

    def __init__(self, stream: TextIO | None = None, *, delay: float | None = None,
                 live: bool | None = None, heartbeat: float = PLAIN_HEARTBEAT_SECONDS):
        self._stream = stream
        self._delay = show_after() if delay is None else delay
        self._heartbeat = heartbeat
        self._live = live
        self._lock = threading.Lock()
        self._envs: dict[str, _Shown] = {}
        self._ticker: threading.Thread | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    @property
    def live(self) -> bool:
        if self._live is None:
            isatty = getattr(self.stream, "isatty", None)
            self._live = bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"
        return self._live

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, SetupStarted):
                shown = self._envs[event.env_id] = _Shown(event, time.monotonic())
                if self._delay <= 0:
                    self._show(shown, shown.t0)
                if self._ticker is None:
                    self._ticker = threading.Thread(target=self._tick, daemon=True,
                                                    name="minray-progress")
                    self._ticker.start()
                return
            shown = self._envs.get(event.env_id)
            if shown is None:
                return
            if isinstance(event, StepStarted):
                shown.step = f"{event.field}: {event.step}"
                if event.detail:
                    shown.step += f" {event.detail}"
                if shown.shown and not self.live:
                    self._write(f"minray:   {shown.step} "
                                f"(at {time.monotonic() - shown.t0:.1f} s)\n")
                elif shown.shown:
                    self._redraw()
            elif isinstance(event, InstallerOutput):
                if event.line.strip():
                    shown.last_line = event.line.strip()
            elif isinstance(event, SetupFinished):
                del self._envs[event.env_id]
                if shown.shown:
                    self._finish(shown, event)

    def _finish(self, shown: _Shown, event: SetupFinished) -> None:
        what = _label(shown.started)
        if event.interrupted:
            text = f"minray: env {what} interrupted after {event.seconds:.1f} s\n"
        elif event.error is None:
            text = f"minray: env {what} ready in {event.seconds:.1f} s\n"
        else:
            text = (f"minray: env {what} failed after {event.seconds:.1f} s; "
                    f"log: {shown.started.log_path or '-'}\n")
        self._write(("\r\x1b[K" if self.live else "") + text)
        if self.live and self._envs:
            self._redraw()

    def _tick(self) -> None:
        """Show envs that have taken longer than the delay; redraw the live line."""
        while True:
            time.sleep(0.1 if self.live else 0.25)
            with self._lock:
                if not self._envs:
                    self._ticker = None
                    return
                now = time.monotonic()
                for shown in self._envs.values():
                    if not shown.shown and now - shown.t0 >= self._delay:
                        self._show(shown, now)
                    elif shown.shown and not self.live and now >= shown.next_heartbeat:
                        shown.next_heartbeat = now + self._heartbeat
                        said = f": {shown.last_line}" if shown.last_line else ""
                        self._write(f"minray:   still at {shown.step} after "
                                    f"{now - shown.t0:.0f} s{said}\n")
                if self.live and any(s.shown for s in self._envs.values()):
                    self._redraw()

    def _show(self, shown: _Shown, now: float) -> None:
        shown.shown = True
        shown.next_heartbeat = now + self._heartbeat
        log = shown.started.log_path
        self._write(("\r\x1b[K" if self.live else "")
                    + f"minray: preparing env {_label(shown.started)}"
                    + (f"; log: {log}" if log else "") + "\n")
        if not self.live and shown.step != "starting":
            self._write(f"minray:   {shown.step} (at {now - shown.t0:.1f} s)\n")

    def _redraw(self) -> None:
        shown = [s for s in self._envs.values() if s.shown]
        if not shown:
            return
        current = shown[-1]
        elapsed = time.monotonic() - current.t0
        spin = _SPINNER[int(elapsed * 10) % len(_SPINNER)]
        more = f" (+{len(shown) - 1} more)" if len(shown) > 1 else ""
        line = (f"{spin} {current.started.env_id[:12]} {current.step} "
                f"{elapsed:.1f}s{more}")
        if current.last_line:
            line += f"  {current.last_line}"
        width = _width(self.stream)
        self._write("\r\x1b[K" + line[:width - 1])

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not fail a setup
            pass


def _label(started: SetupStarted) -> str:
    return f"{started.env_id[:12]} ({started.summary})"


def _width(stream: TextIO) -> int:
    """The terminal's columns; 100 when it does not say (a pseudo-terminal whose size was never
    set reports 0)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or 100
    except (OSError, ValueError, AttributeError):
        return 100


_console: Console | None = None


def console() -> Reporter | None:
    """The process's console on stderr, or None when MINRAY_QUIET silences progress."""
    global _console
    if quiet():
        return None
    if _console is None:
        _console = Console()
    return _console
