"""Where an actor's handles are, so that an actor stops once no handle to it is left (as Ray).

Each process reports its handles' births and deaths as events (`track`: the node drains the
driver's, a worker sums its own and tells the node when it starts or stops holding one). A
handle pickled into a task's arguments is noted (`noting_handles`) and pinned by that
task until it ends, by which time the worker that received it holds it; one pickled anywhere
else (a `put` value, a return value) escapes, and its actor is kept for the session.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

BORN, DIED, ESCAPED = 1, -1, 0

_events: collections.deque | None = None  # (actor_id, BORN/DIED/ESCAPED); appends are thread-safe
_wake: Callable[[], None] | None = None  # called when a handle died or escaped
_noting = threading.local()


def track(events: collections.deque | None, wake: Callable[[], None] | None = None) -> None:
    global _events, _wake
    _events, _wake = events, wake


def born(actor_id: str) -> None:
    if _events is not None:
        _events.append((actor_id, BORN))


def died(actor_id: str) -> None:
    if _events is not None:
        _events.append((actor_id, DIED))
        if _wake is not None:
            _wake()


def pickled(actor_id: str) -> None:
    noted = getattr(_noting, "ids", None)
    if noted is not None:
        noted.append(actor_id)
    elif _events is not None:
        _events.append((actor_id, ESCAPED))
        if _wake is not None:
            _wake()


def noting_handles(pack: Callable[[], T]) -> tuple[T, list[str]]:
    """Run `pack` (which pickles a task's arguments); its result, and the ids of the actors
    whose handles it pickled, each once."""
    outer = getattr(_noting, "ids", None)
    _noting.ids = ids = []
    try:
        return pack(), list(dict.fromkeys(ids))
    finally:
        _noting.ids = outer
