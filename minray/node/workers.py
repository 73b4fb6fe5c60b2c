"""Worker processes: start one from its env's launch context, send it work, let it go.

Workers are keyed by their env: `idle(env)` finds one to reuse. Each knows which functions it
has been sent, so a function's bytes cross the socket once per process.
"""

from __future__ import annotations

import collections
import errno
import os
import resource
import signal
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from minray.node.forkservers import ForkedProcess, ForkServers
from minray.node.ids import new_id
from minray.node.io_loop import IOLoop
from minray.node.launch import BOOT_SCRIPT
from minray.node.state import Actor, EndedWorker, EnvState, Worker, WorkerState
from minray.node.store import ObjectStore
from minray.node.task_log import TaskLog
from minray.protocol import Exit, Message, Run
from minray.task import TaskSpec
from runtime_env import processes

if TYPE_CHECKING:
    import subprocess


class WorkerStartError(Exception):
    """A worker could not be started. `env_broken` when the env is at fault (its interpreter
    cannot run), so every worker of it would fail the same way; otherwise the machine is out of
    something (file descriptors, processes, memory) and only this worker is lost."""

    def __init__(self, message: str, *, env_broken: bool):
        super().__init__(message)
        self.env_broken = env_broken


def out_of_resources(error: OSError) -> str | None:
    """What the machine ran out of, in words a user can act on; None for other errors."""
    if error.errno in (errno.EMFILE, errno.ENFILE):
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return (f"the driver has too many open files to start another worker (ulimit -n is "
                f"{soft}; each worker holds two): {error.strerror}")
    if error.errno in (errno.EAGAIN, errno.ENOMEM):
        return f"the system cannot start another process now: {error.strerror}"
    return None


class WorkerPool:
    def __init__(self, io: IOLoop, store: ObjectStore, *, launch_vars: dict[str, str],
                 cwd: str, on_exit: Callable[[Worker], None], log: TaskLog | None = None):
        self.io = io
        self.log = log or TaskLog()  # the node's event log: starts, runs, exits
        self.store = store
        self.workers: dict[str, Worker] = {}
        self.starting: dict[Worker, float] = {}  # not connected yet -> when it must have been
        self.functions: dict[str, bytes] = {}  # every function and class, by content hash
        self.ended: collections.deque[EndedWorker] = collections.deque(maxlen=1000)  # newest last
        self._launch_vars = launch_vars  # what every worker is told: socket, driver, job
        self._cwd = cwd
        self._on_exit = on_exit
        self.forkservers = ForkServers(io, BOOT_SCRIPT, self._forked_exit)

    def __iter__(self) -> Iterator[Worker]:
        return iter(self.workers.values())

    def idle_and_starting(self, env: EnvState) -> tuple[list[Worker], int]:
        """The idle task workers (not actors') of an env, and how many more are starting."""
        idle, starting = [], 0
        for w in self.workers.values():
            if w.env is env and w.actor is None:
                if w.state is WorkerState.IDLE:
                    idle.append(w)
                elif w.state is WorkerState.STARTING:
                    starting += 1
        return idle, starting

    def start(self, env: EnvState, actor: Actor | None = None) -> Worker:
        """Start a worker process in a ready env, forked from its fork server when that gives
        the same process an exec would; raises WorkerStartError."""
        worker = Worker(f"w{new_id()}", env, None, actor=actor)
        process_env, cwd = self._process_env(worker), env.launch.cwd or self._cwd
        forked = self.forkservers.fork(worker, env.launch.py_executable, process_env, cwd)
        worker.proc = forked or self._exec(worker, process_env, cwd)
        self.log.worker_asked(worker, forked is not None)
        self.workers[worker.id] = worker
        self.starting[worker] = time.monotonic() + register_timeout()
        return worker

    def _process_env(self, worker: Worker) -> dict[str, str]:
        """The environment a worker starts with: its launch context's, and who it is."""
        process_env = worker.env.launch.process_env()
        process_env.update(self._launch_vars, MINRAY_WORKER_ID=worker.id,
                           MINRAY_RUNTIME_ENV=worker.env.spec.serialize(),
                           MINRAY_ACTOR_RESTARTS=str(worker.actor.restarts if worker.actor
                                                     else 0))
        return process_env

    def _exec(self, worker: Worker, process_env: dict[str, str], cwd: str) -> subprocess.Popen:
        import subprocess  # on use: init starts its first worker without it (~3 ms)

        argv = [*worker.env.launch.py_executable, BOOT_SCRIPT]
        try:
            proc = subprocess.Popen(argv, env=process_env, cwd=cwd,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            lack = out_of_resources(e)
            raise WorkerStartError(lack or f"cannot start a worker with {argv[0]!r}: "
                                   f"{e.strerror or e}", env_broken=lack is None) from None
        except (ValueError, TypeError) as e:  # an argument or variable the OS cannot take
            raise WorkerStartError(f"cannot start a worker with {argv!r}: {e}",
                                   env_broken=True) from None
        try:
            self.io.watch_exit(proc, worker)
        except OSError as e:  # no file descriptor left to watch it with
            proc.kill()
            proc.wait()
            raise WorkerStartError(out_of_resources(e) or str(e), env_broken=False) from None
        return proc

    def _forked_exit(self, worker: Worker) -> None:
        """A forked worker ended, or its server could not fork it: say why in the latter case,
        as a failed exec would. One whose server was up and then died before forking it is
        exec'd instead: the worker never ran, and neither its env nor its actor is to blame (a
        server that never came up says more about the env; one the node ended as stuck has a
        start_error already)."""
        proc = worker.proc
        if proc.pid is None and proc.error is None and proc.server.answered and \
                worker.start_error is None and worker.state is WorkerState.STARTING:
            try:
                worker.proc = self._exec(worker, self._process_env(worker),
                                         worker.env.launch.cwd or self._cwd)
                return
            except WorkerStartError as e:
                worker.start_error, worker.refused = str(e), not e.env_broken
        if proc.pid is None and worker.start_error is None:
            if proc.error is not None:
                worker.start_error = out_of_resources(proc.error) or (
                    f"cannot fork a worker: {proc.error.strerror}")
                worker.refused = True  # the machine's doing, not the env's
            else:
                worker.start_error = (
                    f"its fork server exited "
                    f"({exit_description(proc.server.proc.returncode)}) before forking it; "
                    f"command: {' '.join(worker.env.launch.py_executable)} {BOOT_SCRIPT}; its "
                    f"output is above in the driver's stderr")
        self._on_exit(worker)

    def connected(self, wid: str) -> Worker | None:
        """The starting worker that just said hello, or None for a stranger or a late one."""
        worker = self.workers.get(wid)
        if worker is None or worker.state is not WorkerState.STARTING:
            return None
        self.starting.pop(worker, None)
        return worker

    def send(self, worker: Worker, message: Message) -> None:
        if worker.conn is not None:
            self.io.send(worker.conn, message)

    def run(self, worker: Worker, task: TaskSpec, gpu_ids: list[int] | None = None) -> None:
        """Send a task, with its function the first time this worker needs it."""
        if worker.conn is None:
            return
        self.log.running(task, worker)
        func = None
        if task.func_id is not None and task.func_id not in worker.known_funcs:
            worker.known_funcs.add(task.func_id)
            func = self.functions[task.func_id]
        deps = {oid: self.store[oid][1] for oid in task.deps}
        self.io.send(worker.conn, Run(task, func, deps, gpu_ids))

    def retire(self, worker: Worker) -> None:
        """Ask a worker to exit; its exit is handled as expected, not as a crash."""
        worker.state = WorkerState.LEAVING
        self.send(worker, Exit())

    def kill(self, worker: Worker) -> None:
        worker.state = WorkerState.LEAVING
        _kill_tree(worker.proc)

    def exited(self, worker: Worker) -> str:
        """Forget a worker whose process ended; how it ended, in words."""
        code = worker.proc.wait()
        worker.state = WorkerState.DEAD
        self.workers.pop(worker.id, None)
        self.starting.pop(worker, None)
        if worker.conn is not None:
            self.io.close(worker.conn)
        for request in worker.requests.values():
            request.cancel()
        worker.requests.clear()
        how = exit_description(code)
        self.log.worker_exited(worker, how)
        return how

    def end_overdue(self) -> float | None:
        """Kill the workers that did not connect in time (their exits are failed starts, with
        the reason in `start_error`); the seconds until the next deadline, None if none."""
        if not self.starting:
            return None
        now, soonest = time.monotonic(), None
        for worker, deadline in list(self.starting.items()):
            if deadline <= now:
                del self.starting[worker]
                worker.start_error = (
                    f"the worker did not connect to the node within {register_timeout():g} s "
                    f"(MINRAY_WORKER_REGISTER_TIMEOUT_SECONDS); its command: "
                    f"{' '.join(worker.env.launch.py_executable)} {BOOT_SCRIPT}")
                if worker.proc.pid is None:  # its fork server has not forked it: it is stuck
                    worker.proc.server.kill()
                else:
                    processes.kill_tree(worker.proc.pid, wait=0)
            elif soonest is None or deadline - now < soonest:
                soonest = deadline - now
        return soonest

    def poll_exits(self) -> list[Worker]:
        """Without pidfds: the workers whose process has ended."""
        return [w for w in list(self.workers.values()) if w.proc.poll() is not None]

    def all_processes(self) -> list:
        return processes.trees([w.proc.pid for w in self.workers.values()
                                if w.proc.pid is not None])


def _kill_tree(proc: subprocess.Popen | ForkedProcess) -> None:
    if proc.pid is None:  # a fork not made yet: it is killed when it is
        proc.kill()
    else:
        processes.kill_tree(proc.pid, wait=0)


REGISTER_TIMEOUT_VARS = ("MINRAY_WORKER_REGISTER_TIMEOUT_SECONDS",
                         "RAY_worker_register_timeout_seconds")


def register_timeout() -> float:
    """How long a new worker may take to connect (Ray's default: 60 s)."""
    for var in REGISTER_TIMEOUT_VARS:
        if os.environ.get(var):
            return float(os.environ[var])
    return 60.0


def exit_description(code: int | None) -> str:
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
