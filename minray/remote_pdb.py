"""`breakpoint()` and `pdb.set_trace()` inside a task: the worker's side.

The task stops in a pdb whose input and output are a Unix socket in the session folder
(`<session>/debug/`, private to the user), so the worker's own stdout and stderr stay as they
were. The worker writes a record of the stop beside the socket (for `minray debug`), tells the
node (`Paused`, so a driver on a terminal attaches at once, minray/debug_attach.py), and waits
for someone to connect. `c`, `q` and the end of the input all let the task go on, as Ray's
debugger does; only this task waits meanwhile.

Installed at worker start without importing pdb (it costs a worker's start): `breakpoint()`
goes through `sys.breakpointhook`, and `pdb.set_trace` is replaced once pdb is imported.
"""

from __future__ import annotations

import itertools
import os
import sys
import time

from minray.protocol import Breakpoint, Paused
from minray.task import ACTOR

_MAX_SOCKET_PATH = 100  # AF_UNIX paths hold 104-108 bytes
_stops = itertools.count(1)


def install() -> None:
    """Route this worker's breakpoints to the remote pdb."""
    sys.breakpointhook = breakpointhook
    if "pdb" in sys.modules:
        sys.modules["pdb"].set_trace = set_trace
    else:
        sys.meta_path.insert(0, _PatchPdbOnImport())


def breakpointhook(*args, **kwargs):
    """`breakpoint()`: honours PYTHONBREAKPOINT as Python does (0: nothing; another
    function: that one), else stops here in the remote pdb."""
    hook = os.environ.get("PYTHONBREAKPOINT", "")
    if hook == "0":
        return None
    if hook not in ("", "pdb.set_trace"):
        return sys.__breakpointhook__(*args, **kwargs)
    return stop(sys._getframe(1), kwargs.get("header"))


def set_trace(*, header: str | None = None, **_ignored) -> None:
    """`pdb.set_trace()` in a task."""
    stop(sys._getframe(1), header)


class _PatchPdbOnImport:
    """A meta path finder that lets pdb load as usual, then replaces its `set_trace`."""

    def find_spec(self, name, path=None, target=None):
        if name != "pdb":
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("pdb")
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            module.set_trace = set_trace

        spec.loader.exec_module = exec_module
        return spec


def stop(frame, header: str | None = None) -> None:
    """Wait until someone attaches, then debug `frame` with them."""
    import socket

    from minray import core

    worker = core.get_current()
    folder = os.path.join(os.environ["MINRAY_SESSION_DIR"], "debug")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    name = f"{os.getpid()}-{next(_stops)}"
    sock_path = os.path.join(folder, f"{name}.sock")
    if len(sock_path.encode()) > _MAX_SOCKET_PATH:
        import tempfile

        sock_path = os.path.join(tempfile.mkdtemp(prefix="minray-debug-"), "pdb.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    record_path = os.path.join(folder, f"{name}.json")
    try:
        listener.bind(sock_path)
        listener.listen(1)
        task = _task_name(worker)
        where = Breakpoint(task, os.getpid(), frame.f_code.co_filename, frame.f_lineno,
                           frame.f_code.co_name, sock_path, time.time())
        _write_record(record_path, where)
        if worker is not None and not worker.is_driver:
            worker.send(Paused(where))
        conn, _ = listener.accept()
    finally:
        listener.close()
        for path in (sock_path, record_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        if os.path.dirname(sock_path) != folder:  # the short private folder of a long path
            os.rmdir(os.path.dirname(sock_path))
    _socket_pdb(conn, header).set_trace(frame)


def _task_name(worker) -> str:
    """The task's name, or the actor's class for a method call (what the worker knows
    without keeping more per call)."""
    spec = getattr(worker, "resource_spec", None)
    if spec is None:
        return "task"
    return f"actor {spec.name}" if spec.kind == ACTOR else spec.name


def _write_record(path: str, where: Breakpoint) -> None:
    import json

    tmp = f"{path}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(where._asdict(), f)
    os.replace(tmp, path)


def _socket_pdb_class():
    import pdb

    class SocketPdb(pdb.Pdb):
        """pdb on a connection; continuing, quitting or the end of input detach it and let
        the task go on (breakpoints set meanwhile are cleared: nobody would be there)."""

        def __init__(self, conn, header: str | None):
            self._conn = conn
            self._stream = conn.makefile("rw", buffering=1, encoding="utf-8", errors="replace",
                                         newline="\n")
            super().__init__(stdin=self._stream, stdout=self._stream, nosigint=True,
                             readrc=False)
            self.prompt = "(Pdb) "
            if header is not None:
                self.message(header)

        def do_continue(self, arg):
            self.clear_all_breaks()
            result = super().do_continue(arg)
            self._detach()
            return result

        do_c = do_cont = do_continue

        def do_quit(self, arg):
            """q: detach and let the task go on (as Ray's debugger does)."""
            return self.do_continue(arg)

        do_q = do_exit = do_quit

        def do_EOF(self, arg):
            self.message("")
            return self.do_continue(arg)

        def _detach(self) -> None:
            for closing in (self._stream, self._conn):
                try:
                    closing.close()
                except OSError:
                    pass

    return SocketPdb


def _socket_pdb(conn, header: str | None):
    return _socket_pdb_class()(conn, header)
