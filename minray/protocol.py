"""The messages between the driver's node and its workers, and how they are framed.

Each message is a small named tuple type (a `Record`, minray/named_tuple.py), so both ends `match`
on types. On the wire it is the plain tuple (its tag, its fields), pickled and sent as an 8-byte
length and a body: plain tuples pickle several times faster than class instances, and Records
cost a tenth of a typing.NamedTuple to define, which every worker pays at start. Values
inside are already-serialised bytes, so the driver forwards results without deserialising
them; a large value's bytes are not in the message at all, only the name of its segment
(minray/values.py). Bodies are received straight into a buffer of their size and large bodies
are sent without being joined to their header: a 64 MiB value is not copied more than needed.
"""

from __future__ import annotations

import _pickle as pickle  # the C module: a worker starts ~1 ms sooner without pickle.py
import struct
from typing import TYPE_CHECKING, Union

from minray.named_tuple import Record
from minray.task import Result, TaskSpec
from minray.values import Data

if TYPE_CHECKING:
    import socket

    from minray.placement_calls import PlacementRequest


# --- driver -> worker ----------------------------------------------------------------------
class Run(Record):
    """Run a task, create an actor or call its method. `func` is the pickled function or class
    the first time this worker needs it (None after); `deps` the argument values (their pickles,
    or the segments of large ones: minray.values); `gpu_ids` the GPUs the task or actor holds
    (None: none)."""

    task: TaskSpec
    func: bytes | None
    deps: dict[str, Data]
    gpu_ids: list[int] | None = None


class Reply(Record):
    """The answer to a Get (the results) or a Wait (the ids that are ready)."""

    req_id: int
    payload: list


class Exit(Record):
    """Leave: the node does not need this worker any more."""


class CancelCall(Record):
    """A running call of this actor was cancelled: an async actor cancels its asyncio task
    (others only see `is_canceled()`, from the node's mark)."""

    task_id: str


# --- worker -> driver ----------------------------------------------------------------------
class Hello(Record):
    """The first message on a new connection: which worker this is, and why its env's
    worker_process_setup_hook failed, if it did (then it takes no work)."""

    worker_id: str
    setup_error: str | None = None


class Done(Record):
    """A task, creation or method call finished, with one result per return id."""

    task_id: str
    results: list[Result]


class Submit(Record):
    """A task started a task or an actor, or called an actor's method."""

    task: TaskSpec


class Put(Record):
    """A task stored a value with `put` (kept for the session: its refs are not counted), or a
    large argument of a task it submits (`for_task`: freed when that task is done)."""

    object_id: str
    data: Data
    for_task: bool = False


class Get(Record):
    """A task blocks until these objects exist; answered by a Reply with their results."""

    req_id: int
    ids: list[str]


class Wait(Record):
    """A task blocks until `num_returns` of these objects exist; answered by the ready ids."""

    req_id: int
    ids: list[str]
    num_returns: int


class Cancel(Record):
    """A Get or Wait timed out in the task: forget it (a Wait is answered with what is ready)."""

    req_id: int


class KillActor(Record):
    """A task called `kill` on an actor."""

    actor_id: str
    no_restart: bool


class CreateNamed(Record):
    """A task creates a named actor; answered by a Reply with (actor id, None), the id of the
    actor that holds the name, or (None, why the name cannot be had)."""

    task: TaskSpec
    req_id: int


class LookupActor(Record):
    """A task calls `get_actor`; answered by a Reply with (actor id, class description) or
    None."""

    req_id: int
    name: str
    namespace: str


class Handles(Record):
    """The actors this worker started or stopped holding a handle to, and those whose handles
    it pickled into a value (kept for the session), since its last such message."""

    gained: list[str]
    lost: list[str]
    escaped: list[str]


class Exiting(Record):
    """The actor in this worker is ending on purpose (`exit_actor`, `__ray_terminate__`): its
    exit is no crash, and it is not restarted."""

    reason: str


class CancelTask(Record):
    """A task called `cancel` on the task that returns `object_id`."""

    object_id: str
    force: bool
    recursive: bool


class Yield(Record):
    """A generator task produced its next value, stored under `object_id`."""

    object_id: str
    result: Result


class Query(Record):
    """A task asks the node about the session (`what`: "resources", "task_events");
    answered by a Reply."""

    req_id: int
    what: str


class PlacementCall(Record):
    """A task asks something of the node about placement groups (`minray.placement_calls`);
    answered by a Reply with (answer, None) or (None, the error to raise)."""

    req_id: int
    request: PlacementRequest


class Breakpoint(Record):
    """A task stopped in `breakpoint()` and waits for a debugger on `socket`
    (minray/remote_pdb.py); also the record in `<session>/debug/` that `minray debug` reads."""

    task: str
    pid: int
    file: str
    line: int
    function: str
    socket: str
    since: float  # time.time() when it stopped


class Paused(Record):
    """A task waits in a breakpoint: a driver on a terminal attaches to it."""

    breakpoint: Breakpoint


class StateQuery(Record):
    """A task or an observer asks for the session's state (`minray.util.state`): rows of a
    `kind` ("actors", "workers", "objects", "nodes") that pass `filters` (key, "=" or "!=",
    value), at most `limit`; or kind "status", the summary `minray status` prints. Answered by
    a Reply with ((rows, how many passed the filters) or the summary, None) or (None, why
    not)."""

    req_id: int
    kind: str
    filters: list[tuple[str, str, object]]
    limit: int
    detail: bool


# --- observer -> driver --------------------------------------------------------------------
class Observe(Record):
    """The first message of a connection that only reads the node's state (the `minray`
    command in another process): it is no worker, and may send StateQuery only."""


Message = Union[Run, Reply, Exit, Hello, Done, Submit, Put, Get, Wait, Cancel, KillActor,  # noqa: UP007
                CreateNamed, LookupActor, Handles, Exiting, Query, CancelTask, Yield,
                CancelCall, PlacementCall, Paused, StateQuery, Observe]
_KINDS: tuple[type, ...] = (Run, Reply, Exit, Hello, Done, Submit, Put, Get, Wait, Cancel,
                            KillActor, CreateNamed, LookupActor, Handles, Exiting, Query,
                            CancelTask, Yield, CancelCall, PlacementCall, Paused, StateQuery,
                            Observe)
_TAG = {kind: tag for tag, kind in enumerate(_KINDS)}
_CARRIES_TASK = (Run, Submit, CreateNamed)  # their first field is a TaskSpec, as a tuple


def encode(message: Message) -> tuple:
    kind = type(message)
    if kind in _CARRIES_TASK:
        return (_TAG[kind], message[0].to_wire(), *message[1:])
    return (_TAG[kind], *message)


def decode(values: tuple) -> Message:
    kind = _KINDS[values[0]]
    if kind in _CARRIES_TASK:
        return kind(TaskSpec.from_wire(values[1]), *values[2:])
    return kind(*values[1:])


# --- framing -------------------------------------------------------------------------------
_HEADER = struct.Struct("!Q")
_JOIN_BELOW = 1 << 16  # smaller bodies go out in one write with their header


def frame(message: Message) -> list[bytes]:
    """The buffers to send for one message."""
    body = pickle.dumps(encode(message), protocol=5)
    header = _HEADER.pack(len(body))
    return [header + body] if len(body) < _JOIN_BELOW else [header, body]


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
                return decode(pickle.loads(body))


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
        if timeout is None:  # the socket blocks already: settimeout would cost two ioctls
            return self._reader.read(self.sock)
        self.sock.settimeout(timeout)
        try:
            return self._reader.read(self.sock)
        except TimeoutError:
            return None
        finally:
            self.sock.settimeout(None)
