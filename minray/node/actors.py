"""Actors: each on a worker of its own, created once its env is ready and its arguments
exist, its calls sent in order, restarted after its worker dies (`max_restarts`), killed."""

from __future__ import annotations

from collections.abc import Callable

import cloudpickle

from minray import exceptions as exc
from minray.node.state import Actor, EnvState, Worker, WorkerState
from minray.node.store import ObjectStore
from minray.node.workers import WorkerPool, WorkerStartError
from minray.task import Result, TaskSpec


class Actors:
    def __init__(self, pool: WorkerPool, store: ObjectStore, *,
                 fail_env: Callable[[EnvState, exc.RuntimeEnvSetupError], None]):
        self.pool = pool
        self.store = store
        self.actors: dict[str, Actor] = {}
        self._fail_env = fail_env

    def create(self, spec: TaskSpec, env: EnvState) -> None:
        actor = Actor(spec.actor_id, spec, env, restarts_left=spec.max_restarts)
        self.actors[actor.id] = actor
        self._start(actor)

    def call(self, spec: TaskSpec) -> None:
        actor = self.actors[spec.actor_id]
        if actor.dead is not None:
            self.store.fail(spec, actor.dead)
            return
        actor.queue.append(spec)
        self._pump(actor)

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
                    f"actor {actor.spec.name} could not start: {env.error}"), restart=False)

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
                    f"actor {spec.name} could not be created: an argument failed:\n{cause}"),
                    restart=False)
                return
            self.pool.run(worker, spec)
            self._pump(actor)

        self.store.when_all_ready(spec.deps, create)

    def done(self, worker: Worker, task_id: str, results: list[Result]) -> None:
        actor = worker.actor
        if task_id == actor.spec.task_id:  # the creation task
            if not results[0][0]:
                cause = cloudpickle.loads(results[0][1])
                self._died(actor, exc.ActorDiedError(
                    f"actor {actor.spec.name} failed in its constructor:\n{cause}"),
                    restart=False)
            return
        call = actor.inflight.pop(task_id, None)
        if call is None:  # already failed when the actor died
            self.store.discard(results)
        else:
            self.store.complete(call, results)

    def worker_exited(self, worker: Worker, how: str) -> None:
        """The actor's process ended (`how`: why, in words): restart it if it may."""
        actor = worker.actor
        if actor.worker is not worker:
            return
        actor.worker = None
        if actor.dead is None:
            self._died(actor, exc.ActorDiedError(
                f"the worker of actor {actor.spec.name} died ({how})"), restart=True)

    def kill(self, actor_id: str, no_restart: bool) -> None:
        actor = self.actors.get(actor_id)
        if actor is None or actor.dead is not None:
            return
        if no_restart:
            actor.restarts_left = 0
        if actor.worker is not None and actor.worker.state is not WorkerState.DEAD:
            self.pool.kill(actor.worker)
        if no_restart:
            self._died(actor, exc.ActorDiedError(
                f"actor {actor.spec.name} was killed by minray.kill()"), restart=False)

    # ------------------------------------------------------------------ inside
    def _start(self, actor: Actor) -> None:
        if actor.env.error is not None:
            self._died(actor, exc.ActorEnvSetupError(
                f"actor {actor.spec.name} could not start: {actor.env.error}"), restart=False)
            return
        if actor.env.launch is None:
            return  # started when its env is ready
        try:
            actor.worker = self.pool.start(actor.env, actor)
        except WorkerStartError as e:
            if e.env_broken:
                self._fail_env(actor.env, exc.RuntimeEnvSetupError(str(e)))
            else:
                self._died(actor, exc.ActorDiedError(
                    f"actor {actor.spec.name} could not start: {e}"), restart=False)

    def _pump(self, actor: Actor) -> None:
        """Send queued calls in order, each once its arguments are ready."""
        worker = actor.worker
        if worker is None or worker.state is not WorkerState.BUSY:
            return
        while actor.queue:
            call = actor.queue[0]
            if any(d not in self.store for d in call.deps):
                self.store.when_all_ready(call.deps, lambda: self._pump(actor))
                return
            actor.queue.popleft()
            failed = self.store.failed_dep(call)
            if failed is not None:
                self.store.complete(call, [failed] * len(call.return_ids))
                continue
            actor.inflight[call.task_id] = call
            self.pool.run(worker, call)

    def _died(self, actor: Actor, error: exc.ActorDiedError, *, restart: bool) -> None:
        for call in actor.inflight.values():
            self.store.fail(call, error)
        actor.inflight.clear()
        if restart and actor.restarts_left != 0:
            actor.restarts_left -= 1
            actor.restarts += 1
            self._start(actor)
            return
        actor.dead = error
        self.store.unpin(actor.spec.deps)
        for call in actor.queue:
            self.store.fail(call, error)
        actor.queue.clear()
        if actor.worker is not None and actor.worker.alive:
            self.pool.retire(actor.worker)
