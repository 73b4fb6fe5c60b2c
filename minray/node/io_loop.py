"""The node's I/O: one thread that accepts worker connections, reads their messages, writes
what could not be sent at once, and learns of process exits (Linux pidfds; polling elsewhere).
A connection that starts with `Observe` instead of a worker's `Hello` is an observer (the
`minray` command reading the session's state): its messages go to `on_observed`.

Sockets are non-blocking with an output buffer each, so no thread ever waits on a worker while
holding the node's lock. Every event is handled under that lock, by the node's callbacks.
"""

from __future__ import annotations

import collections
import errno
import functools
import os
import selectors
import socket
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from minray.protocol import FrameReader, Hello, Message, Observe, frame

if TYPE_CHECKING:
    import subprocess

_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class Connection:
    """One worker's socket: what is half read, what is not yet written, and whose it is."""

    def __init__(self, sock: socket.socket):
        self.sock: socket.socket | None = sock  # None once closed
        self.reader = FrameReader()
        self.outbuf: collections.deque = collections.deque()  # buffers not yet sent
        self.events = _READ  # what the selector watches the socket for
        self.owner: Any = None  # the worker, once its hello named it (an observer: itself)
        self.handle: Callable[[Any, Message], None] | None = None  # what its messages go to
        self.on_event: Callable | None = None  # the selector's callback for this socket


class IOLoop:
    def __init__(self, lock: threading.RLock, socket_path: str, *,
                 on_hello: Callable[[Connection, Hello], Any],
                 on_message: Callable[[Any, Message], None],
                 on_exit: Callable[[Any], None],
                 on_refused: Callable[[str, OSError], None],
                 on_tick: Callable[[], float | None],
                 on_observed: Callable[[Connection, Message], None]):
        self._lock = lock
        self._on_hello, self._on_message = on_hello, on_message
        self._on_exit, self._on_refused, self._on_tick = on_exit, on_refused, on_tick
        self._on_observed = on_observed
        # Kept free, to accept (and refuse) a worker when the process runs out of descriptors:
        # otherwise the listener stays readable and accept fails in a loop.
        self._reserve_fd: int | None = os.open(os.devnull, os.O_RDONLY)
        self._reported: set[str] = set()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(socket_path)
        self._listener.listen(128)
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, _READ, self._accept)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._selector.register(self._wake_r, _READ, self._drain_wakeups)
        self.pidfds = hasattr(os, "pidfd_open")
        self._exit_fds: set[int] = set()  # pidfds of processes not yet ended
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="minray-node-io", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ called under the lock
    def watch_exit(self, proc: subprocess.Popen, owner: Any,
                   on_exit: Callable[[Any], None] | None = None) -> None:
        """Call on_exit(owner) (the node's by default) when the process ends (without pidfds:
        see poll_exits)."""
        if self.pidfds:
            fd = os.pidfd_open(proc.pid)
            self._exit_fds.add(fd)
            self._register(fd, _READ, functools.partial(self._exited, owner,
                                                        on_exit or self._on_exit))

    def attach(self, sock: socket.socket, on_readable: Callable[[], None]) -> Connection:
        """Watch a connected socket that speaks no worker protocol (a fork server's): call
        on_readable() when it has data; `send_bytes` writes to it without blocking."""
        sock.setblocking(False)
        conn = Connection(sock)
        conn.on_event = functools.partial(self._ready_raw, conn, on_readable)
        self._register(sock, _READ, conn.on_event)
        return conn

    def send(self, conn: Connection, message: Message) -> None:
        if conn.sock is None:
            return
        queued = bool(conn.outbuf)
        conn.outbuf.extend(frame(message))
        if not queued:  # nothing ahead of it: write now, keep the rest for when writable
            self._flush(conn)

    def send_bytes(self, conn: Connection, data: bytes) -> None:
        """`send` for an attached socket: the bytes as they are."""
        if conn.sock is None:
            return
        queued = bool(conn.outbuf)
        conn.outbuf.append(data)
        if not queued:
            self._flush(conn)

    def close(self, conn: Connection) -> None:
        if conn.sock is not None:
            self._unregister(conn.sock)
            conn.sock.close()
            conn.sock = None
            conn.outbuf.clear()

    def stop(self) -> None:
        """End the thread at its next turn; `shutdown` joins it after releasing the lock."""
        self._stopped = True
        self.wake()

    # ------------------------------------------------------------------ after the lock
    def join_and_close(self, timeout: float) -> None:
        self._thread.join(timeout)
        self._listener.close()
        self._selector.close()
        for fd in (self._wake_r, self._wake_w, *self._exit_fds):
            os.close(fd)
        if self._reserve_fd is not None:
            os.close(self._reserve_fd)

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        timeout = None  # until the next deadline the node cares about; None: none
        while not self._stopped:
            events = self._selector.select(timeout)
            with self._lock:
                if self._stopped:
                    return
                for key, mask in events:
                    try:
                        key.data(key, mask)
                    except Exception as e:  # noqa: BLE001 - the node outlives any one event
                        self._report(e)
                timeout = self._on_tick()

    def _report(self, error: Exception) -> None:
        """Print an unexpected error once, not once per turn of the loop."""
        text = f"{type(error).__name__}: {error}"
        if text not in self._reported:
            self._reported.add(text)
            traceback.print_exception(error)

    def _accept(self, key, mask) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno not in (errno.EMFILE, errno.ENFILE):
                    raise
                self._refuse_one(e)
                return
            sock.setblocking(False)
            conn = Connection(sock)
            conn.on_event = functools.partial(self._ready, conn)
            self._selector.register(sock, _READ, conn.on_event)

    def _refuse_one(self, error: OSError) -> None:
        """No descriptor left for a new worker's connection: use the reserve to accept it, tell
        the node which worker it was (so it fails that one clearly), and close it."""
        if self._reserve_fd is not None:
            os.close(self._reserve_fd)
            self._reserve_fd = None
        try:
            sock, _ = self._listener.accept()
        except OSError:
            sock = None
        if sock is not None:
            with sock:
                sock.settimeout(0.1)  # its hello is sent right after connecting
                try:
                    hello = FrameReader().read(sock)
                except (OSError, EOFError):
                    hello = None
            if isinstance(hello, Hello):
                self._on_refused(hello.worker_id, error)
        try:
            self._reserve_fd = os.open(os.devnull, os.O_RDONLY)
        except OSError:
            pass

    def _ready(self, conn: Connection, key, mask) -> None:
        if mask & _WRITE:
            self._flush(conn)
        if mask & _READ and conn.sock is not None:
            self._read(conn)

    def _ready_raw(self, conn: Connection, on_readable: Callable[[], None], key, mask) -> None:
        if mask & _WRITE:
            self._flush(conn)
        if mask & _READ and conn.sock is not None:
            on_readable()

    def _read(self, conn: Connection) -> None:
        for _ in range(256):  # then let other workers have a turn
            try:
                msg = conn.reader.read(conn.sock)
            except (BlockingIOError, InterruptedError):
                return
            except (EOFError, OSError):  # closed: the process exit settles what it was running
                self.close(conn)
                return
            except Exception as e:  # noqa: BLE001 - not our protocol: that connection ends
                self._report(e)
                self.close(conn)
                return
            if conn.owner is None:  # a new connection: its first message names the worker
                if isinstance(msg, Hello):
                    conn.owner, conn.handle = self._on_hello(conn, msg), self._on_message
                elif isinstance(msg, Observe):
                    conn.owner, conn.handle = conn, self._on_observed
                if conn.owner is None:
                    self.close(conn)
                    return
            else:
                conn.handle(conn.owner, msg)
            if conn.sock is None:
                return

    def _exited(self, owner: Any, on_exit: Callable[[Any], None], key, mask) -> None:
        self._unregister(key.fileobj)
        self._exit_fds.discard(key.fileobj)
        os.close(key.fileobj)
        on_exit(owner)

    def _flush(self, conn: Connection) -> None:
        out = conn.outbuf
        try:
            while out:
                sent = conn.sock.send(out[0])
                if sent < len(out[0]):
                    out[0] = memoryview(out[0])[sent:]
                    break
                out.popleft()
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # the worker is gone; its exit is handled when the process ends
            out.clear()
        events = _READ | _WRITE if out else _READ
        if events != conn.events:
            conn.events = events
            self._selector.modify(conn.sock, events, conn.on_event)
            self.wake()

    # ------------------------------------------------------------------ selector helpers
    def _register(self, fileobj, events: int, callback) -> None:
        self._selector.register(fileobj, events, callback)
        self.wake()

    def _unregister(self, fileobj) -> None:
        try:
            self._selector.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    def wake(self) -> None:
        """Have the loop run a turn soon (select() sees a changed registration, on_tick runs);
        safe from any thread, and needless from the loop's own."""
        if threading.current_thread() is not self._thread:
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:
                pass

    def _drain_wakeups(self, key, mask) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
