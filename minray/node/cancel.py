"""Cancelling tasks, as Ray's `cancel` does on one node.

A task not yet running never runs; a running one gets KeyboardInterrupt (SIGINT), or with
`force=True` its worker is killed; either way `get` raises TaskCancelledError (with force,
WorkerCrashedError) and nothing is retried. An actor's call not yet running never runs; a
running one is not interrupted (an actor has state) but sees `is_canceled()`. With
`recursive=True` the tasks a cancelled task started are cancelled too.

Which task a worker is told to stop is never in doubt: the node leaves a mark for the task
(minray/cancel_marks.py) before it signals, and the worker's SIGINT handler raises only if the
task it runs has a mark (its previous task may have just ended). Marks go once the task does.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from minray import exceptions as exc
from minray.cancel_marks import Marks
from minray.node.actors import Actors
from minray.node.scheduler import Scheduler
from minray.node.state import Worker
from minray.node.store import ObjectStore, error_result
from minray.node.workers import WorkerPool
from minray.task import CALL, Result, TaskSpec


class Cancels:
    def __init__(self, session_dir: Path, pool: WorkerPool, scheduler: Scheduler,
                 actors: Actors, store: ObjectStore, *, pending: dict[str, TaskSpec],
                 fail_pending: Callable[[TaskSpec, BaseException], None]):
        self.marks = Marks(session_dir)
        self.pool, self.scheduler, self.actors, self.store = pool, scheduler, actors, store
        self.pending = pending  # tasks waiting for their arguments, by id (the node's)
        self._fail_pending = fail_pending
        self.cancelled: dict[str, str] = {}  # running tasks told to stop -> their names
        self.children: dict[str, list[TaskSpec]] = {}  # task id -> tasks it started

    def started_by(self, parent: TaskSpec | None, child: TaskSpec) -> None:
        if parent is not None:
            self.children.setdefault(parent.task_id, []).append(child)

    def cancel(self, object_id: str, *, force: bool, recursive: bool) -> None:
        task = self._find(object_id)
        if task is None:
            return  # finished already, or never existed: nothing to do, as in Ray
        if force and task.kind == CALL:
            raise ValueError("cancel(force=True) is not supported for actor calls: an actor "
                             "has state; use kill(actor) to stop the actor")
        self._cancel(task, force, recursive)

    def finished(self, task_id: str, results: list[Result]) -> list[Result]:
        """A task or call ended: its results, or TaskCancelledError if it was told to stop."""
        self.children.pop(task_id, None)
        name = self.cancelled.pop(task_id, None)
        if name is None:
            return results
        self.marks.unmark(task_id)
        return [error_result(exc.TaskCancelledError(f"task {name} was cancelled"))
                ] * len(results)

    def crashed(self, task: TaskSpec) -> exc.RayError | None:
        """A task's worker died: the error to fail it with if a cancel killed it (no retry)."""
        self.children.pop(task.task_id, None)
        if self.cancelled.pop(task.task_id, None) is None:
            return None
        self.marks.unmark(task.task_id)
        return exc.WorkerCrashedError(f"task {task.name} was cancelled, and its worker was "
                                      f"killed (force=True)")

    # ------------------------------------------------------------------ inside
    def _cancel(self, task: TaskSpec, force: bool, recursive: bool) -> None:
        if recursive:
            for child in self.children.pop(task.task_id, ()):
                self._cancel(child, force and child.kind != CALL, True)
        if task.task_id in self.cancelled:
            return
        error = exc.TaskCancelledError(f"task {task.name} was cancelled")
        if self.pending.pop(task.task_id, None) is not None:
            self._fail_pending(task, error)
        elif self.scheduler.remove(task):
            self.store.fail(task, error)
        elif task.kind == CALL:
            if not self.actors.cancel_queued(task, error):
                self.marks.mark(task.task_id)  # running: it may check is_canceled()
                self.cancelled[task.task_id] = task.name
                self.actors.cancel_running(task)  # an async actor cancels its asyncio task
        else:
            worker = self._running(task)
            if worker is None:
                return
            self.cancelled[task.task_id] = task.name
            self.marks.mark(task.task_id)
            if force:
                self.pool.kill(worker)
            else:
                os.kill(worker.proc.pid, signal.SIGINT)

    def _find(self, object_id: str) -> TaskSpec | None:
        """The unfinished task that returns `object_id`, wherever it is."""
        candidates = [*self.pending.values(), *self.scheduler.queued(),
                      *(w.task for w in self.pool if w.task is not None),
                      *self.actors.unfinished_calls()]
        for task in candidates:
            if object_id in task.return_ids:
                return task
        return None

    def _running(self, task: TaskSpec) -> Worker | None:
        for worker in self.pool:
            if worker.task is task:
                return worker
        return None

