"""Framing of messages between the driver and its workers over a Unix socket.

A message is a pickled tuple whose first item names it; values inside are already-serialised
bytes, so the driver forwards results without deserialising them. The worker side is blocking
(`Channel`); the driver side is non-blocking and buffered (`FrameBuffer`) so one I/O thread can
serve every worker without ever waiting on one.
"""

from __future__ import annotations

import collections
import pickle
import socket
import struct

_HEADER = struct.Struct("!Q")


def frame(message: tuple) -> bytes:
    body = pickle.dumps(message, protocol=5)
    return _HEADER.pack(len(body)) + body


class FrameBuffer:
    """Collects bytes as they arrive and yields whole messages."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple]:
        self._buf += data
        out = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= _HEADER.size:
            (n,) = _HEADER.unpack_from(buf, pos)
            end = pos + _HEADER.size + n
            if len(buf) < end:
                break
            out.append(pickle.loads(memoryview(buf)[pos + _HEADER.size:end]))
            pos = end
        if pos:
            del buf[:pos]
        return out


class Channel:
    """The worker's blocking end of the connection."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._frames = FrameBuffer()
        self._ready: collections.deque[tuple] = collections.deque()

    def send(self, message: tuple) -> None:
        self.sock.sendall(frame(message))

    def recv(self, timeout: float | None = None) -> tuple | None:
        """The next message; None on timeout. Raises EOFError when the driver is gone."""
        while not self._ready:
            self.sock.settimeout(timeout)
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                return None
            finally:
                self.sock.settimeout(None)
            if not data:
                raise EOFError("driver closed the connection")
            self._ready.extend(self._frames.feed(data))
        return self._ready.popleft()
