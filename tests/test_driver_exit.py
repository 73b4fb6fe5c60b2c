"""What a driver script sees when it ends: fire-and-forget tasks finish and their output shows
(minray waits for them at exit, as concurrent.futures does); an explicit shutdown() does not
wait; a function too large to ship fails at .remote() as on Ray."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import minray


def _run(script: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def test_the_output_of_fire_and_forget_tasks_is_not_lost():
    out = _run("""
        import minray as ray

        @ray.remote
        def hello(i):
            print("hello from task", i, flush=False)

        for i in range(3):
            hello.remote(i)
    """)
    assert out.returncode == 0, out.stderr
    assert sorted(line for line in out.stdout.splitlines() if line.startswith("hello")) == [
        "hello from task 0", "hello from task 1", "hello from task 2"]


def test_an_explicit_shutdown_does_not_wait_for_tasks(tmp_path):
    out = _run(f"""
        import os, time, minray as ray

        @ray.remote
        def forever():
            open({str(tmp_path / "started")!r}, "w").close()
            while not os.path.exists({str(tmp_path / "never")!r}):
                time.sleep(0.05)

        ref = forever.remote()
        while not os.path.exists({str(tmp_path / "started")!r}):
            time.sleep(0.01)
        ray.shutdown()
        print("shut down")
    """)
    assert out.returncode == 0 and "shut down" in out.stdout, out.stderr


def test_a_function_too_large_to_ship_fails_at_remote(ray, monkeypatch):
    monkeypatch.setenv("FUNCTION_SIZE_ERROR_THRESHOLD", str(10**6))
    big = b"x" * (2 * 10**6)

    @ray.remote
    def uses_big():
        return len(big)

    with pytest.raises(ValueError, match="FUNCTION_SIZE_ERROR_THRESHOLD") as info:
        uses_big.remote()
    assert "put()" in str(info.value)

    @ray.remote
    def small():
        return 1

    assert minray.get(small.remote(), timeout=60) == 1
