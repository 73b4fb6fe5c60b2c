"""The node: the driver's core, holding the lock and wiring the parts together.

Callers (the driver's threads) change the node's state directly under its one lock; the I/O
thread delivers worker messages and process exits under the same lock. Each part owns its own
state (see docs/design.md); what crosses parts happens here: a task submitted, a message from a
worker, a worker that connected or exited, an env that became ready or failed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import runtime_env as renv
from minray import core, handles
from minray import exceptions as exc
from minray.node import session, shm
from minray.node.actors import Actors
from minray.node.cancel import Cancels
from minray.node.envs import Envs
from minray.node.forkservers import JobServer
from minray.node.ids import new_id, number
from minray.node.io_loop import Connection, IOLoop
from minray.node.launch import BOOT_SCRIPT, launch_vars
from minray.node.placement import PlacementGroups
from minray.node.scheduler import Scheduler
from minray.node.state import EnvState, Request, Worker, WorkerState
from minray.node.store import ObjectStore
from minray.node.workers import WorkerPool, out_of_resources
from minray.protocol import (
    Cancel,
    CancelTask,
    CreateNamed,
    Done,
    Exiting,
    Get,
    Handles,
    Hello,
    KillActor,
    LookupActor,
    Message,
    PlacementCall,
    Put,
    Query,
    Reply,
    Submit,
    Wait,
    Yield,
)
from minray.task import ACTOR, CALL, Result, TaskSpec
from minray.values import FOLDER_VAR, Data
from runtime_env import processes


class Node(core.Core):
    is_driver = True
    worker_id = "driver"

    def __init__(self, *, num_cpus: int, job_env: renv.RuntimeEnv, job_id: str,
                 namespace: str, resource_totals: dict[str, float] | None = None,
                 cache: renv.Cache | None = None, session_dir: Path | None = None,
                 socket_path: str | None = None, job_server: JobServer | None = None):
        self.num_cpus = num_cpus
        self._resource_totals = resource_totals or {}
        self.node_id = uuid.uuid4().hex + os.urandom(12).hex()  # 56 hex digits, as Ray's
        self.job_id = job_id
        self.namespace = namespace
        self.session_dir = session_dir or session.new_session_dir()
        self.setup_log = session.new_log(
            str(self.session_dir / "logs" / f"runtime_env_setup-{job_id}.log"))
        self._socket = socket_path or session.socket_path(self.session_dir)
        self._lock = threading.RLock()
        self._closed = False
        self._first_id = number(new_id())  # every id of this session is at least this
        self.objects = shm.ObjectFolder(self.session_dir.name)
        self.object_dir = str(self.objects.path)
        self.store = ObjectStore(wake=lambda: self.io.wake(), release=self.objects.release)
        # The I/O thread starts with the loop: it waits for the lock until every part exists
        with self._lock:
            self.io = IOLoop(self._lock, self._socket, on_hello=self._on_hello,
                             on_message=self._on_message, on_exit=self._on_exit,
                             on_refused=self._on_refused, on_tick=self._on_tick)
            self.pool = WorkerPool(self.io, self.store, cwd=os.getcwd(),
                                   launch_vars=launch_vars(
                                       self._socket, job_id, num_cpus, MINRAY_NAMESPACE=namespace,
                                       MINRAY_SESSION_DIR=str(self.session_dir),
                                       MINRAY_NODE_ID=self.node_id,
                                       MINRAY_RESOURCES=json.dumps(self._resource_totals),
                                       **{FOLDER_VAR: self.object_dir}),
                                   on_exit=self._on_exit)
            if job_server is not None:  # init's prestarted worker will come from it
                self.pool.forkservers.adopt(job_server)
            self.scheduler = Scheduler(self.pool, self.store, num_cpus, fail_env=self._fail_env,
                                       totals=self._resource_totals)
            self.actors = Actors(self.pool, self.store, self.scheduler, fail_env=self._fail_env)
            self.groups = PlacementGroups(self.store, self.scheduler, self.pool, self.actors,
                                          self._resource_totals)
            self.scheduler.placement = self.groups
            self.store.release_handles = self.actors.unpin_handles
            handles.track(self.actors.handle_events, self.io.wake)
            self.pending: dict[str, TaskSpec] = {}  # tasks waiting for their arguments
            self.cancels = Cancels(self.session_dir, self.pool, self.scheduler, self.actors,
                                   self.store, pending=self.pending,
                                   fail_pending=self._fail_pending)
            self.envs = Envs(self._lock, self.setup_log, cache, on_ready=self._env_ready,
                             on_failed=self._fail_env)
            self.job_env = self.envs.get(job_env, prepare=False)
            if job_env.config()["eager_install"]:  # as Ray: build the job env at init
                self.envs.get(job_env)

    # ------------------------------------------------------------------ the core, for the API
    @property
    def runtime_env_json(self) -> str:
        return self.job_env.spec.serialize()

    def new_id(self) -> str:
        return new_id()

    def submit(self, spec: TaskSpec) -> None:
        with self._lock:
            self._submit(spec, self.job_env)

    def submit_named(self, spec: TaskSpec) -> str:
        with self._lock:
            return self._submit_named(spec, self.job_env, None)

    def get_actor(self, name: str, namespace: str):
        with self._lock:
            return self._lookup(name, namespace)

    def put(self, object_id: str, data: Data, for_task: bool = False) -> None:
        with self._lock:
            self.store.store(object_id, (True, data))

    def get(self, ids: list[str], timeout: float | None) -> list[Result]:
        done = threading.Event()
        with self._lock:
            self._check_session(ids)
            cancel = self.store.when_all_ready(ids, done.set)
        if not done.wait(timeout):
            with self._lock:
                cancel()
                if not done.is_set():
                    raise exc.GetTimeoutError(
                        f"get timed out after {timeout} s: "
                        f"{sum(i not in self.store for i in ids)} of {len(ids)} objects not "
                        f"ready")
        return [self.store[i] for i in ids]

    def wait(self, ids: list[str], num_returns: int, timeout: float | None) -> set[str]:
        done = threading.Event()
        with self._lock:
            self._check_session(ids)
            cancel = self.store.when_ready(ids, num_returns, done.set)
        done.wait(timeout)
        with self._lock:
            cancel()
            return {i for i in ids if i in self.store}

    def cancel(self, object_id: str, force: bool, recursive: bool) -> None:
        with self._lock:
            self.cancels.cancel(object_id, force=force, recursive=recursive)
            self._schedule()

    def watch(self, object_id: str, on_result: Callable[[Result], None]) -> Callable[[], None]:
        with self._lock:
            self._check_session([object_id])
            cancel = self.store.when_all_ready([object_id],
                                               lambda: on_result(self.store[object_id]))

        def stop() -> None:
            with self._lock:
                cancel()

        return stop

    def kill_actor(self, actor_id: str, no_restart: bool) -> None:
        with self._lock:
            self.actors.kill(actor_id, no_restart)
            self._schedule()

    def placement_call(self, request):
        with self._lock:
            answer = self.groups.handle(request)
            self._schedule()  # a group created may be placed now; one removed frees CPUs
            return answer

    @property
    def resource_totals(self) -> dict[str, float]:
        return self._resource_totals

    def resources(self) -> dict:
        """What the node has and what is free now, as Ray names them."""
        with self._lock:
            free = self.scheduler.extra.available()
            return {"total": {"CPU": float(self.num_cpus), **self._resource_totals},
                    "available": {"CPU": self.num_cpus - self.scheduler.cpus.used, **free}}

    def _check_session(self, ids: list[str]) -> None:
        """A ref from a session that was shut down will never have a value: say so now."""
        for oid in ids:
            if oid not in self.store and number(oid) < self._first_id:
                raise exc.ObjectLostError(
                    f"ObjectRef({oid}) belongs to an earlier minray session, which was shut "
                    f"down; its value is gone (objects do not outlive shutdown())")

    # ------------------------------------------------------------------ submission
    def _submit_named(self, spec: TaskSpec, parent: EnvState, owner: Worker | None) -> str:
        """Create a named actor unless the name is taken: then the holder's id, for
        get_if_exists, or ValueError."""
        if spec.func_bytes is not None:  # the sender counts it as sent, whatever happens
            self.pool.functions.setdefault(spec.func_id, spec.func_bytes)
        creation = spec.actor
        existing = self.actors.named(creation.namespace, creation.name)
        if existing is None:
            self._submit(spec, parent, owner)
            return spec.actor_id
        if creation.get_if_exists:
            if owner is not None:  # it will hold a handle: count it now, as for a lookup
                existing.holders.add(owner.id)
            return existing.id
        raise ValueError(f"an actor named {creation.name!r} already exists in namespace "
                         f"{creation.namespace!r}; pass get_if_exists=True to get it, or "
                         f"minray.get_actor({creation.name!r})")

    def _lookup(self, name: str, namespace: str, worker: Worker | None = None):
        """A named actor's id and class; a worker that asks will hold a handle to it from
        now on (it reports when it stops)."""
        actor = self.actors.named(namespace, name)
        if actor is None:
            return None
        if worker is not None:
            actor.holders.add(worker.id)
        return actor.id, actor.spec.actor.class_meta

    def _submit(self, spec: TaskSpec, parent: EnvState, owner: Worker | None = None) -> None:
        if self._closed:
            raise exc.RayError("minray has been shut down; call minray.init() again")
        problem = None if spec.placement is None else self.groups.problem(spec)
        if problem is not None and (owner is None or spec.kind != ACTOR):
            raise ValueError(problem)  # at .remote() in the driver; a worker's get raises it
        self._check_session(spec.deps)
        if spec.func_bytes is not None:
            self.pool.functions.setdefault(spec.func_id, spec.func_bytes)
            spec.func_bytes = None
        self.store.collect()
        self.store.pin(spec.deps)  # until the task finishes: a retry needs its arguments again
        if spec.kind == CALL:
            self.actors.pin_handles(spec.handles)
            self.actors.call(spec)
            return
        env = self.envs.for_task(parent, spec.runtime_env)
        if spec.kind == ACTOR:
            self.actors.create(spec, env, owner and owner.id)
            if problem is not None:  # a worker's actor: its calls say why
                self.actors.kill(spec.actor_id, no_restart=True, why=problem)
            elif self.groups.removed_error(spec) is not None:
                self.groups.end_actor(spec, "its placement group was removed")
            return
        self.actors.pin_handles(spec.handles)
        if owner is not None and owner.task is not None:
            self.cancels.started_by(owner.task, spec)
        if env.error is not None:
            self.store.fail(spec, env.error)
        elif not spec.deps or all(d in self.store for d in spec.deps):
            self._enqueue(spec, env)
        else:  # until its arguments exist; cancel() finds it here
            self.pending[spec.task_id] = spec
            self.store.when_all_ready(spec.deps, lambda: self._deps_ready(spec, env))

    def _deps_ready(self, spec: TaskSpec, env: EnvState) -> None:
        if self.pending.pop(spec.task_id, None) is not None:  # else: it was cancelled
            self._enqueue(spec, env)

    def _fail_pending(self, spec: TaskSpec, error: BaseException) -> None:
        self.store.fail(spec, error)

    def _schedule(self) -> None:
        """Start what waits for resources: actors first (they hold theirs for life), then
        queued tasks."""
        if self.actors.waiting:
            self.actors.start_waiting()
        self.scheduler.schedule()

    def _enqueue(self, spec: TaskSpec, env: EnvState) -> None:
        failed = self.store.failed_dep(spec)
        if failed is not None:
            self.store.complete(spec, [failed] * len(spec.return_ids))
            return
        self.scheduler.enqueue(spec, env)
        self._schedule()

    # ------------------------------------------------------------------ envs
    def _env_ready(self, env: EnvState) -> None:
        self.actors.env_ready(env)
        if env is self.job_env and not self.pool.workers:
            try:  # prestart one, as Ray does: the first task is quick
                self.pool.start(env)
            except exc.RuntimeEnvSetupError as e:
                self._fail_env(env, e)
                return
        self._schedule()

    def _fail_env(self, env: EnvState, error: exc.RuntimeEnvSetupError) -> None:
        """The env cannot start workers: fail its queued tasks and unstarted actors, and
        remember for a while."""
        self.envs.failed(env, error)
        for task in self.scheduler.drop(env):
            self.store.fail(task, env.error)
        self.actors.env_failed(env)

    # ------------------------------------------------------------------ from workers
    def _on_hello(self, conn: Connection, hello: Hello) -> Worker | None:
        worker = self.pool.connected(hello.worker_id)
        if worker is None:
            return None
        worker.conn = conn
        if hello.setup_error is not None:  # its worker_process_setup_hook raised
            self.pool.retire(worker)
            self._fail_env(worker.env, exc.RuntimeEnvSetupError(
                f"runtime_env field 'worker_process_setup_hook' failed in a new worker:\n"
                f"{hello.setup_error}"))
            return worker
        worker.env.connected = True
        if worker.actor is not None:
            self.actors.connected(worker)
        else:
            worker.state = WorkerState.IDLE
            self._schedule()
        return worker

    def _on_message(self, worker: Worker, msg: Message) -> None:
        match msg:
            case Done(task_id=task_id, results=results):
                self._on_done(worker, task_id, results)
            case Submit(task=task):
                self.store.keep(task.return_ids)  # the worker holds refs the node cannot count
                try:
                    self._submit(task, worker.env, worker)
                except Exception as e:  # noqa: BLE001 - the submitter learns it from get()
                    self.store.fail(task, exc.RayError(f"cannot submit: {e}"))
            case CreateNamed(task=task, req_id=req_id):
                try:
                    answer = (self._submit_named(task, worker.env, worker), None)
                except Exception as e:  # noqa: BLE001 - the creator raises it
                    answer = (None, str(e))
                self.pool.send(worker, Reply(req_id, answer))
            case LookupActor(req_id=req_id, name=name, namespace=namespace):
                self.pool.send(worker, Reply(req_id, self._lookup(name, namespace, worker)))
            case Handles(gained=gained, lost=lost, escaped=escaped):
                self.actors.handles_changed(worker, gained, lost, escaped)
            case Query(req_id=req_id, what="resources"):
                self.pool.send(worker, Reply(req_id, self.resources()))
            case Exiting(reason=reason):
                if worker.actor is not None:
                    self.actors.exiting(worker, reason)
            case Put(object_id=object_id, data=data, for_task=for_task):
                self.store.store(object_id, (True, data))
                if not for_task:
                    self.store.keep([object_id])
            case Yield(object_id=object_id, result=result):
                self.store.store(object_id, result)
            case Get() | Wait():
                self._on_request(worker, msg)
            case Cancel(req_id=req_id):
                self._on_cancel(worker, req_id)
            case KillActor(actor_id=actor_id, no_restart=no_restart):
                self.actors.kill(actor_id, no_restart)
                self._schedule()
            case PlacementCall(req_id=req_id, request=request):
                try:
                    answer = (self.groups.handle(request), None)
                except Exception as e:  # noqa: BLE001 - the caller raises it
                    answer = (None, e)
                self.pool.send(worker, Reply(req_id, answer))
                self._schedule()
            case CancelTask(object_id=object_id, force=force, recursive=recursive):
                try:
                    self.cancels.cancel(object_id, force=force, recursive=recursive)
                except ValueError:
                    pass  # force on an actor call: as if not asked (the driver's call raises)
                self._schedule()

    def _on_done(self, worker: Worker, task_id: str, results: list[Result]) -> None:
        if self.cancels.cancelled or self.cancels.children:
            results = self.cancels.finished(task_id, results)
        if worker.actor is not None:
            self.actors.done(worker, task_id, results)
            return
        self.store.complete(self.scheduler.finished(worker), results)
        self._schedule()

    def _on_request(self, worker: Worker, msg: Get | Wait) -> None:
        """A task blocks in get/wait: lend out its CPUs until the answer is sent."""
        wait = isinstance(msg, Wait)
        request = Request(msg.ids, wait, cancel=lambda: None)
        worker.requests[msg.req_id] = request
        self.scheduler.blocked(worker)
        need = msg.num_returns if wait else len(set(msg.ids))
        request.cancel = self.store.when_ready(msg.ids, need,
                                               lambda: self._answer(worker, msg.req_id))
        self._schedule()

    def _answer(self, worker: Worker, req_id: int) -> None:
        request = worker.requests.pop(req_id, None)
        if request is None or worker.state is WorkerState.DEAD:
            return
        if request.wait:
            payload = [i for i in request.ids if i in self.store]
        else:
            payload = [self.store[i] for i in request.ids]
        self.scheduler.unblocked(worker)
        self.pool.send(worker, Reply(req_id, payload))

    def _on_cancel(self, worker: Worker, req_id: int) -> None:
        """The task's get/wait timed out: answer a wait with what is ready now."""
        request = worker.requests.pop(req_id, None)
        if request is None:
            return
        request.cancel()
        self.scheduler.unblocked(worker)
        if request.wait:
            self.pool.send(worker, Reply(req_id, [i for i in request.ids if i in self.store]))

    # ------------------------------------------------------------------ worker exits
    def _on_exit(self, worker: Worker) -> None:
        """A worker process ended: retry or fail what it was running."""
        if worker.state is WorkerState.DEAD:
            return
        was = worker.state
        how = self.pool.exited(worker)
        self.actors.worker_gone(worker, crashed=was is not WorkerState.LEAVING)
        if was is WorkerState.STARTING:
            self._start_failed(worker, how)
        elif worker.actor is not None:
            self.actors.worker_exited(worker, how)
        elif worker.task is not None:
            task = self.scheduler.finished(worker)
            cancelled = self.cancels.crashed(task)
            removed = self.groups.removed_error(task)  # its group's removal killed it
            if cancelled is not None:
                self.store.fail(task, cancelled)
            elif removed is not None:
                self.store.fail(task, removed)
            elif task.max_retries < 0 or task.attempts < task.max_retries:
                task.attempts += 1
                self.scheduler.enqueue(task, worker.env, first=True)
            else:
                self.store.fail(task, exc.WorkerCrashedError(
                    f"the worker running {task.name} died ({how}); retried {task.attempts} "
                    f"time(s) (max_retries={task.max_retries})"))
        self._schedule()

    def _start_failed(self, worker: Worker, how: str) -> None:
        """A worker ended before it connected. An env that never connected a worker is broken,
        unless the node itself refused the connection; otherwise only this worker is lost."""
        env = worker.env
        reason = worker.start_error or (
            f"the worker process exited ({how}) before connecting to the node; command: "
            f"{' '.join(env.launch.py_executable)} {BOOT_SCRIPT}; its output is above in the "
            f"driver's stderr")
        env_broken = not (env.connected or worker.refused)
        if worker.actor is not None and not env_broken:
            self.actors.worker_exited(worker, reason)
        else:
            self.scheduler.start_failed(env, reason, env_broken=env_broken)

    def _on_refused(self, wid: str, error: OSError) -> None:
        worker = self.pool.workers.get(wid)
        if worker is not None:
            worker.start_error = out_of_resources(error) or str(error)
            worker.refused = True

    def _on_tick(self) -> float | None:
        """After each turn of the I/O loop: end actors whose last handle the driver dropped,
        end workers that never connected, and without pidfds look for exits; free the values
        whose last ref died (a large one's ref wakes the loop). Returns how long the loop may
        sleep."""
        self.actors.collect_handles()
        self.store.collect()
        wait = _soonest(self.pool.end_overdue(), self.objects.expire())
        if self.io.pidfds:
            return wait
        for worker in self.pool.poll_exits():
            self._on_exit(worker)
        return min(wait or 0.2, 0.2)

    # ------------------------------------------------------------------ shutdown
    def finish_submitted(self) -> None:
        """Block until every submitted task and actor call has ended; after a second, say on
        stderr what is being waited for."""
        started, told = time.monotonic(), False
        while (left := self._unfinished()) and not self._closed:
            if not told and time.monotonic() - started > 1:
                print(f"minray: waiting for {left} unfinished task(s) before exiting "
                      f"(Ctrl-C to stop them)", file=sys.stderr, flush=True)
                told = True
            time.sleep(0.02)

    def drop_unfinished_like_ray(self) -> None:
        """Strict mode at exit: do what Ray does (drop unfinished tasks), and say so."""
        from minray.strict import exit_note

        left = self._unfinished()
        if left:
            print(exit_note(left), file=sys.stderr, flush=True)

    def _unfinished(self) -> int:
        with self._lock:
            return (len(self.pending) + len(self.scheduler.queued())
                    + sum(1 for w in self.pool if w.task is not None)
                    + len(self.actors.unfinished_calls()))

    def shutdown(self) -> None:
        """Stop every worker and everything they started; leave no process behind.

        Connected workers exit by themselves once their socket closes (flushing their output);
        one that has not connected yet cannot hear that and is killed at once. Fork servers
        reap their children as they end, then exit. Then whatever the tasks started is killed,
        found by tree and, for processes that detached, by the node's socket path that every
        worker's environment carries (a forked worker's /proc environ is its server's, which
        carries it too)."""
        with self._lock:
            if self._closed:
                return
            self._closed = self.envs.closed = True
            handles.track(None)
            workers = list(self.pool)
            connected = [w for w in workers if w.conn is not None]
            descendants = self.pool.all_processes()
            for worker in connected:
                self.io.close(worker.conn)  # the worker sees EOF and exits
            self.io.stop()
        self.io.join_and_close(2)
        self.pool.forkservers.stop()  # they fork nothing more and reap what the pool ends
        roots = {w.proc.pid for w in connected}
        processes.end([p for p in descendants if p.pid not in roots], wait=0)
        processes.end([p for p in descendants if p.pid in roots], grace=1.0, wait=3)
        self.pool.forkservers.close(wait=3)  # gone: the sweep below sees every last fork
        processes.end(processes.marked("MINRAY_NODE_SOCKET", self._socket), wait=3)
        for worker in workers:
            worker.proc.poll()
        self.store.close()
        self.objects.close()
        session.remove_socket(self._socket, self.session_dir)


def _soonest(*waits: float | None) -> float | None:
    return min((w for w in waits if w is not None), default=None)
