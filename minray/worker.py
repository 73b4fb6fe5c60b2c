"""The worker process: runs tasks and actor methods sent by the node, one at a time.

The same object is the worker's `core`: tasks that call `minray.get`, `.remote()` or `put`
go through the worker's connection to the node, so nested tasks inherit this worker's env.
"""

from __future__ import annotations

import collections
import itertools
import os
import pickle
import select
import socket
import sys
import threading
import time
import traceback

import cloudpickle

from minray import core
from minray import exceptions as exc
from minray.objects import Arg
from minray.protocol import (
    Cancel,
    Channel,
    Done,
    Exit,
    Get,
    Hello,
    KillActor,
    Put,
    Reply,
    Run,
    Submit,
    Wait,
)
from minray.task import ACTOR, Result, TaskSpec
from runtime_env.processes import pid_alive


class WorkerCore(core.Core):
    """The worker's side of the core: every call is a message to the node."""

    is_driver = False

    def __init__(self, channel: Channel, worker_id: str):
        self.channel = channel
        self.worker_id = worker_id
        self.job_id = os.environ["MINRAY_JOB_ID"]
        self._runtime_env_json = os.environ["MINRAY_RUNTIME_ENV"]
        self.task_id: str | None = None
        self.actor_id: str | None = None
        self.actor = None
        self.actor_error: BaseException | None = None
        self.was_restarted = os.environ.get("MINRAY_ACTOR_RESTARTS", "0") != "0"
        self.num_cpus = int(os.environ["MINRAY_NUM_CPUS"])
        self._ids = itertools.count(1)
        self._requests = itertools.count(1)
        self._functions: dict[str, object] = {}
        self._sent_functions: set[str] = set()
        self._inbox: collections.deque[Run | Exit] = collections.deque()

    # ------------------------------------------------------------- the core, for tasks
    @property
    def runtime_env_json(self) -> str:
        return self._runtime_env_json

    def new_id(self) -> str:
        return f"{self.worker_id}.{next(self._ids):x}"

    def submit(self, spec: TaskSpec) -> None:
        if spec.func_id in self._sent_functions:
            spec.func_bytes = None
        elif spec.func_id is not None:
            self._sent_functions.add(spec.func_id)
        self.channel.send(Submit(spec))

    def put(self, object_id: str, data: bytes) -> None:
        self.channel.send(Put(object_id, data))

    def kill_actor(self, actor_id: str, no_restart: bool) -> None:
        self.channel.send(KillActor(actor_id, no_restart))

    def get(self, ids: list[str], timeout: float | None) -> list[Result]:
        req = next(self._requests)
        reply = self._request(Get(req, ids), timeout)
        if reply is None:
            raise exc.GetTimeoutError(f"get timed out after {timeout} s")
        return reply

    def wait(self, ids: list[str], num_returns: int, timeout: float | None) -> set[str]:
        req = next(self._requests)
        reply = self._request(Wait(req, ids, num_returns), timeout)
        if reply is None:  # timed out: the node answers the cancel with what is ready
            reply = self._reply_to(req, None)
        return set(reply)

    def _request(self, request: Get | Wait, timeout: float | None) -> list | None:
        """Ask the node for objects; while this task waits, its CPU is lent to others."""
        self.channel.send(request)
        reply = self._reply_to(request.req_id, timeout)
        if reply is None:
            self.channel.send(Cancel(request.req_id))
        return reply

    def _reply_to(self, req: int, timeout: float | None):
        """Read until the reply to `req`; keep work that arrives meanwhile for later."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            msg = self.channel.recv(left)
            match msg:
                case None:
                    return None
                case Reply(req_id=req_id, payload=payload):
                    if req_id == req:
                        return payload
                    # else: the late answer to a request that timed out
                case _:
                    self._inbox.append(msg)

    # ------------------------------------------------------------- running work
    def serve(self) -> None:
        while True:
            msg = self._inbox.popleft() if self._inbox else self.channel.recv()
            match msg:
                case Exit():
                    return
                case Run():
                    self._run(msg)

    def _run(self, msg: Run) -> None:
        task = msg.task
        self.task_id = task.task_id
        try:
            if msg.func is not None:
                self._functions[task.func_id] = cloudpickle.loads(msg.func)
            call_args, call_kwargs = _load_args(task.args, msg.deps)
            if task.kind == ACTOR:
                self.actor_id = task.task_id
                self.actor = self._functions[task.func_id](*call_args, **call_kwargs)
                results = [(True, b"")]
            else:
                if self.actor_error is not None:
                    raise self.actor_error
                fn = (getattr(self.actor, task.method) if task.method is not None
                      else self._functions[task.func_id])
                value = fn(*call_args, **call_kwargs)
                results = _dump_results(value, len(task.return_ids), task.name)
        except (Exception, GeneratorExit) as e:  # noqa: BLE001 - every error goes back
            error = _task_error(task.name, e)
            if task.kind == ACTOR:
                self.actor_error = exc.ActorDiedError(f"the actor's constructor failed:\n{error}")
            results = [_dump_error(error)] * max(len(task.return_ids), 1)
        finally:
            self.task_id = None
        self.channel.send(Done(task.task_id, results))


def _load_args(args: bytes, deps: dict[str, bytes]) -> tuple[list, dict]:
    if not args:
        return [], {}
    call_args, call_kwargs = pickle.loads(args)
    if deps:
        call_args = [pickle.loads(deps[a.id]) if type(a) is Arg else a for a in call_args]
        call_kwargs = {k: pickle.loads(deps[v.id]) if type(v) is Arg else v
                       for k, v in call_kwargs.items()}
    return call_args, call_kwargs


def _dumps(value) -> bytes:
    """pickle when it can (fast), cloudpickle for what only it can (lambdas, local classes)."""
    try:
        return pickle.dumps(value, protocol=5)
    except Exception:  # noqa: BLE001 - any pickling failure: try the thorough way
        return cloudpickle.dumps(value, protocol=5)


def _dump_results(value, n: int, name: str) -> list[Result]:
    if n == 1:
        return [(True, _dumps(value))]
    values = list(value) if isinstance(value, (tuple, list)) else None
    if values is None or len(values) != n:
        raise ValueError(f"{name} declared num_returns={n} but returned {value!r}")
    return [(True, _dumps(v)) for v in values]


def _task_error(name: str, error: BaseException) -> exc.RayError:
    if isinstance(error, exc.RayActorError):
        return error
    tb = traceback.format_exception(type(error), error, error.__traceback__.tb_next)
    return exc.RayTaskError(name, "".join(tb), error)


def _dump_error(error: BaseException) -> Result:
    """The error as a result. A RayTaskError always pickles (its cause travels apart, see
    RayTaskError.__reduce__); another error that cannot travel keeps its text."""
    try:
        return False, cloudpickle.dumps(error)
    except Exception:  # noqa: BLE001 - any pickling failure
        return False, cloudpickle.dumps(exc.RayError(str(error)))


def _watch_driver(sock: socket.socket, driver_pid: int) -> None:
    """Exit as soon as the driver is gone, even if it was killed with SIGKILL mid-task."""
    hangup = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR
    poller = select.poll()
    poller.register(sock.fileno(), hangup)
    while True:
        if poller.poll(1000) or not pid_alive(driver_pid):
            os._exit(1)


def main() -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.environ["MINRAY_NODE_SOCKET"])
    except OSError:  # the node shut down while this worker was starting
        os._exit(0)
    for path in os.environ.get("MINRAY_DRIVER_SYS_PATH", "").split(os.pathsep):
        if path and path not in sys.path:
            sys.path.append(path)
    channel = Channel(sock)
    worker = WorkerCore(channel, os.environ["MINRAY_WORKER_ID"])
    try:
        channel.send(Hello(worker.worker_id))
    except OSError:  # the node shut down while this worker was connecting
        os._exit(0)
    threading.Thread(target=_watch_driver, args=(sock, int(os.environ["MINRAY_DRIVER_PID"])),
                     daemon=True).start()
    core.set_current(worker)
    try:
        worker.serve()
    except (EOFError, ConnectionError):
        pass
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
