"""What the node's event log hands out: a snapshot of the session's tasks, workers, envs and
blocked gets, as plain named tuples.

The node records (minray.node.task_log) and the readers format (minray.chrome_trace for the
timeline, minray.util.state_tasks for the state API); this module is what both sides share,
so a worker can receive a snapshot from the node without importing the node. Times are
seconds since the epoch (`time.time()`); None means "not yet".
"""

from __future__ import annotations

from minray.named_tuple import Record

# Ray's TaskStatus names, as its state API reports them
PENDING_ARGS_AVAIL = "PENDING_ARGS_AVAIL"
PENDING_NODE_ASSIGNMENT = "PENDING_NODE_ASSIGNMENT"
PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY = "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY"
SUBMITTED_TO_WORKER = "SUBMITTED_TO_WORKER"
RUNNING = "RUNNING"
RUNNING_IN_RAY_GET = "RUNNING_IN_RAY_GET"
RUNNING_IN_RAY_WAIT = "RUNNING_IN_RAY_WAIT"
FINISHED = "FINISHED"
FAILED = "FAILED"

# Ray's TaskType names
NORMAL_TASK = "NORMAL_TASK"
ACTOR_CREATION_TASK = "ACTOR_CREATION_TASK"
ACTOR_TASK = "ACTOR_TASK"


class Attempt(Record):
    """An earlier run of a task whose worker died (it was retried): from start to that
    worker's exit."""

    started: float
    ended: float | None
    worker_id: str
    pid: int | None


class TaskEvent(Record):
    """One task, actor creation or actor call and where its life stands."""

    task_id: str
    name: str
    type: str  # NORMAL_TASK, ACTOR_CREATION_TASK, ACTOR_TASK
    state: str  # a TaskStatus name
    actor_id: str | None
    parent_task_id: str | None
    attempt_number: int
    submitted: float  # .remote() reached the node
    waited_for_args: bool  # some argument did not exist yet when it was submitted
    queued: float | None  # its arguments existed: it waited for a CPU / worker / its actor
    started: float | None  # sent to its worker
    ended: float | None
    worker_id: str | None
    pid: int | None
    env_hash: str | None
    error_type: str | None  # Ray's ErrorType name, e.g. TASK_EXECUTION_EXCEPTION
    error_message: str | None
    earlier: tuple[Attempt, ...]  # attempts whose worker died before this one


class WorkerEvent(Record):
    """A worker process: asked for, connected (said hello), exited."""

    worker_id: str
    pid: int | None
    actor_id: str | None
    actor_name: str | None
    concurrent: bool  # an actor that may run several calls at once (async, threaded)
    env_hash: str
    forked: bool  # forked by a fork server (else exec'd)
    asked: float
    connected: float | None
    exited: float | None
    how: str | None  # how it exited, in words


class EnvStep(Record):
    """A step of an env's setup (download, unpack, install, venv, ...) for one field; it ends
    where the next step begins, or with the setup."""

    field: str
    step: str
    detail: str
    started: float
    ended: float | None


class EnvEvent(Record):
    """The preparation of one runtime env (cached ones take no step)."""

    env_hash: str
    summary: str
    started: float
    ended: float | None
    error: str | None
    steps: tuple[EnvStep, ...]


class BlockEvent(Record):
    """A get or wait that blocked: in the driver (worker_id "driver") or in a task."""

    kind: str  # "get" or "wait"
    worker_id: str
    pid: int | None
    thread: int  # the driver's thread ident; 0 in a worker
    task_id: str | None  # the task that blocked (in a worker)
    objects: int
    started: float
    ended: float | None


class Snapshot(Record):
    """The whole log at one moment."""

    node_id: str
    job_id: str
    driver_pid: int
    taken: float
    tasks: list[TaskEvent]
    workers: list[WorkerEvent]
    envs: list[EnvEvent]
    blocks: list[BlockEvent]
    dropped: int  # finished tasks forgotten because the log is bounded
