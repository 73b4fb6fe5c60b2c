"""The node: the driver's core, holding the lock and wiring the parts together.

Callers (the driver's threads) change the node's state directly under its one lock; the I/O
thread delivers worker messages and process exits under the same lock. Each part owns its own
state (see docs/design.md); what crosses parts happens here: a task submitted, a message from a
worker, a worker that connected or exited, an env that became ready or failed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import runtime_env as renv
from minray import core
from minray import exceptions as exc
from minray.node import session
from minray.node.actors import Actors
from minray.node.envs import Envs
from minray.node.forkservers import JobServer
from minray.node.ids import new_id, number
from minray.node.io_loop import Connection, IOLoop
from minray.node.launch import BOOT_SCRIPT, launch_vars
from minray.node.scheduler import Scheduler
from minray.node.state import EnvState, Request, Worker, WorkerState
from minray.node.store import ObjectStore
from minray.node.workers import WorkerPool, out_of_resources
from minray.protocol import Cancel, Done, Get, Hello, KillActor, Message, Put, Reply, Submit, Wait
from minray.task import ACTOR, CALL, Result, TaskSpec
from runtime_env import processes


class Node(core.Core):
    is_driver = True
    worker_id = "driver"

    def __init__(self, *, num_cpus: int, job_env: renv.RuntimeEnv, job_id: str,
                 cache: renv.Cache | None = None, session_dir: Path | None = None,
                 socket_path: str | None = None, job_server: JobServer | None = None):
        self.num_cpus = num_cpus
        self.job_id = job_id
        self.session_dir = session_dir or session.new_session_dir()
        self.setup_log = session.new_log(
            str(self.session_dir / "logs" / f"runtime_env_setup-{job_id}.log"))
        self._socket = socket_path or session.socket_path(self.session_dir)
        self._lock = threading.RLock()
        self._closed = False
        self._first_id = number(new_id())  # every id of this session is at least this
        self.store = ObjectStore()
        self.io = IOLoop(self._lock, self._socket, on_hello=self._on_hello,
                         on_message=self._on_message, on_exit=self._on_exit,
                         on_refused=self._on_refused, on_tick=self._on_tick)
        self.pool = WorkerPool(self.io, self.store, cwd=os.getcwd(),
                               launch_vars=launch_vars(self._socket, job_id, num_cpus),
                               on_exit=self._on_exit)
        if job_server is not None:  # init's prestarted worker will come from it
            self.pool.forkservers.adopt(job_server)
        self.scheduler = Scheduler(self.pool, self.store, num_cpus, fail_env=self._fail_env)
        self.actors = Actors(self.pool, self.store, fail_env=self._fail_env)
        self.envs = Envs(self._lock, self.setup_log, cache, on_ready=self._env_ready,
                         on_failed=self._fail_env)
        with self._lock:
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

    def put(self, object_id: str, data: bytes) -> None:
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

    def kill_actor(self, actor_id: str, no_restart: bool) -> None:
        with self._lock:
            self.actors.kill(actor_id, no_restart)

    def _check_session(self, ids: list[str]) -> None:
        """A ref from a session that was shut down will never have a value: say so now."""
        for oid in ids:
            if oid not in self.store and number(oid) < self._first_id:
                raise exc.ObjectLostError(
                    f"ObjectRef({oid}) belongs to an earlier minray session, which was shut "
                    f"down; its value is gone (objects do not outlive shutdown())")

    # ------------------------------------------------------------------ submission
    def _submit(self, spec: TaskSpec, parent: EnvState) -> None:
        if self._closed:
            raise exc.RayError("minray has been shut down; call minray.init() again")
        self._check_session(spec.deps)
        if spec.func_bytes is not None:
            self.pool.functions.setdefault(spec.func_id, spec.func_bytes)
            spec.func_bytes = None
        self.store.collect()
        self.store.pin(spec.deps)  # until the task finishes: a retry needs its arguments again
        if spec.kind == CALL:
            self.actors.call(spec)
            return
        env = self.envs.for_task(parent, spec.runtime_env)
        if spec.kind == ACTOR:
            self.actors.create(spec, env)
        elif env.error is not None:
            self.store.fail(spec, env.error)
        else:
            self.store.when_all_ready(spec.deps, lambda: self._enqueue(spec, env))

    def _enqueue(self, spec: TaskSpec, env: EnvState) -> None:
        failed = self.store.failed_dep(spec)
        if failed is not None:
            self.store.complete(spec, [failed] * len(spec.return_ids))
            return
        self.scheduler.enqueue(spec, env)
        self.scheduler.schedule()

    # ------------------------------------------------------------------ envs
    def _env_ready(self, env: EnvState) -> None:
        self.actors.env_ready(env)
        if env is self.job_env and not self.pool.workers:
            try:  # prestart one, as Ray does: the first task is quick
                self.pool.start(env)
            except exc.RuntimeEnvSetupError as e:
                self._fail_env(env, e)
                return
        self.scheduler.schedule()

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
        worker.env.connected = True
        if worker.actor is not None:
            self.actors.connected(worker)
        else:
            worker.state = WorkerState.IDLE
            self.scheduler.schedule()
        return worker

    def _on_message(self, worker: Worker, msg: Message) -> None:
        match msg:
            case Done(task_id=task_id, results=results):
                self._on_done(worker, task_id, results)
            case Submit(task=task):
                try:
                    self._submit(task, worker.env)
                except Exception as e:  # noqa: BLE001 - the submitter learns it from get()
                    self.store.fail(task, exc.RayError(f"cannot submit: {e}"))
            case Put(object_id=object_id, data=data):
                self.store.store(object_id, (True, data))
            case Get() | Wait():
                self._on_request(worker, msg)
            case Cancel(req_id=req_id):
                self._on_cancel(worker, req_id)
            case KillActor(actor_id=actor_id, no_restart=no_restart):
                self.actors.kill(actor_id, no_restart)

    def _on_done(self, worker: Worker, task_id: str, results: list[Result]) -> None:
        if worker.actor is not None:
            self.actors.done(worker, task_id, results)
            return
        self.store.complete(self.scheduler.finished(worker), results)
        self.scheduler.schedule()

    def _on_request(self, worker: Worker, msg: Get | Wait) -> None:
        """A task blocks in get/wait: lend out its CPUs until the answer is sent."""
        wait = isinstance(msg, Wait)
        request = Request(msg.ids, wait, cancel=lambda: None)
        worker.requests[msg.req_id] = request
        self.scheduler.blocked(worker)
        need = msg.num_returns if wait else len(set(msg.ids))
        request.cancel = self.store.when_ready(msg.ids, need,
                                               lambda: self._answer(worker, msg.req_id))
        self.scheduler.schedule()

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
        if was is WorkerState.STARTING:
            self._start_failed(worker, how)
        elif worker.actor is not None:
            self.actors.worker_exited(worker, how)
        elif worker.task is not None:
            task = self.scheduler.finished(worker)
            if task.max_retries < 0 or task.attempts < task.max_retries:
                task.attempts += 1
                self.scheduler.enqueue(task, worker.env, first=True)
            else:
                self.store.fail(task, exc.WorkerCrashedError(
                    f"the worker running {task.name} died ({how}); retried {task.attempts} "
                    f"time(s) (max_retries={task.max_retries})"))
        self.scheduler.schedule()

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
        """After each turn of the I/O loop: end workers that never connected, and without
        pidfds look for exits. Returns how long the loop may sleep."""
        wait = self.pool.end_overdue()
        if self.io.pidfds:
            return wait
        for worker in self.pool.poll_exits():
            self._on_exit(worker)
        return min(wait or 0.2, 0.2)

    # ------------------------------------------------------------------ shutdown
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
        session.remove_socket(self._socket, self.session_dir)
