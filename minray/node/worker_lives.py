"""A worker's life as the node sees it (under the node's lock, on the I/O thread): it
connected (or its setup hook failed), the node refused it, or its process ended, which retries
or fails what it was running."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from minray import exceptions as exc
from minray.node.launch import BOOT_SCRIPT
from minray.node.state import EndedWorker, Worker, WorkerState
from minray.node.workers import out_of_resources
from minray.protocol import Hello

if TYPE_CHECKING:
    from minray.node.io_loop import Connection
    from minray.node.node import Node


class WorkerLives:
    def __init__(self, node: Node):
        self._node = node

    def connected(self, conn: Connection, hello: Hello) -> Worker | None:
        """A worker said hello: it is idle or its actor starts, unless its setup hook failed."""
        node = self._node
        worker = node.pool.connected(hello.worker_id)
        if worker is None:
            return None
        worker.conn = conn
        if hello.setup_error is not None:  # its worker_process_setup_hook raised
            node.pool.retire(worker)
            node.fail_env(worker.env, exc.RuntimeEnvSetupError(
                f"runtime_env field 'worker_process_setup_hook' failed in a new worker:\n"
                f"{hello.setup_error}"))
            return worker
        worker.env.connected = True
        node.log.worker_connected(worker)
        if worker.actor is not None:
            node.actors.connected(worker)
        else:
            worker.state = WorkerState.IDLE
            node.schedule()
        return worker

    def exited(self, worker: Worker) -> None:
        """A worker process ended: retry or fail what it was running."""
        node = self._node
        if worker.state is WorkerState.DEAD:
            return
        was = worker.state
        how = node.pool.exited(worker)
        node.pool.ended.append(EndedWorker(worker.id, worker.proc.pid, _exit_type(worker, was),
                                           how, time.time()))
        node.actors.worker_gone(worker, crashed=was is not WorkerState.LEAVING)
        if was is WorkerState.STARTING:
            self._start_failed(worker, how)
        elif worker.actor is not None:
            node.actors.worker_exited(worker, how)
        elif worker.task is not None:
            task = node.scheduler.finished(worker)
            cancelled = node.cancels.crashed(task)
            removed = node.groups.removed_error(task)  # its group's removal killed it
            if cancelled is not None:
                node.store.fail(task, cancelled)
            elif removed is not None:
                node.store.fail(task, removed)
            elif task.max_retries < 0 or task.attempts < task.max_retries:
                task.attempts += 1
                node.log.queued(task, worker.env)
                node.scheduler.enqueue(task, worker.env, first=True)
            else:
                node.store.fail(task, exc.WorkerCrashedError(
                    f"the worker running {task.name} died ({how}); retried {task.attempts} "
                    f"time(s) (max_retries={task.max_retries})"))
        node.schedule()

    def _start_failed(self, worker: Worker, how: str) -> None:
        """A worker ended before it connected. An env that never connected a worker is broken,
        unless the node itself refused the connection; otherwise only this worker is lost."""
        node = self._node
        env = worker.env
        reason = worker.start_error or (
            f"the worker process exited ({how}) before connecting to the node; command: "
            f"{' '.join(env.launch.py_executable)} {BOOT_SCRIPT}; its output is above in the "
            f"driver's stderr")
        env_broken = not (env.connected or worker.refused)
        if worker.actor is not None and not env_broken:
            node.actors.worker_exited(worker, reason)
        else:
            node.scheduler.start_failed(env, reason, env_broken=env_broken)

    def refused(self, wid: str, error: OSError) -> None:
        """The node could not take the worker's connection (out of descriptors): its start
        failed for that reason, and its env is not to blame."""
        node = self._node
        worker = node.pool.workers.get(wid)
        if worker is not None:
            worker.start_error = out_of_resources(error) or str(error)
            worker.refused = True


def _exit_type(worker: Worker, was: WorkerState) -> str:
    """How a worker ended, in Ray's words: an actor's end is the user's doing (kill,
    exit_actor, its last handle dropped), a worker the node let go is the system's, and any
    other end is a crash."""
    actor = worker.actor
    if actor is not None and (actor.ending is not None or was is WorkerState.LEAVING):
        return "INTENDED_USER_EXIT"
    if was is WorkerState.LEAVING:
        return "INTENDED_SYSTEM_EXIT"
    return "SYSTEM_ERROR"
