"""The embedded local node: object store, scheduler and worker pool, in the driver process.

All state lives in one `Node` guarded by one lock. Callers (the driver's threads) change it
directly; one I/O thread reads the workers' sockets and process-exit notifications and changes
it the same way. Sockets are non-blocking with per-worker output buffers, so no thread ever
waits on a worker while holding the lock.

Workers are keyed by the hash of their runtime env: a task runs on an idle worker of its env,
or on a new one started from the env's launch context while fewer than `num_cpus` tasks run;
an idle worker of another env is evicted to make room. Each actor gets a worker of its own.
"""

from __future__ import annotations

import collections
import itertools
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cloudpickle

import runtime_env as renv
from minray import exceptions as exc
from minray import objects
from minray.protocol import FrameReader, frame
from minray.task import ACTOR, CALL, TaskSpec
from runtime_env import processes

# Ids are unique per driver process, so a ref that outlives one session never names an object
# of the next.
_ids = itertools.count(1)
BOOT_SCRIPT = str(Path(__file__).parent / "_boot" / "minray_worker.py")
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


def _error_payload(error: BaseException) -> tuple[bool, bytes]:
    return False, cloudpickle.dumps(error)


@dataclass(eq=False)
class EnvState:
    """A runtime env of this session: being prepared, ready (with its launch context), or
    failed (remembered, so later tasks in it fail at once)."""

    hash: str
    spec: renv.RuntimeEnv
    launch: renv.LaunchContext | None = None
    error: exc.RuntimeEnvSetupError | None = None
    preparing: bool = False


@dataclass(eq=False)
class Worker:
    id: str
    env: EnvState
    proc: subprocess.Popen
    actor: Actor | None = None
    sock: socket.socket | None = None
    state: str = "starting"  # starting, idle, busy, leaving, dead
    task: TaskSpec | None = None
    blocked: bool = False  # waiting in get/wait inside a task: its CPU is lent out
    known_funcs: set = field(default_factory=set)
    reader: FrameReader = field(default_factory=FrameReader)
    outbuf: collections.deque = field(default_factory=collections.deque)  # unsent buffers
    events: int = _READ  # what the selector watches the socket for
    requests: dict = field(default_factory=dict)  # req id -> pending get/wait


@dataclass(eq=False)
class Actor:
    id: str
    spec: TaskSpec  # the creation task
    env: EnvState
    restarts_left: int
    worker: Worker | None = None
    queue: collections.deque = field(default_factory=collections.deque)  # calls not yet sent
    inflight: dict = field(default_factory=dict)  # task id -> calls sent, not answered
    dead: exc.ActorDiedError | None = None
    restarts: int = 0


class Node:
    is_driver = True
    worker_id = "driver"
    task_id = None
    actor_id = None
    was_restarted = False

    def __init__(self, *, num_cpus: int, job_env: renv.RuntimeEnv, job_id: str):
        self.num_cpus = num_cpus
        self.job_id = job_id
        self.cwd = os.getcwd()
        self.session_dir = _new_session_dir()
        self.setup_log = str(self.session_dir / "logs" / f"runtime_env_setup-{job_id}.log")
        self._lock = threading.RLock()
        self.objects: dict[str, tuple[bool, bytes]] = {}
        self._refs: dict[str, int] = {}  # live ObjectRefs in the driver, per object
        self._pins: dict[str, int] = {}  # unfinished tasks that take the object as argument
        self._dropped: set[str] = set()  # results that no one can ask for any more
        self._ref_events: collections.deque = collections.deque()
        self._escaped: set[str] = set()
        objects.track(self._ref_events, self._escaped)
        self._waiters: dict[str, list[Callable[[str], None]]] = {}
        self.functions: dict[str, bytes] = {}
        self.envs: dict[str, EnvState] = {}
        self.workers: dict[str, Worker] = {}
        self.actors: dict[str, Actor] = {}
        self._queues: dict[EnvState, collections.deque[TaskSpec]] = {}
        self._used_cpus = 0.0
        self._closed = False
        self._worker_env = {
            "MINRAY_NODE_SOCKET": _socket_path(self.session_dir),
            "MINRAY_DRIVER_PID": str(os.getpid()),
            "MINRAY_JOB_ID": job_id,
            "MINRAY_NUM_CPUS": str(num_cpus),
            "MINRAY_WORKER_PATH": os.pathsep.join(_worker_import_paths()),
            "MINRAY_DRIVER_SYS_PATH": os.pathsep.join(_driver_code_paths()),
        }
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self._worker_env["MINRAY_NODE_SOCKET"])
        self._listener.listen(128)
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, _READ, ("accept", None))
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._selector.register(self._wake_r, _READ, ("wake", None))
        self._pidfds = hasattr(os, "pidfd_open")
        self._io = threading.Thread(target=self._io_loop, name="minray-node-io", daemon=True)
        self._io.start()
        with self._lock:
            self.job_env = self._env(job_env, prepare=False)
            if job_env.config()["eager_install"]:  # as Ray: build the job env at init
                self._env(job_env)

    # ---------------------------------------------------------------- ids and objects
    def new_id(self) -> str:
        return f"{next(_ids):x}"

    @property
    def runtime_env_json(self) -> str:
        return self.job_env.spec.serialize()

    def check_cpus(self, num_cpus: float) -> None:
        check_cpus(num_cpus, self.num_cpus)

    def put(self, oid: str, data: bytes) -> None:
        with self._lock:
            self._store(oid, True, data)

    def _store(self, oid: str, ok: bool, data: bytes) -> None:
        self._collect()
        if oid in self._dropped:
            self._dropped.discard(oid)
        else:
            self.objects[oid] = (ok, data)
        for callback in self._waiters.pop(oid, ()):
            callback(oid)

    # ---------------------------------------------------------------- freeing objects
    def _collect(self) -> None:
        """Count the refs born and collected since last time; free what nobody can reach."""
        events = self._ref_events
        while events:
            oid, delta = events.popleft()
            count = self._refs.get(oid, 0) + delta
            if count > 0:
                self._refs[oid] = count
            elif oid in self._refs:
                del self._refs[oid]
                self._free(oid)

    def _free(self, oid: str) -> None:
        if oid in self._refs or oid in self._pins or oid in self._escaped:
            return
        if self.objects.pop(oid, None) is None and oid not in self._waiters:
            self._dropped.add(oid)  # still being computed: drop the result when it comes

    def _pin(self, ids: list[str]) -> None:
        for oid in ids:
            self._pins[oid] = self._pins.get(oid, 0) + 1

    def _unpin(self, ids: list[str]) -> None:
        for oid in ids:
            count = self._pins.pop(oid) - 1
            if count:
                self._pins[oid] = count
            elif oid not in self._refs:
                self._free(oid)

    def _when_ready(self, ids: list[str], need: int, callback: Callable[[], None]) -> None:
        """Call `callback` once `need` of `ids` are stored (at once if they already are)."""
        unique = list(dict.fromkeys(ids))
        missing = [i for i in unique if i not in self.objects]
        count = [len(unique) - len(missing)]
        if count[0] >= need:
            callback()
            return

        def arrived(_oid: str) -> None:
            count[0] += 1
            if count[0] == need:
                callback()

        for oid in missing:
            self._waiters.setdefault(oid, []).append(arrived)

    def get(self, ids: list[str], timeout: float | None) -> list[tuple[bool, bytes]]:
        """Block until every id is stored; the driver's `get`."""
        done = threading.Event()
        with self._lock:
            self._when_ready(ids, len(set(ids)), done.set)
        if not done.wait(timeout):
            raise exc.GetTimeoutError(f"get timed out after {timeout} s: "
                                      f"{sum(i not in self.objects for i in ids)} of "
                                      f"{len(ids)} objects not ready")
        return [self.objects[i] for i in ids]

    def wait(self, ids: list[str], num_returns: int, timeout: float | None) -> set[str]:
        done = threading.Event()
        with self._lock:
            self._when_ready(ids, num_returns, done.set)
        done.wait(timeout)
        with self._lock:
            return {i for i in ids if i in self.objects}

    # ---------------------------------------------------------------- environments
    def _env(self, spec: renv.RuntimeEnv, prepare: bool = True) -> EnvState:
        h = spec.env_hash()
        state = self.envs.get(h)
        if state is None:
            state = self.envs[h] = EnvState(h, spec)
        if prepare and not state.preparing:
            state.preparing = True
            threading.Thread(target=self._prepare, args=(state,), daemon=True,
                             name=f"minray-env-{h[:8]}").start()
        return state

    def env_for(self, parent: EnvState, override: dict | None) -> EnvState:
        if not override:
            return self._env(parent.spec)  # prepares the job env on first use if not eager
        child = override if isinstance(override, renv.RuntimeEnv) else renv.parse(override)
        return self._env(renv.inherit(parent.spec, child))

    def _prepare(self, state: EnvState) -> None:
        """Build an env in the background; its tasks wait in their queue meanwhile."""
        timeout = state.spec.config().timeout
        result: list = []

        def build() -> None:
            try:
                result.append(renv.prepare(state.spec, log_path=self.setup_log,
                                           timeout=timeout))
            except BaseException as e:  # noqa: BLE001 - every failure is the user's answer
                result.append(e)

        builder = threading.Thread(target=build, daemon=True)
        builder.start()
        builder.join(None if timeout is None else timeout + 5)
        with self._lock:
            if self._closed:
                return
            if not result:
                state.error = exc.RuntimeEnvSetupError(
                    f"runtime_env setup timed out after {timeout} s "
                    f"(config setup_timeout_seconds); full setup log: {self.setup_log}")
            elif isinstance(result[0], BaseException):
                state.error = exc.RuntimeEnvSetupError(_describe_setup_failure(result[0]))
            else:
                state.launch = result[0]
            if state.error is not None:
                self._fail_env(state)
                return
            for actor in self.actors.values():
                if actor.env is state and actor.worker is None and actor.dead is None:
                    self._start_actor(actor)
            if state is self.job_env and not self._closed and not self.workers:
                self._start_worker(state)  # prestart one, as Ray does: the first task is quick
            self._schedule()

    def _fail_env(self, env: EnvState) -> None:
        queue = self._queues.pop(env, ())
        for task in queue:
            self._finish(task, [_error_payload(env.error)] * len(task.return_ids))
        for actor in self.actors.values():
            if actor.env is env and actor.dead is None:
                self._actor_died(actor, exc.ActorDiedError(
                    f"actor {actor.spec.name} could not start: {env.error}"), restart=False)

    # ---------------------------------------------------------------- submission
    def submit(self, spec: TaskSpec, parent: EnvState | None = None) -> None:
        with self._lock:
            self._submit(spec, parent or self.job_env)

    def _submit(self, spec: TaskSpec, parent: EnvState) -> None:
        if self._closed:
            raise exc.RayError("minray has been shut down; call minray.init() again")
        if spec.func_bytes is not None:
            self.functions.setdefault(spec.func_id, spec.func_bytes)
            spec.func_bytes = None
        self._collect()
        self._pin(spec.deps)  # until the task finishes: a retry needs its arguments again
        if spec.kind == CALL:
            actor = self.actors[spec.actor_id]
            if actor.dead is not None:
                self._finish(spec, [_error_payload(actor.dead)] * len(spec.return_ids))
                return
            actor.queue.append(spec)
            self._pump_actor(actor)
            return
        env = self.env_for(parent, spec.runtime_env)
        if spec.kind == ACTOR:
            actor = Actor(spec.actor_id, spec, env, restarts_left=spec.max_retries)
            self.actors[actor.id] = actor
            self._start_actor(actor)
            return
        if env.error is not None:
            self._finish(spec, [_error_payload(env.error)] * len(spec.return_ids))
            return
        self._when_ready(spec.deps, len(set(spec.deps)), lambda: self._enqueue(spec, env))

    def _enqueue(self, spec: TaskSpec, env: EnvState) -> None:
        failed = self._failed_dep(spec)
        if failed is not None:
            self._finish(spec, [failed] * len(spec.return_ids))
            return
        self._queues.setdefault(env, collections.deque()).append(spec)
        self._schedule()

    def _failed_dep(self, spec: TaskSpec) -> tuple[bool, bytes] | None:
        for oid in spec.deps:
            if not self.objects[oid][0]:
                return self.objects[oid]
        return None

    def _schedule(self) -> None:
        """Give queued tasks to idle workers of their env; start workers while CPUs allow."""
        if self._closed:
            return
        for env, queue in list(self._queues.items()):
            if env.error is not None:
                self._fail_env(env)
                continue
            if env.launch is None:
                continue  # still being prepared
            idle = [w for w in self.workers.values()
                    if w.env is env and w.state == "idle" and w.actor is None]
            starting = sum(1 for w in self.workers.values()
                           if w.env is env and w.state == "starting" and w.actor is None)
            while queue:
                if idle:
                    task = queue[0]
                    if self._used_cpus + task.num_cpus > self.num_cpus and task.num_cpus > 0:
                        break
                    queue.popleft()
                    self._dispatch(idle.pop(), task)
                elif starting < len(queue) and self._room_for_worker(env):
                    self._start_worker(env)
                    starting += 1
                else:
                    break
            if not queue:
                del self._queues[env]

    def _room_for_worker(self, env: EnvState) -> bool:
        """True if a new task worker may start, evicting an idle one of another env if the
        node already has `num_cpus` of them."""
        running = [w for w in self.workers.values()
                   if w.actor is None and w.state in ("starting", "idle", "busy") and not w.blocked]
        busy = self._used_cpus + sum(1 for w in running if w.state == "starting")
        if busy >= self.num_cpus:
            return False
        if len(running) >= self.num_cpus:
            victims = [w for w in running if w.state == "idle" and w.env is not env]
            if not victims:
                return False
            self._retire(victims[0])
        return True

    def _dispatch(self, worker: Worker, task: TaskSpec) -> None:
        worker.state, worker.task = "busy", task
        self._used_cpus += task.num_cpus
        self._send(worker, self._run_message(worker, task))

    def _run_message(self, worker: Worker, task: TaskSpec) -> tuple:
        func = None
        if task.func_id is not None and task.func_id not in worker.known_funcs:
            worker.known_funcs.add(task.func_id)
            func = self.functions[task.func_id]
        deps = {oid: self.objects[oid][1] for oid in task.deps}
        return ("run", task.kind, task.task_id, task.name, task.func_id, func, task.method,
                task.args, deps, task.return_ids)

    # ---------------------------------------------------------------- results
    def _finish(self, task: TaskSpec, results: list[tuple[bool, bytes]]) -> None:
        for oid, (ok, data) in zip(task.return_ids, results, strict=False):
            self._store(oid, ok, data)
        self._unpin(task.deps)

    def _on_done(self, worker: Worker, task_id: str, results: list) -> None:
        if worker.actor is not None:
            actor = worker.actor
            if task_id == actor.spec.task_id:  # the creation task
                if not results[0][0]:
                    cause = cloudpickle.loads(results[0][1])
                    self._actor_died(actor, exc.ActorDiedError(
                        f"actor {actor.spec.name} failed in its constructor:\n{cause}"),
                        restart=False)
                return
            task = actor.inflight.pop(task_id, None)
            if task is not None:  # None: already failed when the actor died
                self._finish(task, results)
            return
        task = worker.task
        self._used_cpus -= task.num_cpus if not worker.blocked else 0
        worker.task, worker.blocked = None, False
        if worker.state == "busy":
            worker.state = "idle"
        self._finish(task, results)
        self._schedule()

    # ---------------------------------------------------------------- actors
    def _start_actor(self, actor: Actor) -> None:
        if actor.env.error is not None:
            self._actor_died(actor, exc.ActorDiedError(
                f"actor {actor.spec.name} could not start: {actor.env.error}"), restart=False)
            return
        if actor.env.launch is None:
            return  # started when its env is ready
        actor.worker = self._start_worker(actor.env, actor)

    def _actor_ready(self, actor: Actor) -> None:
        """The actor's worker connected: create the instance, then send queued calls."""
        spec = actor.spec

        def send_init() -> None:
            failed = self._failed_dep(spec)
            if failed is not None:
                cause = cloudpickle.loads(failed[1])
                self._actor_died(actor, exc.ActorDiedError(
                    f"actor {spec.name} could not be created: an argument failed:\n{cause}"),
                    restart=False)
                return
            actor.worker.state = "busy"
            self._send(actor.worker, self._run_message(actor.worker, spec))
            self._pump_actor(actor)

        self._when_ready(spec.deps, len(set(spec.deps)), send_init)

    def _pump_actor(self, actor: Actor) -> None:
        """Send queued calls in order, each once its arguments are ready."""
        worker = actor.worker
        if worker is None or worker.state != "busy":
            return
        while actor.queue:
            call = actor.queue[0]
            if any(d not in self.objects for d in call.deps):
                self._when_ready(call.deps, len(set(call.deps)), lambda: self._pump_actor(actor))
                return
            actor.queue.popleft()
            failed = self._failed_dep(call)
            if failed is not None:
                self._finish(call, [failed] * len(call.return_ids))
                continue
            actor.inflight[call.task_id] = call
            self._send(worker, self._run_message(worker, call))

    def _actor_died(self, actor: Actor, error: exc.ActorDiedError, *, restart: bool) -> None:
        for call in actor.inflight.values():
            self._finish(call, [_error_payload(error)] * len(call.return_ids))
        actor.inflight.clear()
        if restart and actor.restarts_left != 0:
            actor.restarts_left -= 1
            actor.restarts += 1
            self._start_actor(actor)
            return
        actor.dead = error
        self._unpin(actor.spec.deps)
        for call in actor.queue:
            self._finish(call, [_error_payload(error)] * len(call.return_ids))
        actor.queue.clear()
        if actor.worker is not None and actor.worker.state not in ("leaving", "dead"):
            self._retire(actor.worker)

    def kill_actor(self, actor_id: str, no_restart: bool = True) -> None:
        with self._lock:
            actor = self.actors.get(actor_id)
            if actor is None or actor.dead is not None:
                return
            worker = actor.worker
            if no_restart:
                actor.restarts_left = 0
            if worker is not None and worker.state != "dead":
                worker.state = "leaving"
                processes.kill_tree(worker.proc.pid, wait=0)
            if no_restart:
                self._actor_died(actor, exc.ActorDiedError(
                    f"actor {actor.spec.name} was killed by minray.kill()"), restart=False)

    # ---------------------------------------------------------------- worker processes
    def _start_worker(self, env: EnvState, actor: Actor | None = None) -> Worker | None:
        wid = f"w{self.new_id()}"
        launch = env.launch
        process_env = launch.process_env()
        process_env.update(self._worker_env, MINRAY_WORKER_ID=wid,
                           MINRAY_RUNTIME_ENV=env.spec.serialize(),
                           MINRAY_ACTOR_RESTARTS=str(actor.restarts if actor else 0))
        argv = [*launch.py_executable, BOOT_SCRIPT]
        try:
            proc = subprocess.Popen(argv, env=process_env, cwd=launch.cwd or self.cwd,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            env.error = exc.RuntimeEnvSetupError(
                f"cannot start a worker with {argv[0]!r}: {e.strerror or e}")
            self._fail_env(env)
            return None
        worker = Worker(wid, env, proc, actor=actor)
        self.workers[wid] = worker
        if self._pidfds:
            fd = os.pidfd_open(proc.pid)
            self._register(fd, _READ, ("exit", worker))
        return worker

    def _retire(self, worker: Worker) -> None:
        """Ask a worker to exit; its exit is handled as expected, not as a crash."""
        worker.state = "leaving"
        if worker.sock is not None:
            self._send(worker, ("exit",))

    def _on_hello(self, sock: socket.socket, wid: str) -> None:
        worker = self.workers.get(wid)
        if worker is None or worker.state != "starting":
            self._unregister(sock)
            sock.close()
            return
        worker.sock = sock
        self._modify(sock, _READ, ("worker", worker))
        if worker.actor is not None:
            worker.state = "busy"  # an actor's worker belongs to it
            self._actor_ready(worker.actor)
        else:
            worker.state = "idle"
            self._schedule()

    def _on_exit(self, worker: Worker) -> None:
        """A worker process ended: retry or fail what it was running."""
        if worker.state == "dead":
            return
        code = worker.proc.wait()
        was = worker.state
        worker.state = "dead"
        self.workers.pop(worker.id, None)
        if worker.sock is not None:
            self._unregister(worker.sock)
            worker.sock.close()
        for req in worker.requests.values():
            req["cancelled"] = True
        how = _exit_description(code)
        if was == "starting" and not self._closed:
            worker.env.error = worker.env.error or exc.RuntimeEnvSetupError(
                f"the worker process exited ({how}) before connecting to the node; command: "
                f"{' '.join(worker.env.launch.py_executable)} {BOOT_SCRIPT}; its output is "
                f"above in the driver's stderr")
            self._fail_env(worker.env)
        elif worker.actor is not None and worker.actor.worker is worker:
            actor = worker.actor
            actor.worker = None
            if actor.dead is None and not self._closed:
                self._actor_died(actor, exc.ActorDiedError(
                    f"the worker of actor {actor.spec.name} died ({how})"), restart=True)
        elif worker.task is not None:
            task = worker.task
            if not worker.blocked:
                self._used_cpus -= task.num_cpus
            if not self._closed and (task.max_retries < 0 or task.attempts < task.max_retries):
                task.attempts += 1
                self._queues.setdefault(worker.env, collections.deque()).appendleft(task)
            else:
                error = exc.WorkerCrashedError(
                    f"the worker running {task.name} died ({how}); retried {task.attempts} "
                    f"time(s) (max_retries={task.max_retries})")
                self._finish(task, [_error_payload(error)] * len(task.return_ids))
        if not self._closed:
            self._schedule()

    # ---------------------------------------------------------------- worker requests
    def _on_message(self, worker: Worker, msg: tuple) -> None:
        kind = msg[0]
        if kind == "done":
            self._on_done(worker, msg[1], msg[2])
        elif kind == "submit":
            try:
                self._submit(msg[1], worker.env)
            except Exception as e:  # noqa: BLE001 - the submitter learns it from get()
                self._finish(msg[1], [_error_payload(exc.RayError(f"cannot submit: {e}"))]
                             * len(msg[1].return_ids))
        elif kind == "put":
            self._store(msg[1], True, msg[2])
        elif kind in ("get", "wait"):
            self._on_request(worker, *msg)
        elif kind == "cancel":
            self._on_cancel(worker, msg[1])
        elif kind == "kill":
            self.kill_actor(msg[1], msg[2])

    def _on_request(self, worker: Worker, kind: str, req_id: int, ids: list[str],
                    need: int) -> None:
        """A task blocks in get/wait: lend out its CPU until the answer is sent."""
        req = {"kind": kind, "ids": ids, "cancelled": False}
        worker.requests[req_id] = req
        if worker.task is not None and not worker.blocked:
            worker.blocked = True
            self._used_cpus -= worker.task.num_cpus
        self._when_ready(ids, need, lambda: self._answer(worker, req_id))
        self._schedule()

    def _answer(self, worker: Worker, req_id: int) -> None:
        req = worker.requests.pop(req_id, None)
        if req is None or req["cancelled"] or worker.state == "dead":
            return
        if req["kind"] == "get":
            payload = [self.objects[i] for i in req["ids"]]
        else:
            payload = [i for i in req["ids"] if i in self.objects]
        self._unblock(worker)
        self._send(worker, ("reply", req_id, payload))

    def _on_cancel(self, worker: Worker, req_id: int) -> None:
        """The task's get/wait timed out: answer a wait with what is ready now."""
        req = worker.requests.pop(req_id, None)
        if req is None:
            return
        req["cancelled"] = True
        self._unblock(worker)
        if req["kind"] == "wait":
            self._send(worker, ("reply", req_id, [i for i in req["ids"] if i in self.objects]))

    def _unblock(self, worker: Worker) -> None:
        if worker.blocked and not worker.requests and worker.task is not None:
            worker.blocked = False
            self._used_cpus += worker.task.num_cpus

    # ---------------------------------------------------------------- I/O
    def _register(self, fileobj, events: int, data) -> None:
        self._selector.register(fileobj, events, data)
        self._wake()

    def _modify(self, fileobj, events: int, data) -> None:
        self._selector.modify(fileobj, events, data)
        self._wake()

    def _unregister(self, fileobj) -> None:
        try:
            self._selector.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    def _wake(self) -> None:
        if threading.current_thread() is not self._io:
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:
                pass

    def _send(self, worker: Worker, msg: tuple) -> None:
        if worker.sock is None or worker.state == "dead":
            return
        queued = bool(worker.outbuf)
        worker.outbuf.extend(frame(msg))
        if not queued:  # nothing ahead of it: write now, keep the rest for when writable
            self._flush(worker)

    def _flush(self, worker: Worker) -> None:
        out = worker.outbuf
        try:
            while out:
                sent = worker.sock.send(out[0])
                if sent < len(out[0]):
                    out[0] = memoryview(out[0])[sent:]
                    break
                out.popleft()
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # the worker is gone; its exit is handled when the process ends
            out.clear()
        events = _READ | _WRITE if out else _READ
        if events != worker.events:
            worker.events = events
            self._modify(worker.sock, events, ("worker", worker))

    def _io_loop(self) -> None:
        while not self._closed:
            events = self._selector.select(None if self._pidfds else 0.2)
            with self._lock:
                if self._closed:
                    return
                for key, mask in events:
                    try:
                        self._on_event(key, mask)
                    except Exception:  # noqa: BLE001 - the node must outlive any one event
                        traceback.print_exc()
                if not self._pidfds:
                    for worker in list(self.workers.values()):
                        if worker.proc.poll() is not None:
                            self._on_exit(worker)

    def _on_event(self, key: selectors.SelectorKey, mask: int) -> None:
        kind, obj = key.data
        if kind == "worker":
            if mask & _WRITE:
                self._flush(obj)
            if mask & _READ and obj.sock is not None:
                self._read(obj.sock, obj.reader, obj)
        elif kind == "exit":
            self._unregister(key.fileobj)
            os.close(key.fileobj)
            self._on_exit(obj)
        elif kind == "hello":
            self._read(key.fileobj, obj)
        elif kind == "accept":
            self._accept()
        else:
            _drain(self._wake_r)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            self._selector.register(sock, _READ, ("hello", FrameReader()))

    def _read(self, sock: socket.socket, reader: FrameReader, worker: Worker | None = None):
        for _ in range(256):  # then let other workers have a turn
            try:
                msg = reader.read(sock)
            except (BlockingIOError, InterruptedError):
                return
            except (EOFError, OSError):  # closed: the process exit settles what it was running
                self._unregister(sock)
                if worker is not None:
                    worker.sock = None
                sock.close()
                return
            if worker is None:  # a new connection: its first message names the worker
                worker = self.workers.get(msg[1])
                if worker is not None:
                    worker.reader = reader
                self._on_hello(sock, msg[1])
                if worker is None or worker.sock is not sock:
                    return
            else:
                self._on_message(worker, msg)

    # ---------------------------------------------------------------- shutdown
    def shutdown(self) -> None:
        """Stop every worker and everything they started; leave no process behind."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self.workers.values())
            procs = [p for w in workers for p in processes.tree(w.proc.pid)]
            for w in workers:
                if w.sock is not None:
                    try:
                        w.sock.close()  # the worker sees EOF and exits
                    except OSError:
                        pass
            os.write(self._wake_w, b"x")
        self._io.join(2)
        processes.end(procs, grace=1.0, wait=3)
        for w in workers:
            w.proc.poll()
        objects.track(None, None)
        self._listener.close()
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        sock_path = Path(self._worker_env["MINRAY_NODE_SOCKET"])
        sock_path.unlink(missing_ok=True)
        if sock_path.parent != self.session_dir:
            shutil.rmtree(sock_path.parent, ignore_errors=True)


def check_cpus(num_cpus: float, total: int) -> None:
    if num_cpus > total:
        raise ValueError(f"num_cpus={num_cpus} is more than this node has ({total}); the task "
                         f"could never run. Pass num_cpus to minray.init() to change it")


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _exit_description(code: int | None) -> str:
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _describe_setup_failure(error: BaseException) -> str:
    if isinstance(error, renv.SetupError):
        return str(error)
    return f"{type(error).__name__}: {error}"


KEEP_SESSIONS = 20
_MAX_SOCKET_PATH = 100  # AF_UNIX paths hold 104-108 bytes


def _socket_path(session: Path) -> str:
    """The node's socket in its session folder, or in a short private folder when a long
    TMPDIR (macOS has one) would make the path too long for a Unix socket."""
    path = str(session / "node.sock")
    if len(path.encode()) <= _MAX_SOCKET_PATH:
        return path
    return str(Path(tempfile.mkdtemp(prefix="minray-", dir="/tmp")) / "node.sock")


def _new_session_dir() -> Path:
    """A folder for this session's socket and logs, in $MINRAY_TMPDIR (or the temp dir)
    /minray-<uid>/, linked as session_latest. Only the newest sessions are kept, and those
    whose driver still runs: logs must not fill a disk over months of test runs."""
    root = Path(os.environ.get("MINRAY_TMPDIR") or tempfile.gettempdir()) / f"minray-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    session = Path(tempfile.mkdtemp(prefix=f"session_{stamp}_{os.getpid()}_", dir=root))
    (session / "logs").mkdir()
    latest = root / "session_latest"
    tmp_link = root / f".latest-{os.getpid()}"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(session.name)
    os.replace(tmp_link, latest)
    old = sorted(root.glob("session_2*"), key=lambda p: p.stat().st_mtime)[:-KEEP_SESSIONS]
    for folder in old:
        parts = folder.name.split("_")  # session, date, time, pid, random
        if not (len(parts) == 5 and parts[3].isdigit() and processes.pid_alive(int(parts[3]))):
            shutil.rmtree(folder, ignore_errors=True)
    return session


def _worker_import_paths() -> list[str]:
    """Where minray and its worker-side dependencies live, appended to a worker's sys.path so
    they import in any env (a venv, a conda prefix) after the env's own packages."""
    import minray

    paths = [str(Path(minray.__file__).resolve().parent.parent),
             str(Path(cloudpickle.__file__).resolve().parent.parent)]
    return list(dict.fromkeys(paths))


def _driver_code_paths() -> list[str]:
    """The driver's script directory and cwd, as Ray adds them, so functions defined in the
    driver's own modules import in workers."""
    paths = [sys.path[0] if sys.path and sys.path[0] else os.getcwd(), os.getcwd()]
    return list(dict.fromkeys(os.path.abspath(p) for p in paths))
