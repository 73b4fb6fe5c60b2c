"""What a caller sends to have something run: a task, an actor's creation, a method call."""

from __future__ import annotations

import operator
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from minray.values import Data

TASK, ACTOR, CALL = "task", "actor", "call"

# A stored value or error: (True, the value as minray.values.Data: its pickle, or the segment
# holding a large one) or (False, pickled exception).
Result = tuple[bool, Data]


class ActorCreation(NamedTuple):
    """What the node keeps of a new actor besides its creation task."""

    class_meta: Any  # minray.actor.ClassMeta: what `get_actor` hands out
    name: str | None
    namespace: str
    detached: bool  # lives until the node shuts down, whoever holds a handle
    max_task_retries: int  # how often a call is retried after the actor restarts
    get_if_exists: bool


class Concurrency(NamedTuple):
    """How an actor runs calls when not one at a time: on event loops (an async actor) or
    threads, `max_concurrency` at once in the default group and each named group's own limit."""

    is_async: bool
    max_concurrency: int
    groups: dict[str, int]  # concurrency_groups: name -> calls at once
    method_groups: dict[str, str]  # method -> its group, from @method(concurrency_group=...)


class Placement(NamedTuple):
    """Where in a placement group a task or actor runs."""

    group_id: str
    bundle_index: int  # -1: any bundle with room
    capture: bool  # its child tasks and actors go into the same group unless told otherwise
    cpus: float  # what a bundle must hold for it to be placed there (an actor's default: 1)


@dataclass(slots=True)
class TaskSpec:
    task_id: str
    name: str
    kind: str  # TASK, ACTOR (creation) or CALL (an actor method)
    args: bytes  # cloudpickled (args, kwargs), large ones stored apart (deps); b"": none
    deps: list[str]  # ids of top-level ObjectRef arguments, resolved before it runs
    return_ids: list[str]
    func_id: str | None = None  # the function or class, by content hash
    func_bytes: bytes | None = None  # sent once per process, then only the id
    num_cpus: float = 1.0
    max_retries: int = 0  # a task: runs again this often if its worker dies (-1: always)
    max_restarts: int = 0  # an actor's creation: restarts after its worker dies (-1: always)
    runtime_env: dict | None = None  # the caller's override, merged with the parent's env
    actor_id: str | None = None
    method: str | None = None
    attempts: int = 0
    resources: dict[str, float] | None = None  # GPUs, memory, custom: beyond num_cpus
    generator: str | None = None  # "streaming" or "dynamic": the task yields its values
    handles: list[str] | None = None  # actors whose handles the arguments hold: kept alive
    actor: ActorCreation | None = None  # an actor's creation: its name, lifetime, ...
    concurrency: Concurrency | None = None  # an actor's creation, unless one call at a time
    concurrency_group: str | None = None  # a call: the group `.options()` chose for it
    placement: Placement | None = None  # the placement group bundle(s) it runs in

    def to_wire(self) -> tuple:
        """The fields as a plain tuple: pickles ~4x faster than the dataclass itself."""
        return _values(self)

    @classmethod
    def from_wire(cls, values: tuple) -> TaskSpec:
        return cls(*values)


_values = operator.attrgetter(*(f.name for f in fields(TaskSpec)))
