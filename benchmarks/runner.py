"""Run one driver script in a fresh process and collect its timings.

Every scenario runs in its own interpreter so that minray and Ray never share a process, and a
crash or hang in one becomes an error string in the report instead of the end of the suite.
Drivers print `BENCH {json}` lines. Processes they leave behind are found by pid: by a marker
in their environment (inherited by workers, raylets, GCS), and, since Ray's agents overwrite
their environ with a process title, as descendants of the suite, which makes itself the
subreaper of its orphans.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psutil

from runtime_env import processes

MARKER = "MINRAY_BENCH_RUN"
DRIVERS = Path(__file__).with_name("drivers.py")
SUITE = uuid.uuid4().hex[:8]  # every marker starts with it: one sweep finds all of ours


def new_marker() -> str:
    return f"{SUITE}-{uuid.uuid4().hex}"


class BenchError(RuntimeError):
    """A driver failed; the message is what the report shows instead of a number."""


def environment(extra: dict | None, marker: str) -> dict:
    """The caller's environment less its RAY_/MINRAY_ settings, carrying `marker`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MINRAY_"))
           and k != "PYTHONDONTWRITEBYTECODE"}  # users have .pyc files: measure that
    env.update(extra or {})
    env[MARKER] = marker
    env["PYTHONUNBUFFERED"] = "1"
    return env


def become_subreaper() -> None:
    """Let orphans of our drivers (Ray's daemons, stray workers) re-parent to this process
    rather than to init, so `kill_leftovers` finds them even after their parent is gone."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER (Linux)
    except (OSError, AttributeError):
        pass


def _kill(procs: list[psutil.Process]) -> int:
    processes.end(procs)
    return len(procs)


def kill_marked(marker: str) -> int:
    """Kill every process whose environment carries a marker starting with `marker`.

    Misses processes that rewrite their environ area for a title (Ray's agents do, with
    setproctitle): `kill_leftovers` catches those.
    """
    return _kill(processes.marked(MARKER, marker))


def kill_leftovers() -> int:
    """Kill every descendant of this process and every process with our marker; call it only
    when no driver should be running."""
    procs = {p.pid: p for p in psutil.Process().children(recursive=True)}
    n = kill_marked(SUITE)
    return n + _kill(list(procs.values()))


def _parse(lines: list[str]) -> dict:
    out: dict = {}
    for line in lines:
        if line.startswith("BENCH "):
            out.update(json.loads(line[6:]))
    return out


def _tail(text: str, n: int = 6) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[-600:]


class Driver:
    """A started driver; threads collect its output and the parent-clock time of its first
    `BENCH` line, which is the time to first result for scenarios timed from outside."""

    def __init__(self, python: str, config: dict, env: dict | None = None,
                 marker: str | None = None):
        self.marker = marker or new_marker()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([python, str(DRIVERS), json.dumps(config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=environment(env, self.marker), cwd=config.get("cwd"))
        self.first_result = threading.Event()
        self.result_after: float | None = None
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out)),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.err))]
        for t in self._readers:
            t.start()

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            if line.startswith("BENCH ") and self.result_after is None:
                self.result_after = time.perf_counter() - self.started
                self.first_result.set()
            lines.append(line)

    def finish(self, timeout: float) -> dict:
        """Wait for the driver to exit; return its timings or raise BenchError."""
        try:
            self.proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            self.proc.kill()
            timed_out = True
        kill_marked(self.marker)
        for t in self._readers:
            t.join()
        result = _parse(self.out)
        err = "".join(self.err)
        if timed_out:
            raise BenchError(f"timed out after {timeout:.0f}s: {_tail(err)}")
        if self.proc.returncode != 0 or "error" in result:
            raise BenchError(result.get("error") or _tail(err) or f"exit {self.proc.returncode}")
        return result


def run(python: str, config: dict, env: dict | None = None, timeout: float = 240) -> dict:
    """Run one driver to its end and return its timings."""
    return Driver(python, config, env).finish(timeout)
