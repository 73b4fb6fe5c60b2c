"""The session's event log: when each task was submitted, queued, sent to a worker and ended;
when each worker was asked for, connected and exited; each env's preparation and its steps;
each get or wait that blocked.

It is always on, so it records only from places the node already passes through, under its
lock (the env steps come from the preparing thread: appends, safe under the GIL), with one
`time.time()` and a dict lookup per transition and no message of its own. It keeps every
unfinished task and the last `limit` finished ones (Ray keeps 100,000 task events by
default; MINRAY_TASK_EVENTS_MAX_NUM_TASK or Ray's RAY_task_events_max_num_task_in_gcs
change it). `snapshot()` turns it into minray.task_events tuples for the readers.
"""

from __future__ import annotations

import collections
import os
import pickle
from time import time
from typing import TYPE_CHECKING

from minray import task_events as ev
from minray.task import ACTOR, CALL, TASK

if TYPE_CHECKING:
    from minray.node.state import EnvState, Request, Worker
    from minray.task import Result, TaskSpec

LIMIT_VARS = ("MINRAY_TASK_EVENTS_MAX_NUM_TASK", "RAY_task_events_max_num_task_in_gcs")
DEFAULT_LIMIT = 100_000

_TYPES = {TASK: ev.NORMAL_TASK, ACTOR: ev.ACTOR_CREATION_TASK, CALL: ev.ACTOR_TASK}
# Ray's ErrorType for the errors the node or a worker reports, by class name (first match in
# the error's MRO); anything else a task raised is TASK_EXECUTION_EXCEPTION
_ERROR_TYPES = {"TaskCancelledError": "TASK_CANCELLED", "WorkerCrashedError": "WORKER_DIED",
                "ActorEnvSetupError": "RUNTIME_ENV_SETUP_FAILED",
                "ActorPlacementGroupRemoved": "ACTOR_PLACEMENT_GROUP_REMOVED",
                "ActorDiedError": "ACTOR_DIED", "RayActorError": "ACTOR_DIED",
                "RuntimeEnvSetupError": "RUNTIME_ENV_SETUP_FAILED",
                "ObjectLostError": "OBJECT_LOST",
                "TaskPlacementGroupRemoved": "TASK_PLACEMENT_GROUP_REMOVED",
                "ObjectStoreFullError": "OUT_OF_MEMORY"}


def limit_from_env() -> int:
    for var in LIMIT_VARS:
        value = os.environ.get(var)
        if value:
            try:
                limit = int(value)
            except ValueError:
                raise ValueError(f"{var} must be a whole number of tasks, got {value!r}") from None
            if limit < 1:
                raise ValueError(f"{var} must be at least 1, got {limit}")
            return limit
    return DEFAULT_LIMIT


_PID = os.getpid()  # the driver's, recorded per blocked get: no system call each time

class _Task:
    """A task's life as recorded; mutable, turned into a TaskEvent by `snapshot()`."""

    __slots__ = ("task_id", "name", "kind", "actor_id", "parent", "env", "submitted",
                 "queued", "started", "ended", "worker", "error", "attempt", "earlier",
                 "blocked", "waited")

    def __init__(self, spec: TaskSpec, parent: str | None, now: float):
        self.task_id = spec.task_id
        self.name = spec.name
        self.kind = spec.kind
        self.actor_id = spec.actor_id
        self.parent = parent
        self.env: str | None = None
        self.submitted = now
        self.queued: float | None = None
        self.started: float | None = None
        self.ended: float | None = None
        self.worker: Worker | None = None
        self.error = None  # the error (an exception, or a worker's pickle of one) if it failed
        self.attempt = 0
        self.earlier: list[tuple[float, Worker]] | None = None
        self.blocked: str | None = None  # "get" or "wait" while the task is blocked in one
        self.waited = False  # for its arguments


class _WorkerRecord:
    __slots__ = ("worker", "forked", "asked", "connected", "exited", "how")

    def __init__(self, worker: Worker, forked: bool, now: float):
        self.worker, self.forked, self.asked = worker, forked, now
        self.connected: float | None = None
        self.exited: float | None = None
        self.how: str | None = None


class _EnvRecord:
    __slots__ = ("hash", "spec", "started", "ended", "error", "steps")

    def __init__(self, env_hash: str, spec: dict, now: float):
        self.hash, self.spec, self.started = env_hash, spec, now
        self.ended: float | None = None
        self.error: str | None = None
        self.steps: list[list] = []  # [field, step, detail, started]


class TaskLog:
    def __init__(self, limit: int | None = None):
        self.limit = limit_from_env() if limit is None else limit
        self.tasks: dict[str, _Task] = {}
        self._finished: collections.deque[str] = collections.deque()
        self.dropped = 0
        self.workers: dict[str, _WorkerRecord] = {}
        self._exited: collections.deque[str] = collections.deque()
        self.envs: list[_EnvRecord] = []
        self.blocks: collections.deque[ev.BlockEvent] = collections.deque(maxlen=self.limit)

    # ------------------------------------------------------------------ tasks
    def submitted(self, spec: TaskSpec, owner: Worker | None) -> None:
        """The node took it (`owner`: the worker whose task or actor submitted it)."""
        parent = None
        if owner is not None:  # an actor's id is its creation task's
            parent = owner.task.task_id if owner.task is not None else (owner.actor
                                                                        and owner.actor.id)
        self.tasks[spec.task_id] = _Task(spec, parent, time())

    def waits_for_args(self, spec: TaskSpec) -> None:
        record = self.tasks.get(spec.task_id)
        if record is not None:
            record.waited = True

    def queued(self, spec: TaskSpec, env: EnvState | None) -> None:
        """Its arguments exist: it waits for a CPU and a worker (an actor call: its actor)."""
        record = self.tasks.get(spec.task_id)
        if record is not None:
            record.queued = time()
            if env is not None:
                record.env = env.hash

    def running(self, spec: TaskSpec, worker: Worker) -> None:
        """Sent to its worker. A task sent again after its worker died keeps that attempt."""
        record = self.tasks.get(spec.task_id)
        if record is None:
            return
        if record.started is not None:
            if record.earlier is None:
                record.earlier = []
            record.earlier.append((record.started, record.worker))
            record.attempt += 1
            record.ended = record.error = None
        record.started = time()
        record.worker = worker

    def ended(self, spec: TaskSpec, results: list[Result], error: BaseException | None) -> None:
        record = self.tasks.get(spec.task_id)
        if record is None or record.ended is not None:
            return
        record.ended = time()
        if error is not None:
            record.error = error
        elif results and not results[0][0]:
            record.error = results[0][1]
        self._finished.append(spec.task_id)
        if len(self._finished) > self.limit:
            self.tasks.pop(self._finished.popleft(), None)
            self.dropped += 1

    # ------------------------------------------------------------------ blocking
    def block_started(self, worker: Worker, request: Request) -> None:
        task = worker.task
        if task is not None:
            record = self.tasks.get(task.task_id)
            if record is not None:
                record.blocked = "wait" if request.wait else "get"

    def block_ended(self, worker: Worker, request: Request) -> None:
        task = worker.task
        task_id = task.task_id if task is not None else None
        if task_id is not None and not any(worker.requests.values()):
            record = self.tasks.get(task_id)
            if record is not None:
                record.blocked = None
        self.blocks.append(ev.BlockEvent("wait" if request.wait else "get", worker.id,
                                         worker.proc.pid if worker.proc else None, 0, task_id,
                                         len(request.ids), request.since, time()))

    def driver_blocked(self, kind: str, objects: int, thread: int, started: float) -> None:
        self.blocks.append(ev.BlockEvent(kind, "driver", _PID, thread, None, objects,
                                         started, time()))

    # ------------------------------------------------------------------ workers
    def worker_asked(self, worker: Worker, forked: bool) -> None:
        self.workers[worker.id] = _WorkerRecord(worker, forked, time())

    def worker_connected(self, worker: Worker) -> None:
        record = self.workers.get(worker.id)
        if record is not None:
            record.connected = time()

    def worker_exited(self, worker: Worker, how: str) -> None:
        record = self.workers.get(worker.id)
        if record is not None and record.exited is None:
            record.exited, record.how = time(), how
            self._exited.append(worker.id)
            if len(self._exited) > self.limit:
                self.workers.pop(self._exited.popleft(), None)

    # ------------------------------------------------------------------ envs (any thread)
    def env_started(self, env_hash: str, spec: dict) -> _EnvRecord:
        record = _EnvRecord(env_hash, spec, time())
        self.envs.append(record)
        if len(self.envs) > self.limit:
            del self.envs[0]
        return record

    @staticmethod
    def env_step(record: _EnvRecord, field: str, step: str, detail: str) -> None:
        record.steps.append([field, step, detail, time()])

    @staticmethod
    def env_ended(record: _EnvRecord, error: str | None) -> None:
        record.error = error
        record.ended = time()

    # ------------------------------------------------------------------ reading
    def snapshot(self, *, node_id: str, job_id: str) -> ev.Snapshot:
        """The log as tuples (under the node's lock)."""
        workers = [_worker_event(r) for r in self.workers.values()]
        return ev.Snapshot(node_id, job_id, os.getpid(), time(),
                           [_task_event(r, self.workers) for r in list(self.tasks.values())],
                           workers, [_env_event(r) for r in list(self.envs)],
                           list(self.blocks), self.dropped)


def _pid(worker: Worker | None) -> int | None:
    return None if worker is None or worker.proc is None else worker.proc.pid


def _task_event(r: _Task, workers: dict[str, _WorkerRecord]) -> ev.TaskEvent:
    error_type = message = None
    if r.error is not None:
        error_type, message = _classify(r.error)
    earlier = ()
    if r.earlier:
        earlier = tuple(ev.Attempt(started, _exit_time(workers, w), w.id, _pid(w))
                        for started, w in r.earlier)
    worker = r.worker
    return ev.TaskEvent(r.task_id, r.name, _TYPES[r.kind], _state(r, error_type), r.actor_id,
                        r.parent, r.attempt, r.submitted, r.waited, r.queued, r.started,
                        r.ended,
                        worker.id if worker else None, _pid(worker),
                        r.env or (worker.env.hash if worker else None), error_type, message,
                        earlier)


def _exit_time(workers: dict[str, _WorkerRecord], worker: Worker) -> float | None:
    record = workers.get(worker.id)
    return None if record is None else record.exited


def _state(r: _Task, error_type: str | None) -> str:
    if r.ended is not None:
        return ev.FAILED if error_type is not None else ev.FINISHED
    if r.started is not None:
        if r.blocked is not None:
            return ev.RUNNING_IN_RAY_GET if r.blocked == "get" else ev.RUNNING_IN_RAY_WAIT
        actor = r.worker.actor if r.kind == CALL else None
        if (actor is not None and actor.spec.concurrency is None
                and next(iter(actor.inflight), r.task_id) != r.task_id):
            return ev.SUBMITTED_TO_WORKER  # sent, behind the call the actor runs now
        return ev.RUNNING
    if r.kind == CALL:
        return ev.PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY
    if r.queued is None and r.kind == TASK:
        return ev.PENDING_ARGS_AVAIL
    return ev.PENDING_NODE_ASSIGNMENT


def _classify(error) -> tuple[str, str | None]:
    """Ray's ErrorType name and a message for an error (a worker's pickle of one is loaded
    here, when someone reads the log, never while recording)."""
    if isinstance(error, bytes):
        try:
            error = pickle.loads(error)
        except Exception:  # noqa: BLE001 - an error class the driver cannot import
            return "TASK_EXECUTION_EXCEPTION", None
    for cls in type(error).__mro__:
        if cls.__name__ in _ERROR_TYPES:
            return _ERROR_TYPES[cls.__name__], str(error)
    return "TASK_EXECUTION_EXCEPTION", str(error)


def _worker_event(r: _WorkerRecord) -> ev.WorkerEvent:
    w = r.worker
    return ev.WorkerEvent(w.id, _pid(w), w.actor.id if w.actor else None,
                          w.actor.name if w.actor else None,
                          w.actor is not None and w.actor.spec.concurrency is not None,
                          w.env.hash, r.forked, r.asked,
                          r.connected, r.exited, r.how)


def _env_event(r: _EnvRecord) -> ev.EnvEvent:
    from runtime_env.describe import summary  # here: only a reader pays for it

    steps = list(r.steps)
    ends = [s[3] for s in steps[1:]] + [r.ended]  # a step ends where the next begins
    return ev.EnvEvent(r.hash, summary(r.spec), r.started, r.ended, r.error,
                       tuple(ev.EnvStep(f, s, d, t, end)
                             for (f, s, d, t), end in zip(steps, ends, strict=False)))
