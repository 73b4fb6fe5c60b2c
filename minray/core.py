"""The core the API talks to: the node in the driver, the connection to it inside a worker.

`minray.api`, `minray.remote` and `minray.objects` call `current()` and nothing else, so the same
API code runs in a driver and inside tasks, as in Ray. The first API call in a driver with no
node starts one (`minray.api` registers how, with `set_autostart`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

from minray.task import Placement, Result, TaskSpec
from minray.values import Data


class Core(abc.ABC):
    """What the API needs from the place it runs in."""

    is_driver: bool
    job_id: str
    node_id: str
    namespace: str  # where named actors are found unless a call names another
    worker_id: str
    num_cpus: int
    # Where the caller runs (None in the driver)
    task_id: str | None = None
    actor_id: str | None = None
    was_restarted: bool = False
    gpu_ids: list[int] = []  # the GPUs the running task or actor holds
    resource_spec: TaskSpec | None = None  # the task or actor creation whose resources it holds

    @property
    def placement(self) -> Placement | None:
        """The placement group bundle(s) the running task or actor was scheduled in."""
        spec = self.resource_spec
        return None if spec is None else spec.placement
    object_dir: str | None = None  # where large values are written (None: every value inline)

    @property
    @abc.abstractmethod
    def runtime_env_json(self) -> str:
        """The effective runtime env of the caller, serialised."""

    @abc.abstractmethod
    def new_id(self) -> str:
        """A new task, actor or object id, unique in the session."""

    @abc.abstractmethod
    def submit(self, spec: TaskSpec) -> None:
        """Run a task, create an actor or call its method; results go to `spec.return_ids`."""

    @abc.abstractmethod
    def submit_named(self, spec: TaskSpec) -> str:
        """Create a named actor; the id of the actor that holds the name: this one, or an
        existing one when `get_if_exists`. ValueError when the name is taken."""

    @abc.abstractmethod
    def get_actor(self, name: str, namespace: str) -> tuple[str, Any] | None:
        """The id and class description of the live actor of that name, or None."""

    @abc.abstractmethod
    def resources(self) -> dict:
        """{"total": {...}, "available": {...}}: the node's resources, by Ray's names."""

    @abc.abstractmethod
    def state_query(self, query) -> tuple:
        """Answer a `minray.protocol.StateQuery` (the state API): (answer, None) or (None,
        why not)."""


    @abc.abstractmethod
    def put(self, object_id: str, data: Data, for_task: bool = False) -> None:
        """Store a value (in its travelling form, minray.values) under a new id. `for_task`: a
        large argument stored apart, which no ref names: freed when its task is done."""

    @abc.abstractmethod
    def get(self, ids: list[str], timeout: float | None) -> list[Result]:
        """Block until every object exists; raise GetTimeoutError after `timeout`."""

    @abc.abstractmethod
    def wait(self, ids: list[str], num_returns: int, timeout: float | None) -> set[str]:
        """Block until `num_returns` objects exist or `timeout` passes; the ready ids."""

    @abc.abstractmethod
    def cancel(self, object_id: str, force: bool, recursive: bool) -> None:
        """Cancel the task that returns `object_id`, if it has not finished."""

    @abc.abstractmethod
    def watch(self, object_id: str, on_result: Callable[[Result], None]) -> Callable[[], None]:
        """Call `on_result` (on any thread, soon: it must not block) once the object exists;
        for `await ref`. Returns a function that cancels the watch."""

    @abc.abstractmethod
    def kill_actor(self, actor_id: str, no_restart: bool) -> None:
        """Stop an actor's process."""

    @abc.abstractmethod
    def placement_call(self, request):
        """Create, remove, find or watch a placement group (`minray.placement_calls`); the
        answer, or the error raised for it."""

    def is_cancelled(self) -> bool:
        raise RuntimeError("is_canceled() is only available inside a task or an actor")

    def check_resources(self, num_cpus: float, asked: dict[str, float] | None) -> None:
        """A task that asks for more than the node has could never run: say so now."""
        if num_cpus > self.num_cpus:
            raise ValueError(f"num_cpus={num_cpus} is more than this node has "
                             f"({self.num_cpus}); the task could never run. Pass num_cpus to "
                             f"minray.init() to change it")
        if asked:
            from minray.resources import missing

            why = missing(asked, self.resource_totals)
            if why is not None:
                raise ValueError(f"the task could never run: {why}")

    @property
    @abc.abstractmethod
    def resource_totals(self) -> dict[str, float]:
        """What the node has besides CPUs: GPUs, memory, custom resources."""


_current: Core | None = None
_autostart: Callable[[], Core] | None = None


def current() -> Core:
    """The core of this process, starting a local node on first use in a driver."""
    if _current is not None:
        return _current
    if _autostart is None:
        raise RuntimeError("minray is not initialised; call minray.init()")
    return _autostart()


def get_current() -> Core | None:
    """The core of this process, or None; starts nothing."""
    return _current


def set_current(core: Core | None) -> None:
    global _current
    _current = core


def set_autostart(start: Callable[[], Core]) -> None:
    global _autostart
    _autostart = start
