"""Process checks shared by the node, its workers and setup. Cheap to import, and on Linux
cheap to use: processes are found and killed through /proc and pidfds; psutil, whose import
alone costs more than a whole shutdown should, is loaded only elsewhere."""

from __future__ import annotations

import _signal as signal  # the C module: signal.py builds enums, ~0.7 ms of a worker start
import os
import time

_PROC = os.path.isdir("/proc") and hasattr(os, "pidfd_open")


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


class LinuxProcess:
    """A process as found in /proc: its pid and start time, so that a pid reused by another
    process is never killed in its place (what psutil.Process gives, without psutil)."""

    __slots__ = ("pid", "_started")

    def __init__(self, pid: int, started: str):
        self.pid = pid
        self._started = started

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return
        except OSError:  # no pidfd (a kernel before 5.3, or no descriptor left): by pid
            fd = None
        try:  # a pidfd names the process that had the pid when opened: is it still ours?
            if _stat(self.pid)[1] == self._started:
                if fd is None:
                    os.kill(self.pid, sig)
                else:
                    signal.pidfd_send_signal(fd, sig)
        except OSError:  # gone meanwhile
            pass
        finally:
            if fd is not None:
                os.close(fd)


def end(procs: list, grace: float = 0, wait: float = 5) -> None:
    """Give processes (psutil's or LinuxProcess) `grace` seconds to exit by themselves, kill
    the rest, and wait up to `wait` seconds for them to be gone. A zombie counts as gone:
    processes that are not our children are reaped by their parent or init, which in a
    container may take seconds."""
    if grace:
        procs = wait_for_exit(procs, grace)
    for p in procs:
        if type(p) is LinuxProcess:
            p.kill()
        else:
            import psutil

            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
    wait_for_exit(procs, wait)


def wait_for_exit(procs: list, seconds: float) -> list:
    """Wait up to `seconds` for the processes (anything with a pid) to end; those that did
    not."""
    deadline = time.monotonic() + seconds
    pending = [p for p in procs if pid_alive(p.pid)]
    if _PROC and pending:
        pending = _wait_pidfds(pending, deadline)
    while pending and time.monotonic() < deadline:
        time.sleep(0.005)
        pending = [p for p in pending if pid_alive(p.pid)]
    return pending


def _wait_pidfds(procs: list, deadline: float) -> list:
    """Wait for the processes' pidfds, which are readable from the instant each one ends
    (sleeping in steps would add up to a step to every shutdown). What is still running,
    including any process no pidfd could be opened for."""
    import select

    poller, fds, rest = select.poll(), {}, []
    try:
        for p in procs:
            try:
                fd = os.pidfd_open(p.pid)
            except ProcessLookupError:
                continue
            except OSError:  # no pidfd for it (an old kernel, no descriptor left): polled
                rest.append(p)
                continue
            fds[fd] = p
            poller.register(fd, select.POLLIN)
        while fds:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _ in poller.poll(left * 1000):
                poller.unregister(fd)
                os.close(fd)
                del fds[fd]
        return rest + list(fds.values())
    finally:
        for fd in fds:
            os.close(fd)


def tree(pid: int) -> list:
    """A process and everything it started (children first)."""
    return trees([pid])


def trees(pids: list[int]) -> list:
    """The processes and everything they started (children first), looked up at once."""
    if not _PROC:
        return [p for pid in pids for p in _psutil_tree(pid)]
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: list[LinuxProcess] = []
    for root in pids:
        if root not in table:
            continue
        below, todo = [], [root]
        while todo:
            pid = todo.pop()
            below.append(pid)
            todo.extend(children.get(pid, ()))
        found += [LinuxProcess(pid, table[pid][1]) for pid in reversed(below)]
    return found


def _psutil_tree(pid: int) -> list:
    import psutil

    try:
        root = psutil.Process(pid)
        return [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return []


def _stat(pid: int) -> tuple[int, str, str]:
    """(parent pid, start time, state) from /proc/<pid>/stat; OSError when it is gone."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), fields[19], fields[0]


def _process_table() -> dict[int, tuple[int, str, str]]:
    """Every live process: pid -> (parent pid, start time, state)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                table[int(entry)] = _stat(int(entry))
            except (OSError, IndexError, ValueError):  # gone meanwhile
                continue
    return table


def marked(name: str, prefix: str, *, exact: bool = False) -> list:
    """Processes whose environment has `name` set to a value starting with `prefix` (equal to
    it if `exact`): a tree's processes that detached from it (a new session, a double fork)
    still carry the variables they were started with. On Linux /proc is read directly (~1 ms
    for a hundred processes, against ~9 ms through psutil)."""
    me = os.getpid()
    if not _PROC:
        import psutil

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
                if needle not in b"\0" + f.read():
                    continue
            _, started, state = _stat(int(entry))
        except (OSError, IndexError, ValueError):  # gone, or another user's
            continue
        if state != "Z":
            found.append(LinuxProcess(int(entry), started))
    return found


def kill_tree(pid: int, wait: float = 5) -> None:
    """Kill a process and everything it started; wait up to `wait` seconds for them to end."""
    end(tree(pid), wait=wait)
