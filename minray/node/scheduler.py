"""The scheduler: per-env task queues, the CPU ledger, dispatch and eviction.

A queued task runs on an idle worker of its env, or on a new one while the node has CPUs to
spare; a full node evicts an idle worker of another env to make room. A worker holds its task's
CPUs while the task runs, and lends them out while the task is blocked in get/wait, so nested
tasks cannot deadlock a full node.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from minray import exceptions as exc
from minray.node.ledger import ResourceLedger
from minray.node.state import EnvState, Worker, WorkerState
from minray.node.store import ObjectStore
from minray.node.workers import WorkerPool, WorkerStartError
from minray.task import TaskSpec


class CpuLedger:
    """How many of the node's CPUs workers hold; the one place that counts them."""

    def __init__(self, total: int):
        self.total = total
        self.used = 0.0

    def fits(self, cpus: float) -> bool:
        return cpus == 0 or self.used + cpus <= self.total

    def take(self, worker: Worker, cpus: float) -> None:
        """The worker holds `cpus` now (replacing what it held)."""
        self.used += cpus - worker.cpus
        worker.cpus = cpus

    def give_back(self, worker: Worker) -> None:
        self.used -= worker.cpus
        worker.cpus = 0


class Scheduler:
    def __init__(self, pool: WorkerPool, store: ObjectStore, num_cpus: int, *,
                 fail_env: Callable[[EnvState, exc.RuntimeEnvSetupError], None],
                 totals: dict[str, float] | None = None):
        self.pool = pool
        self.store = store
        self.cpus = CpuLedger(num_cpus)
        self.extra = ResourceLedger(totals or {})  # GPUs, memory, custom resources
        self.queues: dict[EnvState, collections.deque[TaskSpec]] = {}
        self._fail_env = fail_env

    def enqueue(self, task: TaskSpec, env: EnvState, *, first: bool = False) -> None:
        queue = self.queues.setdefault(env, collections.deque())
        if first:  # a retry goes ahead of the tasks queued after it
            queue.appendleft(task)
        else:
            queue.append(task)

    def queued(self) -> list[TaskSpec]:
        return [task for queue in self.queues.values() for task in queue]

    def remove(self, task: TaskSpec) -> bool:
        """Take a queued task out (it was cancelled); False if it is not queued."""
        for queue in self.queues.values():
            if task in queue:
                queue.remove(task)
                return True
        return False

    def drop(self, env: EnvState) -> collections.deque[TaskSpec]:
        """Take an env's queued tasks out, to fail them."""
        return self.queues.pop(env, collections.deque())

    def schedule(self) -> None:
        """Give queued tasks to idle workers of their env; start workers while CPUs allow."""
        for env, queue in list(self.queues.items()):
            if env.error is not None:
                self._fail_env(env, env.error)
                continue
            if env.launch is None:
                continue  # still being prepared
            idle, starting = self.pool.idle_and_starting(env)
            while queue:
                if idle:
                    if not self.fits(queue[0]):
                        break
                    self.dispatch(idle.pop(), queue.popleft())
                elif starting < len(queue) and self._room_for_worker(env):
                    try:
                        self.pool.start(env)
                    except WorkerStartError as e:
                        self.start_failed(env, str(e), env_broken=e.env_broken)
                        break
                    starting += 1
                else:
                    break
            if not queue:
                self.queues.pop(env, None)

    def start_failed(self, env: EnvState, reason: str, *, env_broken: bool) -> None:
        """A worker for the env's queue could not start. A broken env fails all it has; a
        machine out of resources fails the first queued task, so nothing retries forever."""
        if env_broken:
            self._fail_env(env, exc.RuntimeEnvSetupError(reason))
            return
        queue = self.queues.get(env)
        if queue:
            task = queue.popleft()
            self.store.fail(task, exc.WorkerCrashedError(
                f"no worker could be started for {task.name}: {reason}"))

    def fits(self, task: TaskSpec) -> bool:
        """The node has what the task asks for free now."""
        return self.cpus.fits(task.num_cpus) and (task.resources is None
                                                  or self.extra.fits(task.resources))

    def dispatch(self, worker: Worker, task: TaskSpec) -> None:
        worker.state, worker.task = WorkerState.BUSY, task
        self.cpus.take(worker, task.num_cpus)
        if task.resources is not None:
            worker.holding = self.extra.take(task.resources)
            self.pool.run(worker, task, worker.holding.gpu_ids)
        else:
            self.pool.run(worker, task)

    def finished(self, worker: Worker) -> TaskSpec:
        """A task worker is done with its task: it is idle again. Returns the task."""
        task = worker.task
        self.cpus.give_back(worker)
        if worker.holding is not None:
            self.extra.give_back(worker.holding)
            worker.holding = None
        worker.task = None
        if worker.state is WorkerState.BUSY:
            worker.state = WorkerState.IDLE
        return task

    def blocked(self, worker: Worker) -> None:
        """The worker's task waits in get/wait: lend its CPUs out."""
        self.cpus.give_back(worker)

    def unblocked(self, worker: Worker) -> None:
        """The worker's task runs again: it takes its CPUs back (over the total if it must:
        the task cannot wait for them while holding a worker)."""
        if worker.task is not None and not worker.requests:
            self.cpus.take(worker, worker.task.num_cpus)

    def _room_for_worker(self, env: EnvState) -> bool:
        """True if a new task worker may start, evicting an idle one of another env if the
        node already has `num_cpus` of them."""
        running = [w for w in self.pool
                   if w.actor is None and w.alive and not (w.task and w.requests)]
        busy = self.cpus.used + sum(1 for w in running if w.state is WorkerState.STARTING)
        if busy >= self.cpus.total:
            return False
        if len(running) >= self.cpus.total:
            victims = [w for w in running if w.state is WorkerState.IDLE and w.env is not env]
            if not victims:
                return False
            self.pool.retire(victims[0])
        return True
