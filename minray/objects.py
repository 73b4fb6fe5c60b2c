"""ObjectRef: the handle of a value that a task will produce, or that `put` stored.

In the driver, refs report their birth and death to the node (`track`), which frees a value
once no ref to it is left, no queued task needs it, and no ref to it ever left the driver inside
a pickled value (a worker might still hold that one).
"""

from __future__ import annotations

import _pickle as pickle  # the C module: a worker starts ~1 ms sooner without pickle.py
import collections
from collections.abc import Callable

from minray import core, values
from minray import exceptions as exc
from minray.task import Result

# Set by the driver's node while it runs: (id, +1/-1) per ref created/collected, the ids whose
# refs were pickled into values, and the ids of large values, whose refs call `_wake` when
# they die so the node frees their memory at once. Appends to a deque or set are safe from any
# thread, including a garbage collection that runs while the node's lock is held.
_events: collections.deque | None = None
_escaped: set | None = None
_large: set | frozenset = frozenset()
_wake: Callable[[], None] | None = None


def track(events: collections.deque | None, escaped: set | None, large: set | None = None,
          wake: Callable[[], None] | None = None) -> None:
    global _events, _escaped, _large, _wake
    _events, _escaped, _wake = events, escaped, wake
    _large = frozenset() if large is None else large


class ObjectRef:
    __slots__ = ("id", "__weakref__")

    def __init__(self, id: str | bytes):
        if type(id) is bytes:  # Ray's constructor takes the binary id, as binary() gives it
            id = id_from_hex(id.hex())
        self.id = id
        if _events is not None:
            _events.append((id, 1))

    def __del__(self):
        if _events is not None:
            _events.append((self.id, -1))
            if self.id in _large and _wake is not None:
                _wake()

    def __reduce__(self):
        if _escaped is not None:
            _escaped.add(self.id)
        return ObjectRef, (self.id,)

    def __repr__(self) -> str:
        return f"ObjectRef({self.id})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ObjectRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def hex(self) -> str:
        """A hex id of Ray's length (28 bytes), from which `from_hex` gives the ref back."""
        return id_hex(self.id, 28)

    def binary(self) -> bytes:
        return bytes.fromhex(self.hex())

    @classmethod
    def from_hex(cls, hex_id: str) -> ObjectRef:
        return cls(id_from_hex(hex_id))

    @classmethod
    def from_binary(cls, binary: bytes) -> ObjectRef:
        return cls(binary)

    def task_id(self) -> str:
        return id_hex(self.id.partition(".")[0], 24)

    def job_id(self) -> str:
        return core.current().job_id

    def __await__(self):
        return _awaited(self).__await__()


async def _awaited(ref: ObjectRef):
    """`await ref`: the loop waits on a future the core settles when the value exists, so any
    number of awaits cost no thread each, and a cancelled await (`asyncio.wait_for`) stops
    watching. Holds the ref while it waits: in `await f.remote()` nothing else does, and a
    ref that dies frees its value, which would then never be seen."""
    object_id = ref.id
    import asyncio  # on use: it costs workers ~10 ms at start

    loop = asyncio.get_running_loop()
    arrived = loop.create_future()

    def on_result(result: Result) -> None:  # any thread: the node's, a worker's reader
        try:
            loop.call_soon_threadsafe(_settle, arrived, result)
        except RuntimeError:  # the loop was closed: nobody waits any more
            pass

    cancel = core.current().watch(object_id, on_result)
    try:
        result = await arrived
    except BaseException:
        cancel()
        raise
    return value_of(result)


def _settle(future, result: Result) -> None:
    if not future.done():
        future.set_result(result)


ObjectID = ObjectRef  # the older name, which Ray keeps


def id_hex(oid: str | None, size: int) -> str | None:
    """An id as hex of `size` bytes, zero-padded on the left like Ray's ids (minray's ids are
    short ASCII, which never starts with a zero byte, so the padding comes off again)."""
    if oid is None:
        return None
    return oid.encode().hex().rjust(2 * size, "0")


def id_from_hex(hex_id: str) -> str:
    try:
        return bytes.fromhex(hex_id).lstrip(b"\0").decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{hex_id!r} is not the hex id of a minray object") from None


def value_of(result: Result):
    """The value a result holds, or raise the error it holds (as the task's own type)."""
    ok, data = result
    if ok:
        return values.loads(data)
    error = pickle.loads(data)
    if isinstance(error, exc.RayTaskError):
        raise error.as_instanceof_cause()
    raise error


class Arg:
    """A top-level ObjectRef argument on its way to a task: the worker gets the value in its
    place, so the ref itself never reaches the worker (and does not count as escaped)."""

    __slots__ = ("id",)

    def __init__(self, id: str | bytes):
        if type(id) is bytes:  # Ray's constructor takes the binary id, as binary() gives it
            id = id_from_hex(id.hex())
        self.id = id

    def __reduce__(self):
        return Arg, (self.id,)
