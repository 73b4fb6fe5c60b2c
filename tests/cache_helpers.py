"""Helpers for the cache tests: other processes that build, hold and use cache entries, the
minray command, and waiting for a condition with a deadline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import runtime_env
from procs import wait_for

REPO = str(Path(runtime_env.__file__).resolve().parent.parent)


def process_env() -> dict[str, str]:
    """Our environment, with this checkout first on the path (not an installed minray)."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO, path]))}


def minray_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minray.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=process_env())


def python(code: str, *args: str | Path, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=process_env(),
                            **popen)


_WAIT_FOR_FILE = """
def wait_for_file(path, seconds=120):
    import os, time
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
"""

_PUBLISH = """
import sys
from runtime_env.cache import Cache
root, field, key = sys.argv[1:]
Cache(root).get_or_create(field, key, lambda path: (path / "data").write_bytes(b"x" * 4096))
"""


def published_by_an_exited_process(root: Path, field: str, key: str) -> Path:
    """An entry built by a process that has exited since: nobody leases it."""
    proc = python(_PUBLISH, root, field, key)
    assert proc.wait(60) == 0
    return root / field / key


_BUILD_UNTIL_TOLD = _WAIT_FOR_FILE + """
import sys
from pathlib import Path
from runtime_env.cache import Cache
root, field, key, started, go = sys.argv[1:]

def build(path):
    (path / "data").write_bytes(b"x" * 4096)
    Path(started).touch()
    wait_for_file(go)

Cache(root).get_or_create(field, key, build)
"""


class Builder:
    """A process inside `build` of an entry, so holding the entry's lock, until `finish`."""

    def __init__(self, root: Path, field: str, key: str, scratch: Path):
        started, self.go = scratch / f"{key}.started", scratch / f"{key}.go"
        self.proc = python(_BUILD_UNTIL_TOLD, root, field, key, started, self.go)
        wait_for(started.exists, f"a process building {field}/{key}", 60)

    def finish(self) -> None:
        self.go.touch()
        assert self.proc.wait(60) == 0

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no clean-up of any kind
        self.proc.wait(60)


_HOLD_LOCK = _WAIT_FOR_FILE + """
import sys
from pathlib import Path
from runtime_env import locks
lock, holding, release = sys.argv[1:]
with locks.locked(lock):
    Path(holding).touch()
    wait_for_file(release)
"""


def lock_holder(lock: Path, holding: Path, release: Path) -> subprocess.Popen:
    """A process that takes `lock` (waiting as long as it takes), then touches `holding` and
    keeps the lock until `release` exists."""
    return python(_HOLD_LOCK, lock, holding, release)


def waits_on_a_flock(pid: int) -> bool:
    """Is the process blocked waiting for a flock (a `->` line of /proc/locks)?"""
    with open("/proc/locks") as f:
        return any(line.split()[1:2] == ["->"] and line.split()[5] == str(pid) for line in f)
