"""The core the API talks to: the node in the driver, the connection to it inside a worker.

`minray.api`, `minray.remote` and `minray.objects` call `current()` and nothing else, so the same
API code runs in a driver and inside tasks, as in Ray. The first API call in a driver with no
node starts one (`minray.api` registers how, with `set_autostart`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable

from minray.task import Result, TaskSpec
from minray.values import Data


class Core(abc.ABC):
    """What the API needs from the place it runs in."""

    is_driver: bool
    job_id: str
    worker_id: str
    num_cpus: int
    # Where the caller runs (None in the driver)
    task_id: str | None = None
    actor_id: str | None = None
    was_restarted: bool = False
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
    def kill_actor(self, actor_id: str, no_restart: bool) -> None:
        """Stop an actor's process."""

    def check_cpus(self, num_cpus: float) -> None:
        """A task that asks for more CPUs than the node has could never run: say so now."""
        if num_cpus > self.num_cpus:
            raise ValueError(f"num_cpus={num_cpus} is more than this node has "
                             f"({self.num_cpus}); the task could never run. Pass num_cpus to "
                             f"minray.init() to change it")


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
