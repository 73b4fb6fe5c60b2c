"""The records the node keeps: runtime envs, worker processes, actors, a task's requests.

Plain data: which part of the node changes which field is said in docs/design.md.
"""

from __future__ import annotations

import collections
import enum
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import runtime_env as renv
from minray import exceptions as exc
from minray.task import TaskSpec

if TYPE_CHECKING:
    from minray.node.io_loop import Connection


@dataclass(eq=False)
class EnvState:
    """A runtime env of this session: being prepared, ready (with its launch context), or
    failed (remembered, so later tasks in it fail at once)."""

    hash: str
    spec: renv.RuntimeEnv
    launch: renv.LaunchContext | None = None
    error: exc.RuntimeEnvSetupError | None = None
    failed_at: float = 0.0  # time.monotonic() of the error, which is remembered for a while
    preparing: bool = False
    connected: bool = False  # a worker of it said hello: the env can run workers


class WorkerState(enum.Enum):
    STARTING = "starting"  # the process runs but has not said hello
    IDLE = "idle"  # connected, no task: may take one
    BUSY = "busy"  # running a task, or an actor's (an actor's worker is always busy)
    LEAVING = "leaving"  # asked to exit or killed: its exit is no crash
    DEAD = "dead"  # its exit was handled


@dataclass(eq=False)
class Request:
    """A task blocked in get or wait, until the node replies."""

    ids: list[str]
    wait: bool  # a wait is answered with the ready ids, a get with the results
    cancel: Callable[[], None]  # forget its waiters in the object store


@dataclass(eq=False)
class Worker:
    id: str
    env: EnvState
    proc: subprocess.Popen
    actor: Actor | None = None
    conn: Connection | None = None  # set by its hello
    state: WorkerState = WorkerState.STARTING
    task: TaskSpec | None = None  # the task it runs (not an actor's calls)
    cpus: float = 0  # the CPUs it holds now: its task's, unless it is blocked in get/wait
    known_funcs: set[str] = field(default_factory=set)  # functions it has been sent
    requests: dict[int, Request] = field(default_factory=dict)  # its task's get/wait calls
    start_error: str | None = None  # why it could not connect, when the node knows
    refused: bool = False  # the node refused its connection (out of descriptors): not the env

    @property
    def alive(self) -> bool:
        return self.state not in (WorkerState.LEAVING, WorkerState.DEAD)


@dataclass(eq=False)
class Actor:
    id: str
    spec: TaskSpec  # the creation task
    env: EnvState
    restarts_left: int
    worker: Worker | None = None
    queue: collections.deque[TaskSpec] = field(default_factory=collections.deque)  # not sent
    inflight: dict[str, TaskSpec] = field(default_factory=dict)  # sent, not answered
    dead: exc.ActorDiedError | None = None
    restarts: int = 0
