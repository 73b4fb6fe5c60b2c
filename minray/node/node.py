"""The node: the driver's core, holding the lock and wiring the parts together.

Callers (the driver's threads) change the node's state directly under its one lock; the I/O
thread delivers worker messages and process exits under the same lock. Each part owns its own
state (see docs/design.md); what crosses parts happens here: a task submitted, a message from a
worker, a worker that connected or exited, an env that became ready or failed.
"""

from __future__ import annotations

import _thread
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
from minray.node.ids import new_id, number
from minray.node.io_loop import IOLoop
from minray.node.launch import JobServer, launch_vars
from minray.node.placement import PlacementGroups
from minray.node.scheduler import Scheduler
from minray.node.state import EnvState, Worker
from minray.node.store import ObjectStore
from minray.node.task_log import TaskLog
from minray.node.worker_lives import WorkerLives
from minray.node.worker_messages import WorkerMessages
from minray.node.workers import WorkerPool
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
        self.started_at = time.time()
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
        self.log = TaskLog()  # what ran where and when: minray.timeline(), list_tasks()
        self.store.ended = self.log.ended
        self._messages = WorkerMessages(self)
        self._lives = WorkerLives(self)
        # The I/O thread starts with the loop: it waits for the lock until every part exists
        with self._lock:
            self.io = IOLoop(self._lock, self._socket, on_hello=self._lives.connected,
                             on_message=self._messages.handle, on_exit=self._lives.exited,
                             on_refused=self._lives.refused, on_tick=self._on_tick,
                             on_observed=self._observed)
            self.pool = WorkerPool(self.io, self.store, cwd=os.getcwd(),
                                   launch_vars=launch_vars(
                                       self._socket, job_id, num_cpus, MINRAY_NAMESPACE=namespace,
                                       MINRAY_SESSION_DIR=str(self.session_dir),
                                       MINRAY_NODE_ID=self.node_id,
                                       MINRAY_RESOURCES=json.dumps(self._resource_totals),
                                       **{FOLDER_VAR: self.object_dir}),
                                   on_exit=self._lives.exited, log=self.log)
            if job_server is not None:  # init's prestarted worker will come from it
                self.pool.forkservers.adopt(job_server)
            self.scheduler = Scheduler(self.pool, self.store, num_cpus, fail_env=self.fail_env,
                                       totals=self._resource_totals)
            self.actors = Actors(self.pool, self.store, self.scheduler, fail_env=self.fail_env)
            self.groups = PlacementGroups(self.store, self.scheduler, self.pool, self.actors,
                                          self._resource_totals)
            self.scheduler.placement = self.groups
            self.store.release_handles = self.actors.unpin_handles
            handles.track(self.actors.handle_events, self.io.wake)
            self.pending: dict[str, TaskSpec] = {}  # tasks waiting for their arguments
            self.cancels = Cancels(self.session_dir, self.pool, self.scheduler, self.actors,
                                   self.store, pending=self.pending,
                                   fail_pending=self.store.fail)
            self.envs = Envs(self._lock, self.setup_log, cache, on_ready=self._env_ready,
                             on_failed=self.fail_env, log=self.log)
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
            self.submit_from(spec, self.job_env)

    def submit_named(self, spec: TaskSpec) -> str:
        with self._lock:
            return self.submit_named_from(spec, self.job_env, None)

    def get_actor(self, name: str, namespace: str):
        with self._lock:
            return self.lookup(name, namespace)

    def put(self, object_id: str, data: Data, for_task: bool = False) -> None:
        with self._lock:
            self.store.store(object_id, (True, data))

    def get(self, ids: list[str], timeout: float | None) -> list[Result]:
        waiting = _thread.allocate_lock()  # held until the store has them all: cheaper than
        waiting.acquire()  # an Event, and this is every blocking get's path
        with self._lock:
            self._check_session(ids)
            cancel = self.store.when_all_ready(ids, waiting.release)
        if waiting.locked():  # it blocks: the timeline shows it
            since = time.time()
            try:
                if not waiting.acquire(timeout=-1 if timeout is None else timeout):
                    with self._lock:
                        cancel()
                        if waiting.locked():
                            raise exc.GetTimeoutError(
                                f"get timed out after {timeout} s: "
                                f"{sum(i not in self.store for i in ids)} of {len(ids)} "
                                f"objects not ready")
            finally:
                self.log.driver_blocked("get", len(ids), _thread.get_ident(), since)
        return [self.store[i] for i in ids]

    def wait(self, ids: list[str], num_returns: int, timeout: float | None) -> set[str]:
        done = threading.Event()
        with self._lock:
            self._check_session(ids)
            cancel = self.store.when_ready(ids, num_returns, done.set)
        if not done.is_set():
            since = time.time()
            done.wait(timeout)
            self.log.driver_blocked("wait", len(ids), threading.get_ident(), since)
        with self._lock:
            cancel()
            return {i for i in ids if i in self.store}

    def cancel(self, object_id: str, force: bool, recursive: bool) -> None:
        with self._lock:
            self.cancels.cancel(object_id, force=force, recursive=recursive)
            self.schedule()

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
            self.schedule()

    def placement_call(self, request):
        with self._lock:
            answer = self.groups.handle(request)
            self.schedule()  # a group created may be placed now; one removed frees CPUs
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

    def state_query(self, query):
        from minray.node import state_rows  # loaded by the first question, not by init

        with self._lock:
            return state_rows.answer(self, query)

    def _observed(self, conn, msg) -> None:
        from minray.node import state_rows

        state_rows.observed(self, conn, msg)

    def _check_session(self, ids: list[str]) -> None:
        """A ref from a session that was shut down will never have a value: say so now."""
        for oid in ids:
            if oid not in self.store and number(oid) < self._first_id:
                raise exc.ObjectLostError(
                    f"ObjectRef({oid}) belongs to an earlier minray session, which was shut "
                    f"down; its value is gone (objects do not outlive shutdown())")

    # ------------------------------------------------------------------ submission
    def submit_named_from(self, spec: TaskSpec, parent: EnvState, owner: Worker | None) -> str:
        """Create a named actor unless the name is taken: then the holder's id, for
        get_if_exists, or ValueError."""
        if spec.func_bytes is not None:  # the sender counts it as sent, whatever happens
            self.pool.functions.setdefault(spec.func_id, spec.func_bytes)
        creation = spec.actor
        existing = self.actors.named(creation.namespace, creation.name)
        if existing is None:
            self.submit_from(spec, parent, owner)
            return spec.actor_id
        if creation.get_if_exists:
            if owner is not None:  # it will hold a handle: count it now, as for a lookup
                existing.holders.add(owner.id)
            return existing.id
        raise ValueError(f"an actor named {creation.name!r} already exists in namespace "
                         f"{creation.namespace!r}; pass get_if_exists=True to get it, or "
                         f"minray.get_actor({creation.name!r})")

    def lookup(self, name: str, namespace: str, worker: Worker | None = None):
        """A named actor's id and class; a worker that asks will hold a handle to it from
        now on (it reports when it stops)."""
        actor = self.actors.named(namespace, name)
        if actor is None:
            return None
        if worker is not None:
            actor.holders.add(worker.id)
        return actor.id, actor.spec.actor.class_meta

    def submit_from(self, spec: TaskSpec, parent: EnvState, owner: Worker | None = None) -> None:
        if self._closed:
            raise exc.RayError("minray has been shut down; call minray.init() again")
        problem = None if spec.placement is None else self.groups.problem(spec)
        if problem is not None and (owner is None or spec.kind != ACTOR):
            raise ValueError(problem)  # at .remote() in the driver; a worker's get raises it
        if spec.deps:
            self._check_session(spec.deps)
            self.store.pin(spec.deps)  # until the task ends: a retry needs its arguments again
        if spec.func_bytes is not None:
            self.pool.functions.setdefault(spec.func_id, spec.func_bytes)
            spec.func_bytes = None
        self.store.collect()
        self.log.submitted(spec, owner)
        if spec.kind == CALL:
            if spec.handles:
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
            self.log.waits_for_args(spec)
            self.store.when_all_ready(spec.deps, lambda: self._deps_ready(spec, env))

    def _deps_ready(self, spec: TaskSpec, env: EnvState) -> None:
        if self.pending.pop(spec.task_id, None) is not None:  # else: it was cancelled
            self._enqueue(spec, env)

    def schedule(self) -> None:
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
        self.log.queued(spec, env)
        self.scheduler.enqueue(spec, env)
        self.schedule()

    # ------------------------------------------------------------------ envs
    def _env_ready(self, env: EnvState) -> None:
        self.actors.env_ready(env)
        if env is self.job_env and not self.pool.workers:
            try:  # prestart one, as Ray does: the first task is quick
                self.pool.start(env)
            except exc.RuntimeEnvSetupError as e:
                self.fail_env(env, e)
                return
        self.schedule()

    def fail_env(self, env: EnvState, error: exc.RuntimeEnvSetupError) -> None:
        """The env cannot start workers: fail its queued tasks and unstarted actors, and
        remember for a while."""
        self.envs.failed(env, error)
        for task in self.scheduler.drop(env):
            self.store.fail(task, env.error)
        self.actors.env_failed(env)

    def _on_tick(self) -> float | None:
        """After each turn of the I/O loop: end actors whose last handle the driver dropped,
        end workers that never connected, and without pidfds look for exits; free the values
        whose last ref died (a large one's ref wakes the loop). Returns how long the loop may
        sleep."""
        self.actors.collect_handles()
        self.store.collect()
        wait = _sooner(self.pool.end_overdue(), self.objects.expire())
        if self.io.pidfds:
            return wait
        for worker in self.pool.poll_exits():
            self._lives.exited(worker)
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


def _sooner(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)
