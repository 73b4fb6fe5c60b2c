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
