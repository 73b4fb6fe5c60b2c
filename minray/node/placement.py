"""Placement groups on this one node: bundles reserved from the node's CPUs, each a CPU ledger
of its own that the tasks and actors placed in it draw from.

A group is PENDING until the node has its CPUs free; then it takes them from the node's ledger
at once (all bundles or none, as Ray) and is CREATED: only what is placed in its bundles uses
those CPUs from then on. Every strategy puts all bundles here. A group this node could never
hold (more of a resource than the node has, STRICT_SPREAD over several bundles, which needs a
node per bundle) is infeasible: it stays PENDING, as in Ray, with a warning on stderr, and a
task or actor placed in it is refused at `.remote()` rather than left waiting forever. Other
resources in bundles (GPUs, memory, custom) count for feasibility and for what fits in a bundle,
but are not set aside: tasks in the group take them from the node like any task.
Removing a group frees its CPUs and ends what ran or waited in it, as Ray: queued tasks and
ready() refs fail, running tasks' workers and the group's actors are killed.
"""

from __future__ import annotations

import sys

import cloudpickle

from minray import exceptions as exc
from minray.node.actors import Actors
from minray.node.scheduler import CpuLedger, Scheduler
from minray.node.state import Actor, Worker
from minray.node.store import ObjectStore
from minray.node.workers import WorkerPool
from minray.placement_calls import (
    CreateGroup,
    FindGroups,
    GroupRecord,
    PlacementRequest,
    RemoveGroup,
    WatchReady,
)
from minray.task import ACTOR, Placement, TaskSpec

PENDING, CREATED, REMOVED = "PENDING", "CREATED", "REMOVED"


class AnyBundle:
    """A group's bundles as one pool, for tasks that may run in any of them: each takes its CPUs
    from the first bundle with room."""

    def __init__(self, bundles: list[CpuLedger]):
        self.bundles = bundles
        self.total = sum(b.total for b in bundles)

    @property
    def used(self) -> float:
        return sum(b.used for b in self.bundles)

    def fits(self, cpus: float) -> bool:
        return any(b.fits(cpus) for b in self.bundles)

    def take(self, holder: Worker | Actor, cpus: float) -> None:
        next(b for b in self.bundles if b.fits(cpus)).take(holder, cpus)


class Group:
    """A placement group: what was asked, its state, its bundles' ledgers, ready refs waiting."""

    __slots__ = ("request", "state", "bundles", "any", "cpus", "infeasible", "watchers")

    def __init__(self, request: CreateGroup, infeasible: str | None):
        self.request = request
        self.state = PENDING
        self.bundles = [CpuLedger(b.get("CPU", 0.0)) for b in request.bundles]
        self.any = AnyBundle(self.bundles)
        self.cpus = self.any.total
        self.infeasible = infeasible  # why this node can never hold it, if it cannot
        self.watchers: list[WatchReady] = []  # ready() refs to store once it is created

    @property
    def id(self) -> str:
        return self.request.group_id

    @property
    def created(self) -> bool:
        return self.state == CREATED

    def pool(self, bundle_index: int) -> CpuLedger | AnyBundle:
        return self.any if bundle_index < 0 else self.bundles[bundle_index]

    def record(self) -> GroupRecord:
        r = self.request
        scheduling = {CREATED: "FINISHED", REMOVED: "REMOVED"}.get(
            self.state, "INFEASIBLE" if self.infeasible else "PENDING")
        return GroupRecord(r.group_id, r.name, [dict(b) for b in r.bundles], r.strategy,
                           self.state, scheduling, self.infeasible)


class PlacementGroups:
    """The session's groups (removed ones stay listed, as in Ray's table)."""

    def __init__(self, store: ObjectStore, scheduler: Scheduler, pool: WorkerPool,
                 actors: Actors, totals: dict[str, float]):
        self.store = store
        self.scheduler = scheduler
        self.pool = pool
        self.actors = actors
        self.node = scheduler.cpus
        self.totals = totals  # what the node has besides CPUs
        self.groups: dict[str, Group] = {}
        self.pending: list[Group] = []  # feasible groups waiting for CPUs, oldest first

    # ------------------------------------------------------------------ requests
    def handle(self, request: PlacementRequest):
        """A request from the API (the driver's, or a worker's): its answer."""
        match request:
            case CreateGroup():
                self.create(request)
            case RemoveGroup():
                self.remove(request)
            case WatchReady():
                self.watch(request)
            case FindGroups():
                return self.find(request)
            case _:
                raise TypeError(f"not a placement group request: {request!r}")
        return None

    def create(self, request: CreateGroup) -> None:
        if request.group_id in self.groups:
            raise ValueError(f"placement group {request.group_id} already exists")
        if request.name and self._named(request.name, request.namespace) is not None:
            raise ValueError(f"a placement group named {request.name!r} already exists in "
                             f"namespace {request.namespace!r}; remove it first, or look it up "
                             f"with get_placement_group({request.name!r})")
        group = Group(request, self._infeasible(request))
        self.groups[group.id] = group
        if group.infeasible:
            print(f"minray: placement group {group.id} can never be placed on this node: "
                  f"{group.infeasible}. It stays pending: ready() never resolves and wait() "
                  f"returns False", file=sys.stderr)
        else:
            self.pending.append(group)

    def find(self, query: FindGroups) -> list[GroupRecord]:
        if query.group_id is not None:
            groups = [self.groups[query.group_id]] if query.group_id in self.groups else []
        elif query.name is not None:
            groups = [g for g in (self._named(query.name, query.namespace),) if g is not None]
        else:
            groups = list(self.groups.values())
        return [g.record() for g in groups]

    def watch(self, request: WatchReady) -> None:
        group = self._group(request.group_id)
        if group.state == CREATED:
            self.store.store(request.object_id, (True, request.value))
        elif group.state == REMOVED:
            self.store.store(request.object_id, (False, cloudpickle.dumps(_removed(group))))
        else:
            group.watchers.append(request)

    def remove(self, request: RemoveGroup) -> None:
        """Free a group's CPUs and end what ran or waited in it (nothing if it was removed
        already): its queued tasks and ready() refs fail, the workers running its tasks are
        killed (their exits fail them, see `removed_error`), and so are its actors."""
        group = self._group(request.group_id)
        if group.state == REMOVED:
            return
        if group.state == CREATED:
            self.node.used -= group.cpus
        elif group in self.pending:
            self.pending.remove(group)
        group.state = REMOVED
        error = _removed(group)
        for watcher in group.watchers:
            self.store.store(watcher.object_id, (False, cloudpickle.dumps(error)))
        group.watchers.clear()
        for task in self.scheduler.drop_group(group):
            self.store.fail(task, error)
        for worker in list(self.pool):
            if worker.actor is None and worker.alive and _in(worker.task, group):
                self.pool.kill(worker)
        for actor in list(self.actors.actors.values()):
            if _in(actor.spec, group):
                self.end_actor(actor.spec, f"its placement group {group.id} was removed")

    def end_actor(self, spec: TaskSpec, why: str) -> None:
        """An actor placed where it can no longer be (its group removed, or never there)."""
        self.actors.kill(spec.actor_id, no_restart=True, why=why,
                         error=exc.ActorPlacementGroupRemoved)

    # ------------------------------------------------------------------ for the scheduler
    def reserve_pending(self) -> None:
        """Give CPUs to the groups waiting for them, oldest first, each all at once."""
        for group in list(self.pending):
            if self.node.fits(group.cpus):
                self.node.used += group.cpus
                self.pending.remove(group)
                group.state = CREATED
                for watcher in group.watchers:
                    self.store.store(watcher.object_id, (True, watcher.value))
                group.watchers.clear()
                self.actors.start_waiting()  # those placed in it

    def placed(self, placement: Placement) -> tuple[Group | None, CpuLedger | AnyBundle | None]:
        """A placement's group and the pool its CPUs come from; (None, None) for a group
        this session never had."""
        group = self.groups.get(placement.group_id)
        return (None, None) if group is None else (group, group.pool(placement.bundle_index))

    def removed_error(self, spec: TaskSpec) -> exc.TaskPlacementGroupRemoved | None:
        """The error for a task whose group was removed; None if it was not."""
        group = None if spec.placement is None else self.groups.get(spec.placement.group_id)
        if group is None or group.state != REMOVED:
            return None
        return _removed(group)

    def problem(self, spec: TaskSpec) -> str | None:
        """Why a task or actor could never be placed where it asks, or None if it can be."""
        p = spec.placement
        group = self.groups.get(p.group_id)
        what = f"{'actor' if spec.kind == ACTOR else 'task'} {spec.name}"
        if group is None:
            return (f"cannot schedule {what}: placement group {p.group_id} does not exist in "
                    f"this session (was it created before minray.shutdown()?)")
        if group.infeasible:
            return (f"cannot schedule {what} in placement group {group.id}: the group can never "
                    f"be placed on this node ({group.infeasible})")
        sizes = [b.total for b in group.bundles]
        if not -1 <= p.bundle_index < len(sizes):
            return (f"placement group bundle index {p.bundle_index} is invalid. Valid placement "
                    f"group indexes: 0-{len(sizes) - 1}, or -1 for any")
        bundles = group.request.bundles
        room = bundles if p.bundle_index < 0 else [bundles[p.bundle_index]]
        asked = {"CPU": p.cpus, **(spec.resources or {})}
        if not any(all(b.get(k, 0.0) >= v for k, v in asked.items() if v) for b in room):
            which = "any bundle" if p.bundle_index < 0 else f"bundle {p.bundle_index}"
            default = (" (an actor needs 1 CPU to be placed unless num_cpus says otherwise, "
                       "as in Ray)" if spec.kind == ACTOR else "")
            needs = ", ".join(f"{v:g} {k}" for k, v in asked.items() if v) or "nothing"
            return (f"cannot schedule {what} in placement group {group.id}: it needs {needs}"
                    f"{default}, more than {which} holds; the bundles are {bundles}")
        return None

    # ------------------------------------------------------------------ inside
    def _group(self, group_id: str) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            raise ValueError(f"placement group {group_id} does not exist in this session (was "
                             f"it created before minray.shutdown()?)")
        return group

    def _named(self, name: str, namespace: str) -> Group | None:
        for group in self.groups.values():
            r = group.request
            if r.name == name and r.namespace == namespace and group.state != REMOVED:
                return group
        return None

    def _infeasible(self, request: CreateGroup) -> str | None:
        if request.strategy == "STRICT_SPREAD" and len(request.bundles) > 1:
            return (f"STRICT_SPREAD needs a node for each of its {len(request.bundles)} "
                    f"bundles, and minray has one node")
        needs: dict[str, float] = {}
        for bundle in request.bundles:
            for name, amount in bundle.items():
                needs[name] = needs.get(name, 0.0) + amount
        has = {**self.totals, "CPU": float(self.node.total)}
        for name, amount in needs.items():
            if amount > has.get(name, 0.0) + 1e-9:
                return (f"its bundles need {amount:g} {name} and the node has "
                        f"{has.get(name, 0.0):g}")
        return None


def _in(spec: TaskSpec | None, group: Group) -> bool:
    return (spec is not None and spec.placement is not None
            and spec.placement.group_id == group.id)


def _removed(group: Group) -> exc.TaskPlacementGroupRemoved:
    return exc.TaskPlacementGroupRemoved(f"placement group {group.id} was removed")
