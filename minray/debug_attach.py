"""A terminal attached to a task waiting in `breakpoint()` (minray/remote_pdb.py is the task's
side): the driver's own terminal, at once, when the driver has one; else `minray debug`.

The terminal stays in its usual line mode: each line typed goes to the task's pdb and what pdb
writes comes back, until pdb lets the task go on (`c`, `q`, Ctrl-D) and closes the connection.
In the driver a thread of its own does this, one breakpoint after the other, while the
driver's code goes on (it usually waits in `get`).
"""

from __future__ import annotations

import json
import os
import queue
import selectors
import socket
import sys
import threading
import time
from pathlib import Path

from minray.protocol import Breakpoint
from runtime_env.processes import pid_alive

HINT = "run `minray debug` in a terminal to attach to it"

_waiting: queue.SimpleQueue[Breakpoint] | None = None
_lock = threading.Lock()


def describe(where: Breakpoint) -> str:
    return (f"{where.task} (pid {where.pid}) stopped in breakpoint() at "
            f"{where.file}:{where.line} in {where.function}()")


def announce(where: Breakpoint) -> None:
    """The node heard of a breakpoint (on its I/O thread: must not block): a driver on a
    terminal attaches to it, one without says how to."""
    if not _on_terminal():
        print(f"minray: {describe(where)}; this driver has no terminal: {HINT}",
              file=sys.stderr, flush=True)
        return
    global _waiting
    with _lock:
        if _waiting is None:
            _waiting = queue.SimpleQueue()
            threading.Thread(target=_attach_each, args=(_waiting,), name="minray-debugger",
                             daemon=True).start()
    _waiting.put(where)


def _on_terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno()) and os.isatty(sys.stdout.fileno())
    except (AttributeError, ValueError, OSError):  # replaced or closed streams (a notebook)
        return False


def _attach_each(waiting: queue.SimpleQueue[Breakpoint]) -> None:
    while True:
        where = waiting.get()
        print(f"\nminray: {describe(where)}; this terminal is attached to its pdb "
              f"(c or q lets it go on)", flush=True)
        if not relay(where.socket, sys.stdin.fileno(), sys.stdout.fileno()):
            print(f"minray: {where.task} (pid {where.pid}) is no longer waiting (attached "
                  f"elsewhere, or gone)", flush=True)


def relay(sock_path: str, in_fd: int, out_fd: int) -> bool:
    """Copy lines from `in_fd` to the pdb at `sock_path` and its output to `out_fd` until
    it closes the connection. False if nobody waits there (any more)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(sock_path)
    except OSError:
        conn.close()
        return False
    with conn, selectors.DefaultSelector() as sel:
        sel.register(conn, selectors.EVENT_READ)
        sel.register(in_fd, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                if key.fileobj is conn:
                    data = conn.recv(65536)
                    if not data:
                        return True
                    _write_all(out_fd, data)
                    continue
                line = os.read(in_fd, 65536)
                if line:
                    conn.sendall(line)
                else:  # Ctrl-D: pdb reads the end of its input and lets the task go on
                    sel.unregister(in_fd)
                    conn.shutdown(socket.SHUT_WR)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def waiting_in(root: Path) -> list[Breakpoint]:
    """The breakpoints tasks of live sessions under `root` wait in, oldest first."""
    found = []
    for record in root.glob("session_2*/debug/*.json"):  # not session_latest, a link
        try:
            where = Breakpoint(**json.loads(record.read_text()))
        except (OSError, ValueError, TypeError):  # gone meanwhile, or being written
            continue
        if pid_alive(where.pid) and os.path.exists(where.socket):
            found.append(where)
    return sorted(found, key=lambda w: w.since)


def table(waiting: list[Breakpoint]) -> str:
    lines = ["index | since    | task | where"]
    for i, where in enumerate(waiting):
        since = time.strftime("%H:%M:%S", time.localtime(where.since))
        lines.append(f"{i:>5} | {since} | {where.task} (pid {where.pid}) | "
                     f"{where.file}:{where.line} in {where.function}()")
    return "\n".join(lines)
