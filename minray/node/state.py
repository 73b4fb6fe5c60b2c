"""The records the node keeps: runtime envs, worker processes, actors, a task's requests.

Plain data: which part of the node changes which field is said in docs/design.md.
"""

from __future__ import annotations

import collections
import enum
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import runtime_env as renv
from minray import exceptions as exc
from minray.named_tuple import Record
from minray.task import TaskSpec

if TYPE_CHECKING:
    import subprocess

    from minray.node.forkservers import ForkedProcess
    from minray.node.io_loop import Connection
    from minray.node.ledger import Holding


class EnvState:
    """A runtime env of this session: being prepared, ready (with its launch context), or
    failed (remembered for a while, so later tasks in it fail at once)."""

    __slots__ = ("hash", "spec", "launch", "error", "failed_at", "preparing", "connected")

    def __init__(self, hash: str, spec: renv.RuntimeEnv,
                 launch: renv.LaunchContext | None = None):
        self.hash = hash
        self.spec = spec
        self.launch = launch
        self.error: exc.RuntimeEnvSetupError | None = None
        self.failed_at = 0.0  # time.monotonic() of the error
        self.preparing = False
        self.connected = False  # a worker of it said hello: the env can run workers


class WorkerState(enum.Enum):
    STARTING = "starting"  # the process runs but has not said hello
    IDLE = "idle"  # connected, no task: may take one
    BUSY = "busy"  # running a task, or an actor's (an actor's worker is always busy)
    LEAVING = "leaving"  # asked to exit or killed: its exit is no crash
    DEAD = "dead"  # its exit was handled


class Request:
    """A task blocked in get or wait, until the node replies."""

    __slots__ = ("ids", "wait", "cancel", "since")

    def __init__(self, ids: list[str], wait: bool, cancel: Callable[[], None]):
        self.since = time.time()  # for the timeline's blocked span
        self.ids = ids
        self.wait = wait  # a wait is answered with the ready ids, a get with the results
        self.cancel = cancel  # forgets its waiters in the object store


class Worker:
    """A worker process and what the node knows of it."""

    __slots__ = ("id", "env", "proc", "actor", "conn", "state", "task", "cpus", "ledger",
                 "holding", "known_funcs", "requests", "start_error", "refused")

    def __init__(self, id: str, env: EnvState, proc: subprocess.Popen | ForkedProcess | None,
                 actor: Actor | None = None):
        self.id = id
        self.env = env
        self.proc = proc
        self.actor = actor
        self.conn: Connection | None = None  # set by its hello
        self.state = WorkerState.STARTING
        self.task: TaskSpec | None = None  # the task it runs (not an actor's calls)
        self.cpus = 0.0  # the CPUs it holds now: its task's, unless it is blocked in get/wait
        # where they come from (a CpuLedger: the node's, a placement group bundle's; None: the
        # node's); while it starts, the ledger whose tasks it was started for
        self.ledger = None
        self.holding: Holding | None = None  # its task's GPUs, memory, custom resources
        self.known_funcs: set[str] = set()  # functions it has been sent
        self.requests: dict[int, Request] = {}  # its task's get/wait calls
        self.start_error: str | None = None  # why it could not connect, when the node knows
        self.refused = False  # it failed for want of descriptors or processes, not its env's

    @property
    def alive(self) -> bool:
        return self.state not in (WorkerState.LEAVING, WorkerState.DEAD)

    def __repr__(self) -> str:
        return f"Worker({self.id}, {self.state.name}, pid {self.proc.pid if self.proc else None})"


class EndedWorker(Record):
    """A worker process that ended, kept a while for the state API (Ray lists dead workers)."""

    id: str
    pid: int | None
    exit_type: str  # Ray's: SYSTEM_ERROR, INTENDED_SYSTEM_EXIT, INTENDED_USER_EXIT
    exit_detail: str  # how it ended, in words
    ended_at: float  # time.time()


class Actor:
    """An actor: its creation task, its worker, its calls, and who can still reach it."""

    __slots__ = ("id", "spec", "env", "restarts_left", "worker", "queue", "inflight", "dead",
                 "restarts", "owner", "holders", "driver_handles", "pins", "escaped", "ending",
                 "cpus", "ledger", "holding", "end_when_idle", "created")

    def __init__(self, id: str, spec: TaskSpec, env: EnvState, restarts_left: int,
                 owner: str | None):
        self.id = id
        self.spec = spec  # the creation task; spec.actor says its name, lifetime, ...
        self.env = env
        self.restarts_left = restarts_left
        self.worker: Worker | None = None
        self.queue: collections.deque[TaskSpec] = collections.deque()  # calls not yet sent
        self.inflight: dict[str, TaskSpec] = {}  # calls sent, not answered
        self.dead: exc.ActorDiedError | None = None
        self.restarts = 0
        # Who can still reach it: when none can, it ends (unless detached)
        self.owner = owner  # the worker that created it (None: the driver); it dies with it
        self.holders: set[str] = set()  # workers holding a handle to it
        self.driver_handles = 0  # handles to it alive in the driver
        self.pins = 0  # unfinished tasks whose arguments hold a handle to it
        self.escaped = False  # a handle was pickled into a value: kept for the session
        self.ending: str | None = None  # why it is ending on purpose, once it is
        self.end_when_idle = False  # nothing reached it: end it once its calls are done
        self.created = False  # its constructor returned in the worker it has now
        # What it holds for its whole life (num_cpus, num_gpus, ... asked for), once started
        self.cpus = 0.0
        self.ledger = None  # the CpuLedger they come from: the node's, or a bundle's
        self.holding: Holding | None = None

    @property
    def name(self) -> str:
        return self.spec.name
