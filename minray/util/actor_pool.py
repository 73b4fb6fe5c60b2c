"""`ActorPool`: a fixed set of actors that work through values, one call per idle actor.

Ray's `ray.util.ActorPool`, with its semantics: `fn(actor, value)` starts a call and returns its
ObjectRef; an actor counts as busy until its result is taken with `get_next` (in submission
order) or `get_next_unordered` (whichever finishes first); values submitted while every actor is
busy wait in order for the next actor to come back. An actor whose call raised ActorDiedError
leaves the pool.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from minray import api
from minray import exceptions as exc
from minray.named_tuple import Record
from minray.objects import ObjectRef

_TIMED_OUT = "Timed out waiting for result"


class _InFlight(Record):
    index: int  # its place in submission order
    actor: Any
    refs: ObjectRef | list[ObjectRef]  # what fn returned


class ActorPool:
    def __init__(self, actors: Iterable):
        self._idle: list = list(actors)
        self._inflight: dict[int, _InFlight] = {}  # by submission index
        self._waiting: collections.deque[tuple[Callable, Any]] = collections.deque()
        self._next_index = 0  # the index the next call gets
        self._next_return = 0  # the index get_next returns next

    # ------------------------------------------------------------------ submitting
    def submit(self, fn: Callable[[Any, Any], Any], value: Any) -> None:
        """Run `fn(actor, value)` on an idle actor, or once one is free."""
        if not callable(fn):
            raise TypeError(f"ActorPool.submit takes a function fn(actor, value) that returns "
                            f"an ObjectRef, got {type(fn).__name__}")
        if not self._idle:
            self._waiting.append((fn, value))
            return
        actor = self._idle.pop()
        refs = fn(actor, value)
        if not _are_refs(refs):
            self._idle.append(actor)
            raise TypeError(f"the function given to ActorPool must return the ObjectRef of "
                            f"the call it starts (e.g. lambda a, v: a.method.remote(v)), got "
                            f"{type(refs).__name__}")
        self._inflight[self._next_index] = _InFlight(self._next_index, actor, refs)
        self._next_index += 1

    def map(self, fn: Callable[[Any, Any], Any], values: Iterable) -> Iterator:
        """The results of `fn(actor, value)` for each value, in the order of `values`, as an
        iterator (iterate it to get them). Results not taken from earlier calls are dropped."""
        self._drop_unreturned(self.get_next)
        for value in values:
            self.submit(fn, value)
        return self._results(self.get_next)

    def map_unordered(self, fn: Callable[[Any, Any], Any], values: Iterable) -> Iterator:
        """As `map`, but each result as soon as it is ready."""
        self._drop_unreturned(self.get_next_unordered)
        for value in values:
            self.submit(fn, value)
        return self._results(self.get_next_unordered)

    def _drop_unreturned(self, get_next: Callable) -> None:
        while self.has_next():
            try:
                get_next(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass

    def _results(self, get_next: Callable) -> Iterator:
        while self.has_next():
            yield get_next()

    # ------------------------------------------------------------------ results
    def has_next(self) -> bool:
        """True while results are left to take."""
        return bool(self._inflight)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False):
        """The next result in submission order, waiting up to `timeout` seconds (TimeoutError
        after that; with `ignore_if_timedout` that call is given up and its actor freed)."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return >= self._next_index:
            raise ValueError("It is not allowed to call get_next() after "
                             "get_next_unordered().")
        call = self._inflight[self._next_return]
        if timeout is not None and not _ready([call], timeout):
            if not ignore_if_timedout:
                raise TimeoutError(_TIMED_OUT)
            self._forget(call)
            self._return(call.actor)
            raise TimeoutError(f"{_TIMED_OUT}. The task {call.refs} has been ignored.")
        self._forget(call)
        return self._result(call)

    def get_next_unordered(self, timeout: float | None = None,
                           ignore_if_timedout: bool = False):
        """Whichever result is ready first, waiting up to `timeout` seconds (TimeoutError after
        that; with `ignore_if_timedout` the oldest call is given up and its actor freed)."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        ready = _ready(list(self._inflight.values()), timeout)
        if not ready:
            if not ignore_if_timedout:
                raise TimeoutError(_TIMED_OUT)
            oldest = self._inflight[min(self._inflight)]
            self._forget(oldest)
            self._return(oldest.actor)
            raise TimeoutError(f"{_TIMED_OUT}. The task {oldest.refs} has been ignored.")
        call = ready[0]
        self._forget(call)
        return self._result(call)

    def _forget(self, call: _InFlight) -> None:
        del self._inflight[call.index]
        self._next_return = max(self._next_return, call.index + 1)

    def _result(self, call: _InFlight):
        """The call's value; its actor goes back to the pool unless it died."""
        alive = True
        try:
            return api.get(call.refs)
        except exc.ActorDiedError:
            alive = False
            raise
        finally:
            if alive:
                self._return(call.actor)
            else:
                self._submit_waiting()

    # ------------------------------------------------------------------ the actors
    def has_free(self) -> bool:
        """True if an actor is idle and no submitted value waits for one."""
        return bool(self._idle) and not self._waiting

    def pop_idle(self):
        """Take an idle actor out of the pool; None if none is free."""
        return self._idle.pop() if self.has_free() else None

    def push(self, actor) -> None:
        """Add an actor to the pool (it starts on a waiting value at once, if any)."""
        if actor in self._idle or any(c.actor == actor for c in self._inflight.values()):
            raise ValueError("Actor already belongs to current ActorPool")
        self._return(actor)

    def _return(self, actor) -> None:
        self._idle.append(actor)
        self._submit_waiting()

    def _submit_waiting(self) -> None:
        if self._waiting and self._idle:
            self.submit(*self._waiting.popleft())


def _are_refs(refs) -> bool:
    if isinstance(refs, ObjectRef):
        return True
    return isinstance(refs, list) and bool(refs) and all(isinstance(r, ObjectRef) for r in refs)


def _ready(calls: list[_InFlight], timeout: float | None) -> list[_InFlight]:
    """The calls whose results are ready within `timeout` (at least one unless it passed); a
    call that returned several refs is ready when its first is."""
    first = {(c.refs if isinstance(c.refs, ObjectRef) else c.refs[0]): c for c in calls}
    done, _ = api.wait(list(first), num_returns=1, timeout=timeout)
    return [first[r] for r in done]
