"""Reading a running driver's state from another process (the `minray` command, or a script
with no session of its own): find the session folder, connect to its node's socket as an
observer, ask, and read the answer.

An observer is no worker: it says `Observe` instead of `Hello`, and the node answers its
`StateQuery` on the I/O thread under the node's lock, as it answers a worker's. A session
whose driver has exited (its folder stays, with its logs; a killed driver also leaves its
socket file) refuses the connection; that is said in words, naming the folder and the pid.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from minray.node import session as sessions
from minray.protocol import Channel, Observe, Reply, StateQuery

ANSWER_TIMEOUT = 30.0  # seconds: Ray's state API default


class RayStateApiException(Exception):
    """A state query could not be answered (Ray's name for it)."""


class NoSession(RayStateApiException):
    """No live session to read (none, all left by dead drivers, or the one named is gone)."""


class Observer:
    """A connection to one session's node, for state queries."""

    def __init__(self, info: sessions.SessionInfo, sock: socket.socket):
        self.session = info
        self._channel = Channel(sock)
        self._channel.send(Observe())
        self._requests = 0

    def ask(self, query: StateQuery, timeout: float = ANSWER_TIMEOUT):
        """The node's answer to a query; NoSession if the driver went away meanwhile."""
        self._requests += 1
        query = query._replace(req_id=self._requests)
        info = self.session
        try:
            self._channel.send(query)
            reply = self._channel.recv(timeout)
        except (EOFError, OSError):
            raise NoSession(f"the driver of {info.folder} (pid {info.driver_pid}) went away "
                            f"while answering") from None
        if reply is None:
            raise TimeoutError(f"the driver of {info.folder} (pid {info.driver_pid}) did not "
                               f"answer within {timeout:g} s")
        assert isinstance(reply, Reply) and reply.req_id == query.req_id, reply
        return reply.payload

    def close(self) -> None:
        self._channel.sock.close()

    def __enter__(self) -> Observer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _connect(info: sessions.SessionInfo) -> socket.socket | None:
    """A connection to the session's node, or None when nothing listens there any more."""
    if not info.alive:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(sessions.find_socket(info.folder))
    except OSError as e:
        sock.close()
        if e.errno in (errno.ECONNREFUSED, errno.ENOENT):  # shut down, or the pid was reused
            return None
        raise
    return sock


def connect(session: str | Path | None = None) -> Observer:
    """An observer of the named session (its folder, or the folder's name under the minray
    folder), or of the newest live one; NoSession saying why when there is none."""
    if session is not None:
        info = _named(session)
        sock = _connect(info)
        if sock is None:
            raise NoSession(f"session {info.folder} is not running: its driver (pid "
                            f"{info.driver_pid}) has exited (sessions keep their folder, "
                            f"and their logs, after that)")
        return Observer(info, sock)
    found = sessions.sessions()
    for info in found:
        sock = _connect(info)
        if sock is not None:
            return Observer(info, sock)
    root = sessions.minray_root()
    if not found:
        raise NoSession(f"no minray session on this machine (none under {root}); start a "
                        f"driver with minray.init()")
    raise NoSession(f"no running minray session under {root}: the drivers of the "
                    f"{len(found)} session folder(s) there have exited")


def _named(session: str | Path) -> sessions.SessionInfo:
    path = Path(session)
    if not path.is_dir():
        path = sessions.minray_root() / str(session)
    info = sessions.session_info(path) if path.is_dir() else None
    if info is None:
        raise NoSession(f"{str(session)!r} is not a minray session folder (they are named "
                        f"session_<date>_<time>_<pid>_<random>, under "
                        f"{sessions.minray_root()})")
    return info
