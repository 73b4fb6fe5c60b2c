"""Setup commands die with their driver: a guard process kills what a dead driver left running.

`Setup.run` starts each installer in a session of its own, so that the deadline can kill its
whole tree; nothing else would then stop it when the driver dies, and a `kill -9`ed driver
would leave `uv pip install` running, writing into a cache entry the next driver rebuilds. So
the first command a driver runs starts a guard: a small process that reads a pipe from the
driver, told the pid of each command as it starts (`+pid`) and ends (`-pid`). When the pipe
hits EOF (the driver is gone, however it ended) the guard kills the process tree and the
process group of every command still registered, then exits. A driver that runs no command
(a cached env) starts no guard.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

_lock = threading.Lock()
_guard: subprocess.Popen | None = None
_running: set[int] = set()


def watch(pid: int) -> None:
    """Have the guard kill command `pid` (its tree and group) if this process dies first."""
    with _lock:
        _running.add(pid)
        _send(f"+{pid}\n")


def forget(pid: int) -> None:
    """Command `pid` has ended: the guard must leave that pid alone."""
    with _lock:
        _running.discard(pid)
        _send(f"-{pid}\n")


def _send(line: str) -> None:
    global _guard
    try:
        if _guard is None or _guard.poll() is not None:  # the first command, or it died
            _guard = _start()
            line = "".join(f"+{pid}\n" for pid in _running)
        os.write(_guard.stdin.fileno(), line.encode())
    except OSError:  # none now (out of processes, or it died just now): the next command retries
        _guard = None


def _start() -> subprocess.Popen:
    # Its own session: a Ctrl-C or SIGHUP meant for the driver's terminal leaves it running, to
    # see the driver go. cwd is where `runtime_env` is importable from; nothing but the pipe is
    # inherited (close_fds), so the pipe's EOF means this process and its forks are gone.
    return subprocess.Popen(
        [sys.executable, "-c", "from runtime_env import guard; guard.main()"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd=str(Path(__file__).resolve().parent.parent), start_new_session=True)


def _after_fork_in_child() -> None:
    """A forked child has its own commands: it must not keep the parent's guard pipe open
    (which would hide the parent's death) nor send to it."""
    global _guard, _lock, _running
    if _guard is not None:
        _guard.stdin.close()
    _guard, _lock, _running = None, threading.Lock(), set()


os.register_at_fork(after_in_child=_after_fork_in_child)


# --- the guard process --------------------------------------------------------------------
def main() -> None:
    import psutil

    commands: dict[int, psutil.Process] = {}
    for line in sys.stdin:
        pid = int(line[1:])
        if line[0] == "-":
            commands.pop(pid, None)
            continue
        try:  # psutil.Process remembers the start time: a reused pid is never mistaken for it
            commands[pid] = psutil.Process(pid)
        except psutil.NoSuchProcess:
            pass
    for command in commands.values():  # EOF: the driver is gone
        _kill(command)


def _kill(root) -> None:
    """Kill a command, everything it started, and its process group (which holds children
    whose parent already died)."""
    import psutil

    try:
        if not root.is_running():
            return
        procs = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    try:
        os.killpg(root.pid, signal.SIGKILL)
    except OSError:
        pass
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
