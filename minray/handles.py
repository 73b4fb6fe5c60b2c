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


class Reporter:
    """A worker's side: its handles per actor, summed from its events, and which actors the
    node believes it holds; `report` says what changed since the last report."""

    def __init__(self):
        self.events: collections.deque = collections.deque()
        self.held: dict[str, int] = {}  # actor id -> this process's live handles
        self.reported: set[str] = set()  # the actors the node counts this worker as holding
        track(self.events)

    @property
    def changed(self) -> bool:
        return bool(self.events)

    def report(self) -> tuple[list[str], list[str], list[str]] | None:
        """(gained, lost, escaped) since the last report, or None if the node's view holds."""
        events, held, escaped, touched = self.events, self.held, [], set()
        while events:
            actor_id, delta = events.popleft()
            if delta == ESCAPED:
                escaped.append(actor_id)
            else:
                held[actor_id] = held.get(actor_id, 0) + delta
                touched.add(actor_id)
        gained, lost = [], []
        for actor_id in touched:
            holds = held.get(actor_id, 0) > 0
            if not holds:
                held.pop(actor_id, None)
            if holds and actor_id not in self.reported:
                self.reported.add(actor_id)
                gained.append(actor_id)
            elif not holds and actor_id in self.reported:
                self.reported.discard(actor_id)
                lost.append(actor_id)
        return (gained, lost, escaped) if gained or lost or escaped else None
