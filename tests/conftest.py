"""Shared fixtures: an isolated cache per test, and running code the way a worker would start."""

from __future__ import annotations

import subprocess

import pytest

from runtime_env import Cache, LaunchContext


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own MINRAY_CACHE_DIR, so tests never share built environments."""
    root = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("MINRAY_CACHE_DIR", str(root))
    return Cache(root)


def run_in(ctx: LaunchContext, code: str, timeout: float = 60) -> str:
    """Start a Python process from a launch context, as a worker would, and return stdout."""
    proc = subprocess.run([*ctx.py_executable, "-c", code], env=ctx.process_env(), cwd=ctx.cwd,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout.strip()


@pytest.fixture(autouse=True)
def no_node_outlives_its_test():
    """A test that fails half-way must not leave its node to the next test."""
    yield
    import minray

    minray.shutdown()


@pytest.fixture
def ray():
    """A fresh local node with 2 CPUs for one test, shut down after it."""
    import minray

    minray.init(num_cpus=2)
    yield minray
    minray.shutdown()


def worker_processes(pids) -> list:
    """The given pids that still exist as live (non-zombie) processes."""
    import psutil

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
    import time

    deadline = time.time() + seconds
    while worker_processes(pids) and time.time() < deadline:
        time.sleep(0.05)
    return worker_processes(pids)
