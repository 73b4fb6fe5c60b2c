"""The worker process: runs tasks and actor methods sent by the node, one at a time.

The same object is the worker's `core`: tasks that call `minray.get`, `.remote()` or `put`
go through the worker's connection to the node, so nested tasks inherit this worker's env.
An async or threaded actor runs its calls concurrently (minray/actor_concurrency.py), and then
one reader thread routes the node's replies (minray/replies.py); so does an `await ref`.
"""

from __future__ import annotations

import _pickle as pickle  # the C module: a worker starts ~1 ms sooner without pickle.py
import atexit
import collections
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable

from minray import core, handles, values
from minray import exceptions as exc
from minray.cancel_marks import MarkReader
from minray.protocol import (
    Cancel,
    CancelCall,
    CancelTask,
    Channel,
    CreateNamed,
    Done,
    Exit,
    Exiting,
    Get,
    Handles,
    KillActor,
    LookupActor,
    Message,
    PlacementCall,
    Put,
    Query,
    Reply,
    Run,
    StateQuery,
    Submit,
    Wait,
)
from minray.results import dump_error, dump_results, load_args, task_error
from minray.streaming import stream
from minray.task import ACTOR, CALL, Concurrency, Result, TaskSpec

TERMINATE = "__ray_terminate__"


class WorkerCore(core.Core):
    """The worker's side of the core: every call is a message to the node."""

    is_driver = False

    def __init__(self, channel: Channel, worker_id: str):
        self.channel = channel
        self.worker_id = worker_id
        self.job_id = os.environ["MINRAY_JOB_ID"]
        self.namespace = os.environ["MINRAY_NAMESPACE"]
        self.node_id = os.environ["MINRAY_NODE_ID"]
        self._totals: dict[str, float] | None = None
        self._cuda_default = os.environ.get("CUDA_VISIBLE_DEVICES")
        self._cancel_marks = MarkReader(os.environ["MINRAY_SESSION_DIR"])
        self.gpu_ids = []
        self._runtime_env_json = os.environ["MINRAY_RUNTIME_ENV"]
        self._task_id: str | None = None
        self.actor_id: str | None = None
        self.actor = None
        self.actor_error: BaseException | None = None
        self.was_restarted = os.environ.get("MINRAY_ACTOR_RESTARTS", "0") != "0"
        self.num_cpus = int(os.environ["MINRAY_NUM_CPUS"])
        self.object_dir = os.environ.get(values.FOLDER_VAR)
        self._ids = itertools.count(1)
        self._requests = itertools.count(1)
        self._functions: dict[str, object] = {}
        self._sent_functions: set[str] = set()
        self._inbox: collections.deque[Run | Exit] = collections.deque()
        self.handles = handles.Reporter()  # which actors' handles this process holds
        self._send_lock = threading.Lock()  # calls on several threads send
        self._router_lock = threading.Lock()
        self._router = None  # minray.replies.Router, once calls wait for objects concurrently
        self._work = None  # then: the Run and Exit messages the reader passes to the main thread
        self._calls = None  # minray.actor_concurrency.ConcurrentCalls of a concurrent actor

    @property
    def task_id(self) -> str | None:
        """The task or call that the asking thread (or asyncio task) runs."""
        calls = self._calls
        return (calls is not None and calls.current_task_id()) or self._task_id

    def send(self, message: Message) -> None:
        """Send a message, first telling the node of handles gained or lost since the last
        one, so that it never hears of a task's end before the handles its arguments held."""
        with self._send_lock:
            self._send_locked(message)

    def _send_locked(self, message: Message | None) -> None:
        """Send (under the send lock) the handles that changed first, then `message`."""
        if self.handles.changed:
            report = self.handles.report()
            if report is not None:
                self.channel.send(Handles(*report))
        if message is not None:
            self.channel.send(message)

    @staticmethod
    def leave() -> None:
        """End the worker process now, its output flushed (as far as it still can be)."""
        for out in (sys.stdout, sys.stderr):
            try:
                out.flush()
            except (OSError, ValueError):  # the reader is gone, or a task closed the stream
                pass
        os._exit(0)

    # ------------------------------------------------------------- the core, for tasks
    @property
    def runtime_env_json(self) -> str:
        return self._runtime_env_json

    def new_id(self) -> str:
        return f"{self.worker_id}.{next(self._ids):x}"

    def submit(self, spec: TaskSpec) -> None:
        if spec.kind == ACTOR:  # the node counts its creator as holding a handle
            self.handles.reported.add(spec.actor_id)
        with self._send_lock:  # the first Submit of a function, with its bytes, goes first
            if spec.func_id in self._sent_functions:
                spec.func_bytes = None
            elif spec.func_id is not None:
                self._sent_functions.add(spec.func_id)
            self._send_locked(Submit(spec))

    def submit_named(self, spec: TaskSpec) -> str:
        """The function's bytes always go along (and do not count as sent): another thread's
        Submit of the same function could overtake this request."""
        self.handles.reported.add(spec.actor_id)
        actor_id, error = self._ask(CreateNamed(spec, next(self._requests)))
        if error is not None:
            raise ValueError(error)
        self.handles.reported.add(actor_id)
        return actor_id

    @property
    def resource_totals(self) -> dict[str, float]:
        if self._totals is None:
            import json  # on use: few tasks ask

            self._totals = json.loads(os.environ["MINRAY_RESOURCES"])
        return self._totals

    def resources(self) -> dict:
        return self._ask(Query(next(self._requests), "resources"))

    def state_query(self, query: StateQuery):
        return self._ask(query._replace(req_id=next(self._requests)))

    def get_actor(self, name: str, namespace: str):
        found = self._ask(LookupActor(next(self._requests), name, namespace))
        if found is not None:  # the node counts us as holding it from now on
            self.handles.reported.add(found[0])
        return found

    def _ask(self, request: Message):
        """Send a request the node answers at once; its answer."""
        if self._router is not None:
            return self._router.request(request, None)
        self.send(request)
        return self._reply_to(request.req_id, None)

    def placement_call(self, request):
        answer, error = self._ask(PlacementCall(next(self._requests), request))
        if error is not None:
            raise error
        return answer

    def put(self, object_id: str, data: values.Data, for_task: bool = False) -> None:
        self.send(Put(object_id, data, for_task))

    def kill_actor(self, actor_id: str, no_restart: bool) -> None:
        self.send(KillActor(actor_id, no_restart))

    def cancel(self, object_id: str, force: bool, recursive: bool) -> None:
        self.send(CancelTask(object_id, force, recursive))

    def is_cancelled(self) -> bool:
        """The running task or call was cancelled (the node left its mark)."""
        task_id = self.task_id
        return task_id is not None and self._cancel_marks.is_marked(task_id)

    def interrupt(self, signum, frame) -> None:
        """SIGINT: the node cancels the running task. Raise only if it is marked: the task
        this worker runs now may be the next one already."""
        if self.actor_id is None and self.is_cancelled():
            raise KeyboardInterrupt

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

    def watch(self, object_id: str, on_result: Callable[[Result], None]) -> Callable[[], None]:
        router = self._use_router()
        return router.watch(Get(next(self._requests), [object_id]),
                            lambda results: on_result(results[0]))

    def _request(self, request: Get | Wait, timeout: float | None) -> list | None:
        """Ask the node for objects; while this task waits, its CPU is lent to others."""
        if self._router is not None:
            return self._router.request(request, timeout)
        self.send(request)
        try:
            reply = self._reply_to(request.req_id, timeout)
        except KeyboardInterrupt:  # cancelled while it waited: the node forgets the request
            self.send(Cancel(request.req_id))
            raise
        if reply is None:
            self.send(Cancel(request.req_id))
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
            if self.handles.changed:  # a task's handles died with its frame
                with self._send_lock:
                    self._send_locked(None)
            msg = self._inbox.popleft() if self._inbox else self.channel.recv()
            match msg:
                case Exit():
                    return
                case Run():
                    self._run(msg)
                    if self._calls is not None or self._router is not None:
                        return self._serve_routed()

    def _serve_routed(self) -> None:
        """Once one reader thread reads the socket: run what it passes on, until Exit."""
        self._use_router()
        while True:
            msg = self._work.get()
            if type(msg) is Exit:
                return
            if type(msg) is CancelCall:
                if self._calls is not None:
                    self._calls.cancel(msg.task_id)
            elif self._calls is not None:  # kept before the actor existed
                self._calls.submit(msg)
            else:
                self._run(msg)

    def _use_router(self):
        """Hand reading to one thread (minray/replies.py): from now on several calls may wait
        for objects at once. Messages kept meanwhile go first, in order."""
        with self._router_lock:
            if self._router is None:
                import queue

                from minray.replies import Router

                self._work = queue.SimpleQueue()
                self._router = Router(self.channel, self.send, self._on_work)
                while self._inbox:
                    self._on_work(self._inbox.popleft())
                self._router.start()
        return self._router

    def _on_work(self, msg: Run | Exit) -> None:
        if self._calls is not None and type(msg) is Run:
            self._calls.submit(msg)
        else:
            self._work.put(msg)

    def _construct(self, cls: type, args: list, kwargs: dict, concurrency: Concurrency | None):
        if concurrency is None:
            return cls(*args, **kwargs)
        from minray.actor_concurrency import ConcurrentCalls

        calls = ConcurrentCalls(self, concurrency)
        instance = calls.construct(cls, args, kwargs)
        self._calls = calls  # only a created actor runs calls concurrently
        return instance

    def _run(self, msg: Run) -> None:
        task = msg.task
        self._task_id = task.task_id
        if task.kind != CALL:  # an actor's calls run on what its creation holds
            self.resource_spec = task
            if msg.gpu_ids or self.gpu_ids:
                self._use_gpus(msg.gpu_ids or [])
        try:
            results = self._call(task, msg)
        except KeyboardInterrupt:  # cancel(): the node reports TaskCancelledError
            results = [dump_error(exc.TaskCancelledError(f"task {task.name} was cancelled"))
                       ] * len(task.return_ids)
        except exc.ActorExit as e:
            if self.actor_id is None:  # exit_actor() checks this; a task can raise it anyway
                results = [dump_error(task_error(task.name, e))] * len(task.return_ids)
            else:
                self.end_actor(task, str(e))
        except (Exception, GeneratorExit) as e:  # noqa: BLE001 - every error goes back
            error = task_error(task.name, e)
            if task.kind == ACTOR:
                self.actor_error = exc.ActorDiedError(f"the actor's constructor failed:\n{error}")
            results = [dump_error(error)] * max(len(task.return_ids), 1)
        finally:
            self._task_id = None
        self.send(Done(task.task_id, results))

    def _call(self, task: TaskSpec, msg: Run) -> list[Result]:
        """Run the task; its results. Its arguments and value are gone when this returns,
        before Done is sent: a segment mapped for them is then free to be reused."""
        if msg.func is not None:  # a script's functions load without cloudpickle (functions.py)
            self._functions[task.func_id] = pickle.loads(msg.func)
        call_args, call_kwargs = load_args(task.args, msg.deps)
        if task.kind == ACTOR:
            self.actor_id = task.task_id
            self.actor = self._construct(self._functions[task.func_id], call_args,
                                         call_kwargs, task.concurrency)
            return [(True, b"")]
        if self.actor_error is not None:
            raise self.actor_error
        if task.method == TERMINATE:
            raise exc.ActorExit(f"its {TERMINATE} was called")
        if task.kind == CALL and self.is_cancelled():  # before it started
            raise exc.TaskCancelledError(f"task {task.name} was cancelled")
        fn = (getattr(self.actor, task.method) if task.method is not None
              else self._functions[task.func_id])
        value = fn(*call_args, **call_kwargs)
        if task.generator is not None:
            return stream(task, value, self.send)
        return dump_results(value, len(task.return_ids), task.name)

    def _use_gpus(self, gpu_ids: list[int]) -> None:
        """Show the task only its own GPUs, as Ray does; a task without restores the
        worker's own setting."""
        self.gpu_ids = gpu_ids
        if gpu_ids:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpu_ids))
        elif self._cuda_default is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = self._cuda_default

    def end_actor(self, task: TaskSpec, reason: str) -> None:
        """End this actor on purpose: its shutdown hook and atexit handlers run, the call
        that ended it and every later one get ActorDiedError, and it is not restarted."""
        name = task.name.rpartition(".")[0] or task.name
        error = exc.ActorDiedError(f"the actor {name} exited on purpose: {reason}")
        self.send(Exiting(str(error)))
        shutdown = getattr(self.actor, "__ray_shutdown__", None)
        try:
            if shutdown is not None:
                shutdown()
        except Exception:  # noqa: BLE001 - the actor ends anyway; say why it did not cleanly
            import traceback

            traceback.print_exc()
        self.send(Done(task.task_id, [dump_error(error)] * max(len(task.return_ids), 1)))
        atexit._run_exitfuncs()
        self.leave()
