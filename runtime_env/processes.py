"""Process checks shared by the node, its workers and setup. Cheap to import: psutil is only
loaded to kill, which a cached environment never needs."""

from __future__ import annotations

import os
import time


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (killed, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc (macOS): existing is alive
        return True


def end(procs: list, grace: float = 0, wait: float = 5) -> None:
    """Give psutil processes `grace` seconds to exit by themselves, kill the rest, and wait up
    to `wait` seconds for them to be gone. A zombie counts as gone: killed processes that are
    not our children are reaped by init, which in a container may take seconds."""
    import psutil

    if grace:
        _, procs = psutil.wait_procs(procs, timeout=grace)
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    deadline = time.monotonic() + wait
    pending = [p.pid for p in procs]
    while pending and time.monotonic() < deadline:
        time.sleep(0.005)
        pending = [pid for pid in pending if pid_alive(pid)]


def tree(pid: int) -> list:
    """A process and everything it started (children first), as psutil processes."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return []


def marked(name: str, prefix: str, *, exact: bool = False) -> list:
    """Processes whose environment has `name` set to a value starting with `prefix` (equal to
    it if `exact`), as psutil processes: a tree's processes that detached from it (a new
    session, a double fork) still carry the variables they were started with. On Linux /proc
    is read directly (~1 ms for a hundred processes, against ~9 ms through psutil)."""
    import psutil

    me = os.getpid()
    if not os.path.isdir("/proc"):
        found = []
        for p in psutil.process_iter():
            try:
                value = p.environ().get(name, "")
                if p.pid != me and (value == prefix if exact else value.startswith(prefix)):
                    found.append(p)
            except (psutil.Error, OSError):
                continue
        return found
    needle = f"\0{name}={prefix}{chr(0) if exact else ''}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in b"\0" + f.read() and pid_alive(int(entry)):
                    found.append(psutil.Process(int(entry)))
        except (OSError, psutil.Error):  # gone, or another user's
            continue
    return found


def kill_tree(pid: int, wait: float = 5) -> None:
    """Kill a process and everything it started; wait up to `wait` seconds for them to end."""
    end(tree(pid), wait=wait)
