"""Ids of tasks, actors, objects and workers in the driver: hex numbers from one counter per
driver process, in order. Workers make theirs as `<worker id>.<n>` and a task's extra returns
are `<task id>.<i>`, so the number before the first dot says when an id was made, and a ref
from an earlier session is known at once."""

from __future__ import annotations

import itertools

_counter = itertools.count(1)


def new_id() -> str:
    return f"{next(_counter):x}"


def number(oid: str) -> int:
    """The counter value an id (or the worker that made it) was made from; -1 if foreign."""
    head = oid.partition(".")[0].removeprefix("w")
    try:
        return int(head, 16)
    except ValueError:
        return -1
