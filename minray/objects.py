"""ObjectRef: the handle of a value that a task will produce, or that `put` stored.

In the driver, refs report their birth and death to the node (`track`), which frees a value
once no ref to it is left, no queued task needs it, and no ref to it ever left the driver inside
a pickled value (a worker might still hold that one).
"""

from __future__ import annotations

import collections
import pickle
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

    def __init__(self, id: str):
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
        return self.id

    def __await__(self):
        import asyncio  # on use: it costs workers ~10 ms at start

        def fetch():
            return value_of(core.current().get([self.id], None)[0])

        return asyncio.get_running_loop().run_in_executor(None, fetch).__await__()


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

    def __init__(self, id: str):
        self.id = id

    def __reduce__(self):
        return Arg, (self.id,)
