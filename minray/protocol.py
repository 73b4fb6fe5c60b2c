"""The messages between the driver's node and its workers, and how they are framed.

Each message is a small dataclass; on the wire it is the tuple (its tag, its fields), pickled
and sent as an 8-byte length and a body. Tuples pickle several times faster than dataclasses,
and the receiver rebuilds the dataclass, so both ends `match` on types. Values inside are
already-serialised bytes, so the driver forwards results without deserialising them. Bodies are
received straight into a buffer of their size and large bodies are sent without being joined to
their header: a 64 MiB value is not copied more than needed.
"""

from __future__ import annotations

import operator
import pickle
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import ClassVar

from minray.task import Result, TaskSpec

_KINDS: list[type[Message]] = []


class Message:
    """Base of every message: sent as (TAG, *fields)."""

    __slots__ = ()
    TAG: ClassVar[int]
    _fields: ClassVar[Callable[[Message], tuple]]

    def encode(self) -> tuple:
        return (self.TAG, *self._fields(self))

    @classmethod
    def decode(cls, values: tuple) -> Message:
        return cls(*values)


def _message(cls: type) -> type:
    """Make `cls` a slotted dataclass with a tag of its own."""
    cls = dataclass(slots=True)(cls)
    cls.TAG = len(_KINDS)
    cls._fields = staticmethod(_getter([f.name for f in fields(cls)]))
    _KINDS.append(cls)
    return cls


def _getter(names: list[str]):
    """A function from a message to the tuple of its field values."""
    if len(names) > 1:
        return operator.attrgetter(*names)
    if names:
        one = operator.attrgetter(names[0])
        return lambda message: (one(message),)
    return lambda message: ()


# --- driver -> worker ----------------------------------------------------------------------
@_message
class Run(Message):
    """Run a task, create an actor or call its method. `func` is the pickled function or class
    the first time this worker needs it (None after); `deps` the pickled argument values."""

    task: TaskSpec
    func: bytes | None
    deps: dict[str, bytes]

    def encode(self) -> tuple:
        return (self.TAG, self.task.to_wire(), self.func, self.deps)

    @classmethod
    def decode(cls, values: tuple) -> Run:
        return cls(TaskSpec.from_wire(values[0]), values[1], values[2])


@_message
class Reply(Message):
    """The answer to a Get (the results) or a Wait (the ids that are ready)."""

    req_id: int
    payload: list


@_message
class Exit(Message):
    """Leave: the node does not need this worker any more."""


# --- worker -> driver ----------------------------------------------------------------------
@_message
class Hello(Message):
    """The first message on a new connection: which worker this is."""

    worker_id: str


@_message
class Done(Message):
    """A task, creation or method call finished, with one result per return id."""

    task_id: str
    results: list[Result]


@_message
class Submit(Message):
    """A task started a task or an actor, or called an actor's method."""

    task: TaskSpec

    def encode(self) -> tuple:
        return (self.TAG, self.task.to_wire())

    @classmethod
    def decode(cls, values: tuple) -> Submit:
        return cls(TaskSpec.from_wire(values[0]))


@_message
class Put(Message):
    """A task stored a value with `put`."""

    object_id: str
    data: bytes


@_message
class Get(Message):
    """A task blocks until these objects exist; answered by a Reply with their results."""

    req_id: int
    ids: list[str]


@_message
class Wait(Message):
    """A task blocks until `num_returns` of these objects exist; answered by the ready ids."""

    req_id: int
    ids: list[str]
    num_returns: int


@_message
class Cancel(Message):
    """A Get or Wait timed out in the task: forget it (a Wait is answered with what is ready)."""

    req_id: int


@_message
class KillActor(Message):
    """A task called `kill` on an actor."""

    actor_id: str
    no_restart: bool


# --- framing -------------------------------------------------------------------------------
_HEADER = struct.Struct("!Q")
_JOIN_BELOW = 1 << 16  # smaller bodies go out in one write with their header


def frame(message: Message) -> list[bytes]:
    """The buffers to send for one message."""
    body = pickle.dumps(message.encode(), protocol=5)
    header = _HEADER.pack(len(body))
    return [header + body] if len(body) < _JOIN_BELOW else [header, body]


def _decode(body: bytearray) -> Message:
    values = pickle.loads(body)
    return _KINDS[values[0]].decode(values[1:])


class FrameReader:
    """Reassembles messages from a socket, blocking or not; keeps a partial one across calls."""

    def __init__(self):
        self._header = bytearray(_HEADER.size)
        self._body: bytearray | None = None
        self._got = 0

    def read(self, sock: socket.socket) -> Message:
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
                return _decode(body)


class Channel:
    """The worker's blocking end of the connection."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._reader = FrameReader()

    def send(self, message: Message) -> None:
        for buf in frame(message):
            self.sock.sendall(buf)

    def recv(self, timeout: float | None = None) -> Message | None:
        """The next message; None on timeout. Raises EOFError when the driver is gone."""
        self.sock.settimeout(timeout)
        try:
            return self._reader.read(self.sock)
        except TimeoutError:
            return None
        finally:
            self.sock.settimeout(None)
