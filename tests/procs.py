"""Processes as tests see them: run code as a worker would, find live processes, wait for them
to end, and hold tasks at a gate until the test lets them go on."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from runtime_env import LaunchContext
from wheels import DEMO


def run_in(ctx: LaunchContext, code: str, timeout: float = 60) -> str:
    """Start a Python process from a launch context, as a worker would, and return stdout."""
    proc = subprocess.run([*ctx.py_executable, "-c", code], env=ctx.process_env(), cwd=ctx.cwd,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout.strip()


def demo_value(ctx: LaunchContext) -> str:
    """The demo package's VALUE and version, as a worker started from `ctx` imports it."""
    return run_in(ctx, f"import {DEMO}; print({DEMO}.VALUE, {DEMO}.__version__)")


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60) -> None:
    """Poll `condition` until it holds; after `timeout` seconds fail, saying what never came."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(0.01)


class Gate:
    """A file in `folder` that tasks wait for and the test creates: a task held at the gate
    cannot finish before the test opens it, whatever the timing."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / "gate-open"

    def wait(self, timeout: float = 60) -> None:
        wait_for(self.path.exists, "the test to open the gate", timeout)

    def open(self) -> None:
        self.path.touch()

    def held(self, ray):
        """A remote function (of the `ray` module given) that returns its argument once the
        gate is open."""

        @ray.remote
        def held(value):
            self.wait()
            return value

        return held


def worker_processes(pids) -> list:
    """The given pids that still exist as live (non-zombie) processes."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def gone_within(pids, seconds: float) -> list:
    """Wait up to `seconds` for the processes to end; return those still alive."""
    deadline = time.time() + seconds
    while worker_processes(pids) and time.time() < deadline:
        time.sleep(0.05)
    return worker_processes(pids)


def processes_mentioning(text: str) -> list:
    """Live processes whose command line contains `text`."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = " ".join(p.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if text in cmdline and p.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(p)
    return found


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (same pid and start time), zombies counting as gone."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out
