"""The floor: what the same work costs with nothing but the OS, Python, uv and multiprocessing.

A runtime cannot start a worker faster than a process starts, build an env faster than uv
does, or dispatch tasks faster than a bare pipe; the ratio to these numbers says how much of
minray's time is its own.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uv

now = time.perf_counter
LABELS = {"process_start": "python -c pass", "nested_start": "python starting python",
          "uv_venv_install": "uv venv + uv pip install", "pool_1000": "Pool(2).map, chunksize=1",
          "pipe_call": "Pipe round trip", "walk_stat": "walk + stat", "read_tree": "walk + read",
          **{f"pipe_{mb}mb": f"{mb} MB through a pipe each way" for mb in (1, 10, 100, 200, 1000)},
          **{f"parallel_start_{n}": f"{n} x python -c pass at once" for n in (2, 4, 8, 16)}}
TRANSFER_MB = (1, 10, 100, 200, 1000)  # the sizes of the objects group's round trips
MB = 1_000_000


def _noop(_):
    return None


def _echo(conn) -> None:
    while conn.recv() is not None:
        conn.send(None)


def process_start() -> float:
    """`python -c pass`: one interpreter start (sys.executable, never a pyenv shim)."""
    t = now()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return now() - t


def parallel_start(n: int) -> float:
    """`n` interpreters started at once, until the last has exited: what n new workers cost
    when each is a process start."""
    t = now()
    procs = [subprocess.Popen([sys.executable, "-c", "pass"]) for _ in range(n)]
    for p in procs:
        p.wait()
    return now() - t


def nested_start() -> float:
    """A python that starts a python: a driver process plus one worker process."""
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'pass'], check=True)"
    t = now()
    subprocess.run([sys.executable, "-c", code], check=True)
    return now() - t


def uv_venv_install(wheel: Path) -> float:
    """`uv venv` + `uv pip install <wheel>` into a new folder (uv's own cache may be warm)."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        uv_bin = uv.find_uv_bin()
        quiet = {"check": True, "capture_output": True}
        t = now()
        subprocess.run([uv_bin, "venv", "-q", "-p", sys.executable, str(venv)], **quiet)
        subprocess.run([uv_bin, "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                        str(wheel)], **quiet)
        return now() - t


def pool_1000() -> float:
    """`Pool(2).map` of 1000 no-ops, one task per message (chunksize=1), pool already warm."""
    with multiprocessing.Pool(2) as pool:
        pool.map(_noop, range(200), chunksize=1)
        t = now()
        pool.map(_noop, range(1000), chunksize=1)
        return now() - t


def pipe_call() -> float:
    """One round trip over a Pipe to a live child process: the floor of an actor call."""
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(target=_echo, args=(child,))
    proc.start()
    try:
        for _ in range(100):
            parent.send(0)
            parent.recv()
        t = now()
        for _ in range(1000):
            parent.send(0)
            parent.recv()
        return (now() - t) / 1000
    finally:
        parent.send(None)
        proc.join()


def _read_exactly(fd: int, n: int) -> bytearray:
    out = bytearray(n)
    view, got = memoryview(out), 0
    while got < n:
        got += os.readv(fd, [view[got:]])
    return out


def _write_all(fd: int, data) -> None:
    view, sent = memoryview(data), 0
    while sent < len(view):
        sent += os.write(fd, view[sent:])


def _bounce(inbound: int, outbound: int, n: int) -> None:
    _write_all(outbound, _read_exactly(inbound, n))


def _big_pipe() -> tuple[int, int]:
    r, w = os.pipe()
    try:  # Linux: a 1 MiB pipe buffer, the fastest a pipe goes
        import fcntl

        fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ
    except (ImportError, OSError):
        pass
    return r, w


def pipe_transfer(mb: int) -> float:
    """`mb` MB to a live child process and back through two pipes, each side reading into a
    new buffer of the full size: the floor of a large argument and return value."""
    blob = os.urandom(MB) * mb
    (down_r, down_w), (up_r, up_w) = _big_pipe(), _big_pipe()
    proc = multiprocessing.Process(target=_bounce, args=(down_r, up_w, len(blob)))
    proc.start()
    try:
        t = now()
        _write_all(down_w, blob)
        back = _read_exactly(up_r, len(blob))
        took = now() - t
        assert len(back) == len(blob)
        return took
    finally:
        proc.join()
        for fd in (down_r, down_w, up_r, up_w):
            os.close(fd)


def walk_stat(tree: Path) -> float:
    """Walk a tree and stat every file: the least any change detection must do."""
    t = now()
    for root, _dirs, files in os.walk(tree):
        for name in files:
            os.stat(os.path.join(root, name))
    return now() - t


def read_tree(tree: Path) -> float:
    """Walk a tree and read every file: the least a content hash of it must do."""
    t = now()
    for root, _dirs, files in os.walk(tree):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                fh.read()
    return now() - t


def measure(wheel: Path, tree: Path | None, parallel: tuple[int, ...] = (),
            transfers: bool = False) -> dict[str, float]:
    """One sample of every floor figure, in seconds (the large transfers when asked)."""
    out = {"process_start": process_start(), "nested_start": nested_start(),
           "uv_venv_install": uv_venv_install(wheel), "pool_1000": pool_1000(),
           "pipe_call": pipe_call()}
    if tree is not None:
        out.update(walk_stat=walk_stat(tree), read_tree=read_tree(tree))
    if transfers:
        out.update({f"pipe_{mb}mb": pipe_transfer(mb) for mb in TRANSFER_MB})
    for n in parallel:
        out[f"parallel_start_{n}"] = parallel_start(n)
    return out
