"""Framing of messages between the driver and its workers over a Unix socket.

A message is a pickled tuple whose first item names it, sent as an 8-byte length and a body.
Values inside are already-serialised bytes, so the driver forwards results without
deserialising them. Bodies are received straight into a buffer of their size and large bodies
are sent without being joined to their header: a 64 MiB value is not copied more than needed.
"""

from __future__ import annotations

import pickle
import socket
import struct

_HEADER = struct.Struct("!Q")
_JOIN_BELOW = 1 << 16  # smaller bodies go out in one write with their header


def frame(message: tuple) -> list[bytes]:
    """The buffers to send for one message."""
    body = pickle.dumps(message, protocol=5)
    header = _HEADER.pack(len(body))
    return [header + body] if len(body) < _JOIN_BELOW else [header, body]


class FrameReader:
    """Reassembles messages from a socket, blocking or not; keeps a partial one across calls."""

    def __init__(self):
        self._header = bytearray(_HEADER.size)
        self._body: bytearray | None = None
        self._got = 0

    def read(self, sock: socket.socket) -> tuple:
        """The next whole message. Raises BlockingIOError / TimeoutError when none is complete
        yet (nothing is lost), EOFError when the peer closed the connection."""
        while True:
            buf = self._header if self._body is None else self._body
            n = sock.recv_into(memoryview(buf)[self._got:])
            if n == 0:
                raise EOFError("connection closed")
            self._got += n
            if self._got < len(buf):
                continue
            self._got = 0
            if self._body is None:
                self._body = bytearray(_HEADER.unpack(self._header)[0])
            else:
                body, self._body = self._body, None
                return pickle.loads(body)


class Channel:
    """The worker's blocking end of the connection."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._reader = FrameReader()

    def send(self, message: tuple) -> None:
        for buf in frame(message):
            self.sock.sendall(buf)

    def recv(self, timeout: float | None = None) -> tuple | None:
        """The next message; None on timeout. Raises EOFError when the driver is gone."""
        self.sock.settimeout(timeout)
        try:
            return self._reader.read(self.sock)
        except TimeoutError:
            return None
        finally:
            self.sock.settimeout(None)
