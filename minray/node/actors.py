"""Actors: each on a worker of its own, created once its env is ready and its arguments
exist, its calls sent in order, restarted after its worker dies (`max_restarts`, with calls
retried up to `max_task_retries`), killed, or ended once no handle can reach it.

Who can reach an actor: handles alive in the driver (counted from `minray.handles` events),
workers that hold one (their `Handles` messages), unfinished tasks whose arguments hold one
(pins), and handles pickled into values (escaped: kept for the session). A detached actor lives
until the node shuts down; any other ends when none of these is left, or when the worker that
created it dies.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import TYPE_CHECKING

import cloudpickle

from minray import exceptions as exc
from minray import handles
from minray.node.ids import new_id
from minray.node.ledger import Holding
from minray.node.state import Actor, EnvState, Worker, WorkerState
from minray.node.store import ObjectStore
from minray.node.workers import WorkerPool, WorkerStartError
from minray.protocol import CancelCall
from minray.task import CALL, Result, TaskSpec

if TYPE_CHECKING:
    from minray.node.scheduler import Scheduler

TERMINATE = "__ray_terminate__"


class Actors:
    def __init__(self, pool: WorkerPool, store: ObjectStore, scheduler: Scheduler, *,
                 fail_env: Callable[[EnvState, exc.RuntimeEnvSetupError], None]):
        self.pool = pool
        self.store = store
        self.scheduler = scheduler  # its ledgers: an actor holds what it asks for, for life
        self.actors: dict[str, Actor] = {}
        self.waiting: list[Actor] = []  # not started: the resources they ask for are held
        self.names: dict[tuple[str, str], Actor] = {}  # (namespace, name) -> a live actor
        self.handle_events: collections.deque = collections.deque()  # the driver's handles
        self._fail_env = fail_env

    # ------------------------------------------------------------------ names
    def named(self, namespace: str, name: str) -> Actor | None:
        """The live actor of that name, if any."""
        actor = self.names.get((namespace, name))
        return actor if actor is not None and actor.ending is None else None

    def create(self, spec: TaskSpec, env: EnvState, owner: str | None) -> None:
        actor = Actor(spec.actor_id, spec, env, restarts_left=spec.max_restarts, owner=owner)
        if owner is not None:
            actor.holders.add(owner)  # its creator holds the first handle
        self.actors[actor.id] = actor
        creation = spec.actor
        if creation.name is not None:
            self.names[(creation.namespace, creation.name)] = actor
        self.pin_handles(spec.handles)
        self._start(actor)

    def call(self, spec: TaskSpec) -> None:
        actor = self.actors[spec.actor_id]
        if actor.dead is not None:
            self.store.fail(spec, actor.dead)
            return
        actor.queue.append(spec)
        self._pump(actor)

    # ------------------------------------------------------------------ envs and workers
    def env_ready(self, env: EnvState) -> None:
        for actor in self.actors.values():
            if actor.env is env and actor.worker is None and actor.dead is None:
                self._start(actor)

    def env_failed(self, env: EnvState) -> None:
        """The env cannot start workers: its actors that have not started die. Running ones go
        on: their workers are fine."""
        for actor in self.actors.values():
            running = actor.worker is not None and actor.worker.state is WorkerState.BUSY
            if actor.env is env and actor.dead is None and not running:
                self._died(actor, exc.ActorEnvSetupError(
                    f"actor {actor.name} could not start: {env.error}"), restart=False)

    def connected(self, worker: Worker) -> None:
        """The actor's worker said hello: create the instance once its arguments exist, then
        send the calls queued meanwhile."""
        actor, spec = worker.actor, worker.actor.spec
        worker.state = WorkerState.BUSY  # an actor's worker belongs to it

        def create() -> None:
            failed = self.store.failed_dep(spec)
            if failed is not None:
                cause = cloudpickle.loads(failed[1])
                self._died(actor, exc.ActorDiedError(
                    f"actor {actor.name} could not be created: an argument failed:\n{cause}"),
                    restart=False)
                return
            self.pool.run(worker, spec, actor.holding and actor.holding.gpu_ids)
            self._pump(actor)

        self.store.when_all_ready(spec.deps, create)

    def done(self, worker: Worker, task_id: str, results: list[Result]) -> None:
        actor = worker.actor
        if task_id == actor.spec.task_id:  # the creation task
            self.pool.log.ended(actor.spec, results, None)
            if not results[0][0]:
                cause = cloudpickle.loads(results[0][1])
                self._died(actor, exc.ActorDiedError(
                    f"actor {actor.name} failed in its constructor:\n{cause}"), restart=False)
            else:
                actor.created = True
                if actor.restarts_left == 0:  # no restart will unpickle its arguments again
                    held, actor.spec.handles = actor.spec.handles, None
                    self.unpin_handles(held)
            return
        call = actor.inflight.pop(task_id, None)
        if call is None:  # already failed when the actor died
            self.store.discard(results)
        else:
            self.store.complete(call, results)
            if actor.end_when_idle:
                self._pump(actor)

    def exiting(self, worker: Worker, reason: str) -> None:
        """The actor ends on purpose (exit_actor, __ray_terminate__): no restart, and calls
        not yet sent fail now."""
        actor = worker.actor
        actor.ending = actor.ending or reason
        actor.restarts_left = 0
        self._fail_queue(actor, exc.ActorDiedError(actor.ending))

    def worker_exited(self, worker: Worker, how: str) -> None:
        """The actor's process ended (`how`: why, in words): restart it if it may."""
        actor = worker.actor
        if actor.worker is not worker:
            return
        actor.worker = None
        if actor.dead is None:
            if actor.ending is not None:
                self._died(actor, exc.ActorDiedError(actor.ending), restart=False)
            else:
                self._died(actor, exc.ActorDiedError(
                    f"the worker of actor {actor.name} died ({how})"), restart=True)

    def worker_gone(self, worker: Worker, *, crashed: bool) -> None:
        """A worker process ended: it holds no handle any more, and the actors it created die
        with it if it crashed or was killed (unless detached). When the node retired it, they
        pass to the driver."""
        for actor in list(self.actors.values()):
            if actor.owner == worker.id:
                actor.owner = None
                if crashed and not actor.spec.actor.detached:
                    self.kill(actor.id, no_restart=True,
                              why=f"the worker that created it died ({worker.id})")
            if worker.id in actor.holders:
                actor.holders.discard(worker.id)
                self._end_if_unreachable(actor)

    def kill(self, actor_id: str, no_restart: bool, why: str = "it was killed by kill()",
             error: type[exc.ActorDiedError] = exc.ActorDiedError) -> None:
        actor = self.actors.get(actor_id)
        if actor is None or actor.dead is not None:
            return
        if no_restart:
            actor.restarts_left = 0
        if actor.worker is not None and actor.worker.state is not WorkerState.DEAD:
            self.pool.kill(actor.worker)
        if no_restart:
            self._died(actor, error(f"actor {actor.name} is dead: {why}"), restart=False)

    # ------------------------------------------------------------------ handles
    def handles_changed(self, worker: Worker, gained: list[str], lost: list[str],
                        escaped: list[str]) -> None:
        """A worker's `Handles` message."""
        for actor_id in gained:
            actor = self.actors.get(actor_id)
            if actor is not None:
                actor.holders.add(worker.id)
        for actor_id in escaped:
            actor = self.actors.get(actor_id)
            if actor is not None:
                actor.escaped = True
        for actor_id in lost:
            actor = self.actors.get(actor_id)
            if actor is not None:
                actor.holders.discard(worker.id)
                self._end_if_unreachable(actor)

    def pin_handles(self, actor_ids: list[str] | None) -> None:
        for actor_id in actor_ids or ():
            actor = self.actors.get(actor_id)
            if actor is not None:
                actor.pins += 1

    def unpin_handles(self, actor_ids: list[str] | None) -> None:
        for actor_id in actor_ids or ():
            actor = self.actors.get(actor_id)
            if actor is not None:
                actor.pins -= 1
                self._end_if_unreachable(actor)

    def collect_handles(self) -> None:
        """Count the driver's handles born and collected since last time; end the actors that
        nothing reaches any more."""
        events, dropped = self.handle_events, []
        while events:
            actor_id, delta = events.popleft()
            actor = self.actors.get(actor_id)
            if actor is None:
                continue
            if delta == handles.ESCAPED:
                actor.escaped = True
            else:
                actor.driver_handles += delta
                if delta == handles.DIED:
                    dropped.append(actor)
        for actor in dropped:
            self._end_if_unreachable(actor)

    def _end_if_unreachable(self, actor: Actor) -> None:
        """Nothing reaches the actor: end it once the calls already made are done (one of
        them may still hand out a handle to it, e.g. by returning its current_actor)."""
        if self._reachable(actor):
            return
        actor.end_when_idle = True
        self._pump(actor)

    def _reachable(self, actor: Actor) -> bool:
        if self.handle_events:
            self.collect_handles()  # a handle born meanwhile may still reach it
        return (actor.dead is not None or actor.ending is not None or actor.spec.actor.detached
                or actor.driver_handles > 0 or bool(actor.holders) or actor.pins > 0
                or actor.escaped)

    def terminate(self, actor: Actor, reason: str) -> None:
        """End an actor gracefully, after the calls queued before: as its __ray_terminate__."""
        actor.ending = reason
        actor.restarts_left = 0
        worker = actor.worker
        if not actor.queue and (worker is None or worker.state is WorkerState.STARTING):
            if worker is not None:  # nothing for it to do: no need to let it start
                self.pool.kill(worker)
            self._died(actor, exc.ActorDiedError(reason), restart=False)
            return
        actor.queue.append(TaskSpec(
            task_id=new_id(), name=f"{actor.name}.{TERMINATE}", kind=CALL, args=b"", deps=[],
            return_ids=[], actor_id=actor.id, method=TERMINATE))
        self._pump(actor)

    def unfinished_calls(self) -> list[TaskSpec]:
        return [call for actor in self.actors.values() if actor.dead is None
                for call in (*actor.queue, *actor.inflight.values())]

    def cancel_queued(self, call: TaskSpec, error: exc.RayError) -> bool:
        """Take a call that was not sent yet out of its actor's queue and fail it; False if
        it was sent already."""
        actor = self.actors.get(call.actor_id)
        if actor is None or call not in actor.queue:
            return False
        actor.queue.remove(call)
        self.store.fail(call, error)
        return True

    def cancel_running(self, call: TaskSpec) -> None:
        actor = self.actors.get(call.actor_id)
        if actor is not None and actor.worker is not None:
            self.pool.send(actor.worker, CancelCall(call.task_id))

    def start_waiting(self) -> None:
        """Resources were freed, or a placement group was created: start the actors that
        waited for them, oldest first."""
        waiting, self.waiting = self.waiting, []
        for actor in waiting:
            if actor.dead is None:
                self._start(actor)

    # ------------------------------------------------------------------ inside
    def _reserve(self, actor: Actor) -> bool:
        """Hold what the actor asks for (num_cpus, num_gpus, ...), for its whole life, from
        the node or from its placement group's bundle; False when it cannot be had now (an
        actor in a group waits for the group too)."""
        spec = actor.spec
        if actor.holding is not None:
            return True
        cpus = self.scheduler.pool_for(spec)
        if cpus is None:
            return False
        if not (spec.num_cpus or spec.resources):
            return True
        if not self.scheduler.fits(spec, cpus):
            return False
        cpus.take(actor, spec.num_cpus)
        actor.holding = (self.scheduler.extra.take(spec.resources) if spec.resources
                         else Holding({}, []))
        return True

    def _release(self, actor: Actor) -> None:
        if actor.holding is not None:
            actor.ledger.give_back(actor)
            self.scheduler.extra.give_back(actor.holding)
            actor.holding = None

    def _start(self, actor: Actor) -> None:
        if actor.env.error is not None:
            self._died(actor, exc.ActorEnvSetupError(
                f"actor {actor.name} could not start: {actor.env.error}"), restart=False)
            return
        if actor.env.launch is None:
            return  # started when its env is ready
        if not self._reserve(actor):
            self.waiting.append(actor)
            return
        try:
            actor.worker = self.pool.start(actor.env, actor)
        except WorkerStartError as e:
            if e.env_broken:
                self._fail_env(actor.env, exc.RuntimeEnvSetupError(str(e)))
            else:
                self._died(actor, exc.ActorDiedError(
                    f"actor {actor.name} could not start: {e}"), restart=False)

    def _pump(self, actor: Actor) -> None:
        """Send queued calls in order, each once its arguments are ready; end the actor once
        it is idle and nothing reaches it."""
        worker = actor.worker
        if worker is None or worker.state is not WorkerState.BUSY:
            if actor.end_when_idle and not actor.queue:  # no call to wait for: end it now
                self._end_idle(actor)
            return
        while actor.queue:
            call = actor.queue[0]
            if call.deps:
                if any(d not in self.store for d in call.deps):
                    self.store.when_all_ready(call.deps, lambda: self._pump(actor))
                    return
                failed = self.store.failed_dep(call)
                if failed is not None:
                    actor.queue.popleft()
                    self.store.complete(call, [failed] * len(call.return_ids))
                    continue
            actor.queue.popleft()
            actor.inflight[call.task_id] = call
            self.pool.run(worker, call)
        if actor.end_when_idle and not actor.inflight and not actor.queue:
            self._end_idle(actor)

    def _end_idle(self, actor: Actor) -> None:
        actor.end_when_idle = False
        if not self._reachable(actor):
            self.terminate(actor, f"actor {actor.name} ended: no handle to it is left")

    def _died(self, actor: Actor, error: exc.ActorDiedError, *, restart: bool) -> None:
        retried = self._calls_to_retry(actor) if restart and actor.restarts_left != 0 else []
        for call in actor.inflight.values():
            self.store.fail(call, error)
        actor.inflight.clear()
        actor.created = False
        if restart and actor.restarts_left != 0:
            actor.restarts_left -= 1
            actor.restarts += 1
            actor.queue.extendleft(reversed(retried))
            self._start(actor)
            return
        actor.dead = error
        self.pool.log.ended(actor.spec, [], error)  # unless its constructor had already run
        self._release(actor)
        creation = actor.spec.actor
        if self.names.get((creation.namespace, creation.name)) is actor:
            del self.names[(creation.namespace, creation.name)]
        self.store.unpin(actor.spec.deps)
        self.unpin_handles(actor.spec.handles)
        actor.spec.args = b""  # no restart will need them
        self._fail_queue(actor, error)
        if actor.worker is not None and actor.worker.alive:
            self.pool.retire(actor.worker)

    def _calls_to_retry(self, actor: Actor) -> list[TaskSpec]:
        """The in-flight calls that `max_task_retries` lets run again on the restarted actor,
        in the order they were made; taken out of `inflight`."""
        limit = actor.spec.actor.max_task_retries
        retried = [call for call in actor.inflight.values()
                   if limit < 0 or call.attempts < limit]
        for call in retried:
            call.attempts += 1
            del actor.inflight[call.task_id]
        return retried

    def _fail_queue(self, actor: Actor, error: exc.ActorDiedError) -> None:
        for call in actor.queue:
            self.store.fail(call, error)
        actor.queue.clear()
