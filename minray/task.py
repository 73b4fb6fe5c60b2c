"""What a caller sends to have something run: a task, an actor's creation, a method call."""

from __future__ import annotations

import operator
from typing import Any

from minray.named_tuple import Record
from minray.values import Data

TASK, ACTOR, CALL = "task", "actor", "call"

# A stored value or error: (True, the value as minray.values.Data: its pickle, or the segment
# holding a large one) or (False, pickled exception).
Result = tuple[bool, Data]


class ActorCreation(Record):
    """What the node keeps of a new actor besides its creation task."""

    class_meta: Any  # minray.actor.ClassMeta: what `get_actor` hands out
    name: str | None
    namespace: str
    detached: bool  # lives until the node shuts down, whoever holds a handle
    max_task_retries: int  # how often a call is retried after the actor restarts
    get_if_exists: bool


class Concurrency(Record):
    """How an actor runs calls when not one at a time: on event loops (an async actor) or
    threads, `max_concurrency` at once in the default group and each named group's own limit."""

    is_async: bool
    max_concurrency: int
    groups: dict[str, int]  # concurrency_groups: name -> calls at once
    method_groups: dict[str, str]  # method -> its group, from @method(concurrency_group=...)


class Placement(Record):
    """Where in a placement group a task or actor runs."""

    group_id: str
    bundle_index: int  # -1: any bundle with room
    capture: bool  # its child tasks and actors go into the same group unless told otherwise
    cpus: float  # what a bundle must hold for it to be placed there (an actor's default: 1)


class TaskSpec:
    """A task, an actor's creation or a method call, as the caller sends it. A plain class
    rather than a dataclass: every worker loads this module at start, and dataclasses (with
    inspect) would cost it a sixth of a Python start."""

    __slots__ = ("task_id", "name", "kind", "args", "deps", "return_ids", "func_id",
                 "func_bytes", "num_cpus", "max_retries", "max_restarts", "runtime_env",
                 "actor_id", "method", "attempts", "resources", "generator", "handles", "actor",
                 "concurrency", "concurrency_group", "placement")

    def __init__(self, task_id: str, name: str, kind: str, args: bytes, deps: list[str],
                 return_ids: list[str], func_id: str | None = None,
                 func_bytes: bytes | None = None, num_cpus: float = 1.0, max_retries: int = 0,
                 max_restarts: int = 0, runtime_env: dict | None = None,
                 actor_id: str | None = None, method: str | None = None, attempts: int = 0,
                 resources: dict[str, float] | None = None, generator: str | None = None,
                 handles: list[str] | None = None, actor: ActorCreation | None = None,
                 concurrency: Concurrency | None = None, concurrency_group: str | None = None,
                 placement: Placement | None = None):
        self.task_id = task_id
        self.name = name
        self.kind = kind  # TASK, ACTOR (creation) or CALL (an actor method)
        self.args = args  # pickled (args, kwargs), large ones stored apart (deps); b"": none
        self.deps = deps  # ids of top-level ObjectRef arguments, resolved before it runs
        self.return_ids = return_ids
        self.func_id = func_id  # the function or class, by content hash
        self.func_bytes = func_bytes  # sent once per process, then only the id
        self.num_cpus = num_cpus
        self.max_retries = max_retries  # a task: reruns if its worker dies (-1: always)
        self.max_restarts = max_restarts  # an actor: restarts after its worker dies (-1: always)
        self.runtime_env = runtime_env  # the caller's override, merged with the parent's env
        self.actor_id = actor_id
        self.method = method
        self.attempts = attempts
        self.resources = resources  # GPUs, memory, custom: beyond num_cpus
        self.generator = generator  # "streaming" or "dynamic": the task yields its values
        self.handles = handles  # actors whose handles the arguments hold: kept alive
        self.actor = actor  # an actor's creation: its name, lifetime, ...
        self.concurrency = concurrency  # an actor's creation, unless one call at a time
        self.concurrency_group = concurrency_group  # a call: the group `.options()` chose
        self.placement = placement  # the placement group bundle(s) it runs in

    def __repr__(self) -> str:
        return f"TaskSpec({self.task_id!r}, {self.name!r}, {self.kind!r})"

    def to_wire(self) -> tuple:
        """The fields as a plain tuple: pickles ~4x faster than the object itself."""
        return _values(self)

    @classmethod
    def from_wire(cls, values: tuple) -> TaskSpec:
        return cls(*values)


_values = operator.attrgetter(*TaskSpec.__slots__)
