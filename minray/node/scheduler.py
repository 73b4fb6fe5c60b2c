"""The scheduler: per-env task queues, the CPU ledger, dispatch and eviction.

A queued task runs on an idle worker of its env, or on a new one while the node has CPUs to
spare; a full node evicts an idle worker of another env to make room. A worker holds its task's
CPUs while the task runs, and lends them out while the task is blocked in get/wait, so nested
tasks cannot deadlock a full node.

Tasks placed in a placement group's bundles queue apart (per env and bundle, or "any bundle"),
run once their group is created, and take their CPUs from their bundle's ledger, which the group
reserved from the node's (minray.node.placement).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import TYPE_CHECKING

from minray import exceptions as exc
from minray.node.ledger import ResourceLedger
from minray.node.state import EnvState, Worker, WorkerState
from minray.node.store import ObjectStore
from minray.node.workers import WorkerPool, WorkerStartError
from minray.task import TaskSpec

if TYPE_CHECKING:
    from minray.node.placement import AnyBundle, Group, PlacementGroups


class CpuLedger:
    """How many of the node's CPUs (or a placement group bundle's) workers hold; the one place
    that counts them."""

    def __init__(self, total: int):
        self.total = total
        self.used = 0.0

    def fits(self, cpus: float) -> bool:
        return cpus == 0 or self.used + cpus <= self.total

    def take(self, worker: Worker, cpus: float) -> None:
        """The worker (or actor) holds `cpus` of this ledger now (replacing what it held)."""
        self.used += cpus - worker.cpus
        worker.cpus = cpus
        worker.ledger = self

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
        # tasks in placement groups, per env and (group, bundle index or -1 for any)
        self.placed: dict[tuple[EnvState, Group, int], collections.deque[TaskSpec]] = {}
        self.placement: PlacementGroups | None = None  # set by the node
        self._fail_env = fail_env

    def enqueue(self, task: TaskSpec, env: EnvState, *, first: bool = False) -> None:
        if task.placement is None:
            queue = self.queues.setdefault(env, collections.deque())
        else:
            removed = self.placement.removed_error(task)
            if removed is not None:
                self.store.fail(task, removed)
                return
            group, _ = self.placement.placed(task.placement)
            key = (env, group, task.placement.bundle_index)
            queue = self.placed.setdefault(key, collections.deque())
        if first:  # a retry goes ahead of the tasks queued after it
            queue.appendleft(task)
        else:
            queue.append(task)

    def queued(self) -> list[TaskSpec]:
        return [task for queue in (*self.queues.values(), *self.placed.values())
                for task in queue]

    def remove(self, task: TaskSpec) -> bool:
        """Take a queued task out (it was cancelled); False if it is not queued."""
        for queue in (*self.queues.values(), *self.placed.values()):
            if task in queue:
                queue.remove(task)
                return True
        return False

    def drop(self, env: EnvState) -> list[TaskSpec]:
        """Take an env's queued tasks out, to fail them."""
        tasks = list(self.queues.pop(env, ()))
        for key in [k for k in self.placed if k[0] is env]:
            tasks += self.placed.pop(key)
        return tasks

    def drop_group(self, group: Group) -> list[TaskSpec]:
        """Take the queued tasks of a placement group out, to fail them."""
        tasks = []
        for key in [k for k in self.placed if k[1] is group]:
            tasks += self.placed.pop(key)
        return tasks

    def pool_for(self, spec: TaskSpec) -> CpuLedger | AnyBundle | None:
        """Where a task's or actor's CPUs come from: the node's ledger, or its placement
        group's bundle(s); None while its group waits for its CPUs."""
        if spec.placement is None:
            return self.cpus
        group, pool = self.placement.placed(spec.placement)
        return pool if group is not None and group.created else None

    def schedule(self) -> None:
        """Give queued tasks to idle workers of their env; start workers while CPUs allow."""
        if self.placement is not None and self.placement.pending:  # groups take CPUs first
            self.placement.reserve_pending()
        for env, queue in list(self.queues.items()):
            if env.error is not None:
                self._fail_env(env, env.error)
                continue
            if env.launch is None:
                continue  # still being prepared
            self._drain(env, queue, self.cpus)
            if not queue:
                self.queues.pop(env, None)
        for key, queue in list(self.placed.items()):
            env, group, index = key
            if self.placed.get(key) is not queue or not group.created:
                continue  # failed meanwhile, or its group waits for CPUs
            if env.error is not None:
                self._fail_env(env, env.error)
                continue
            if env.launch is not None:
                self._drain(env, queue, group.pool(index))
                if not queue:
                    self.placed.pop(key, None)

    def _drain(self, env: EnvState, queue: collections.deque[TaskSpec],
               pool: CpuLedger | AnyBundle) -> None:
        """Dispatch the queue's tasks while idle workers and the pool's CPUs allow; start
        workers for the rest while there is room."""
        idle, starting = self.pool.idle_and_starting(env)
        while queue:
            if idle:
                if not self.fits(queue[0], pool):
                    break
                self.dispatch(idle.pop(), queue.popleft(), pool)
            elif starting < len(queue) and self._room_for_worker(env, pool):
                try:
                    self.pool.start(env).ledger = pool
                except WorkerStartError as e:
                    self.start_failed(env, str(e), env_broken=e.env_broken)
                    break
                starting += 1
            else:
                break

    def start_failed(self, env: EnvState, reason: str, *, env_broken: bool) -> None:
        """A worker for the env's queue could not start. A broken env fails all it has; a
        machine out of resources fails the first queued task, so nothing retries forever."""
        if env_broken:
            self._fail_env(env, exc.RuntimeEnvSetupError(reason))
            return
        queues = [self.queues.get(env), *(q for k, q in self.placed.items() if k[0] is env)]
        queue = next((q for q in queues if q), None)
        if queue:
            task = queue.popleft()
            self.store.fail(task, exc.WorkerCrashedError(
                f"no worker could be started for {task.name}: {reason}"))

    def fits(self, task: TaskSpec, pool: CpuLedger | AnyBundle) -> bool:
        """The pool (the node's CPUs, or a bundle's) and the node have what the task or
        actor asks for free now."""
        return pool.fits(task.num_cpus) and (not task.resources
                                             or self.extra.fits(task.resources))

    def dispatch(self, worker: Worker, task: TaskSpec, pool: CpuLedger | AnyBundle) -> None:
        worker.state, worker.task = WorkerState.BUSY, task
        pool.take(worker, task.num_cpus)
        if task.resources is not None:
            worker.holding = self.extra.take(task.resources)
            self.pool.run(worker, task, worker.holding.gpu_ids)
        else:
            self.pool.run(worker, task)

    def finished(self, worker: Worker) -> TaskSpec:
        """A task worker is done with its task: it is idle again. Returns the task."""
        task = worker.task
        self._ledger(worker).give_back(worker)
        if worker.holding is not None:
            self.extra.give_back(worker.holding)
            worker.holding = None
        worker.task = None
        if worker.state is WorkerState.BUSY:
            worker.state = WorkerState.IDLE
        return task

    def blocked(self, worker: Worker) -> None:
        """The worker's task waits in get/wait: lend its CPUs out."""
        self._ledger(worker).give_back(worker)

    def unblocked(self, worker: Worker) -> None:
        """The worker's task runs again: it takes its CPUs back (over the total if it must:
        the task cannot wait for them while holding a worker)."""
        if worker.task is not None and not worker.requests:
            self._ledger(worker).take(worker, worker.task.num_cpus)

    def _ledger(self, worker: Worker) -> CpuLedger:
        """The ledger a worker's CPUs come from: the node's, or its task's bundle."""
        return worker.ledger or self.cpus

    def _room_for_worker(self, env: EnvState, pool: CpuLedger | AnyBundle) -> bool:
        """True if a new task worker may start for tasks drawing on `pool`, evicting an idle
        one of another env if the node already has `num_cpus` of them."""
        running = [w for w in self.pool
                   if w.actor is None and w.alive and not (w.task and w.requests)]
        starting = sum(1 for w in running if w.state is WorkerState.STARTING
                       and (w.ledger or self.cpus) is pool)
        if pool.used + starting >= pool.total:
            return False
        if len(running) >= self.cpus.total:
            victims = [w for w in running if w.state is WorkerState.IDLE and w.env is not env]
            if not victims:
                return False
            self.pool.retire(victims[0])
        return True
