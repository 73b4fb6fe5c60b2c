"""`init(local_mode=True)`: every task and actor call runs at `.remote()`, one at a time, in the
driver's own process and thread, for debuggers and profilers that cannot follow a subprocess.

`LocalCore` is a `Core` like the node, so the API, refs and handles are the same objects.
Arguments and results still go through pickling and errors through `RayTaskError`, so code
behaves as it does on the node (a task gets copies, `get` raises the task's own error type).
A task's runtime_env applies for the call only: its env vars, sys.path entries and working
directory are set around the call and restored after; fields that need another interpreter
are refused at the call.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import os
import sys
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import cloudpickle

from minray import core, values
from minray import exceptions as exc
from minray.named_tuple import Record
from minray.protocol import Yield
from minray.results import dump_error, dump_results, load_args, task_error
from minray.streaming import stream, stream_async
from minray.task import ACTOR, Result, TaskSpec

# Fields that start a worker on another interpreter: a call in this process cannot have them.
OTHER_INTERPRETER = ("pip", "uv", "conda", "py_executable")
WARNING = ("local_mode=True is for debugging only (Ray deprecates it): minray runs every task "
           "and actor call at .remote(), one at a time, in this process; nothing runs in "
           "parallel")


class _Actor(Record):
    spec: TaskSpec  # its creation: name, what it holds
    env: Any  # its runtime_env, which its calls run in
    instance: Any
    loop: list  # the event loop of its async methods, made on first use (a list of one)


class _Running(Record):
    spec: TaskSpec
    env: Any  # the RuntimeEnv it runs in


class LocalCore(core.Core):
    """The core of a driver in local mode: runs what is submitted at once."""

    worker_id = "driver"
    session_dir = None  # no session folder: no worker, socket or object store
    object_dir = None  # every value inline

    def __init__(self, num_cpus: int, job_env, job_id: str, namespace: str,
                 resource_totals: dict[str, float]):
        self.num_cpus = num_cpus
        self.job_id = job_id
        self.namespace = namespace
        self.node_id = uuid.uuid4().hex + os.urandom(12).hex()
        self._job_env = job_env
        self._totals = resource_totals
        self._ids = itertools.count(1)
        self._objects: dict[str, Result] = {}
        self._functions: dict[str, Any] = {}
        self._actors: dict[str, _Actor] = {}
        self._dead: dict[str, exc.ActorDiedError] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._running: list[_Running] = []  # the calls in progress, innermost last
        self._launches: dict[str, Any] = {}  # env hash -> its LaunchContext
        _check_fields(job_env, "init()")

    # ------------------------------------------------------------- where the caller runs
    @property
    def is_driver(self) -> bool:
        return not self._running

    @property
    def task_id(self) -> str | None:
        return self._running[-1].spec.task_id if self._running else None

    @property
    def actor_id(self) -> str | None:
        return self._running[-1].spec.actor_id if self._running else None

    @property
    def resource_spec(self) -> TaskSpec | None:
        if not self._running:
            return None
        spec = self._running[-1].spec
        actor = self._actors.get(spec.actor_id) if spec.actor_id else None
        return actor.spec if actor is not None else spec

    @property
    def runtime_env_json(self) -> str:
        return json.dumps(self._caller_env(), sort_keys=True)

    @property
    def resource_totals(self) -> dict[str, float]:
        return self._totals

    def is_cancelled(self) -> bool:
        if not self._running:
            return super().is_cancelled()
        return False  # a call runs to its end: nothing can cancel it meanwhile

    # ------------------------------------------------------------- the core
    def new_id(self) -> str:
        return f"{next(self._ids):x}"

    def submit(self, spec: TaskSpec) -> None:
        _check_fields(spec.runtime_env, spec.name)
        if spec.func_bytes is not None and spec.func_id not in self._functions:
            self._functions[spec.func_id] = cloudpickle.loads(spec.func_bytes)
        failed = next((self._objects[d] for d in spec.deps
                       if d in self._objects and not self._objects[d][0]), None)
        if failed is not None:  # an argument holds an error: it is the result, as on the node
            self._store(spec.return_ids, [failed] * len(spec.return_ids))
            return
        if spec.kind == ACTOR:
            self._create(spec)
        else:
            self._store(spec.return_ids, self._call(spec))

    def submit_named(self, spec: TaskSpec) -> str:
        key = (spec.actor.namespace, spec.actor.name)
        existing = self._names.get(key)
        if existing is not None:
            if spec.actor.get_if_exists:
                return existing
            raise ValueError(f"an actor named {spec.actor.name!r} already exists in namespace "
                             f"{spec.actor.namespace!r}")
        self.submit(spec)
        self._names[key] = spec.actor_id
        return spec.actor_id

    def get_actor(self, name: str, namespace: str):
        actor_id = self._names.get((namespace, name))
        if actor_id is None or actor_id not in self._actors:
            return None
        return actor_id, self._actors[actor_id].spec.actor.class_meta

    def resources(self) -> dict:
        total = {"CPU": float(self.num_cpus), **self._totals}
        return {"total": total, "available": dict(total)}  # nothing holds any between calls

    def put(self, object_id: str, data: values.Data, for_task: bool = False) -> None:
        self._objects[object_id] = (True, data)

    def get(self, ids: list[str], timeout: float | None) -> list[Result]:
        missing = [oid for oid in ids if oid not in self._objects]
        if missing:
            raise exc.ObjectLostError(f"ObjectRef({missing[0]}) has no value in this local-mode "
                                      f"session (it belongs to another session)")
        return [self._objects[oid] for oid in ids]

    def wait(self, ids: list[str], num_returns: int, timeout: float | None) -> set[str]:
        return {oid for oid in ids if oid in self._objects}

    def cancel(self, object_id: str, force: bool, recursive: bool) -> None:
        """Every task has finished by the time its ref exists: nothing to cancel, as Ray does
        for a finished task."""

    def watch(self, object_id: str, on_result: Callable[[Result], None]) -> Callable[[], None]:
        on_result(self.get([object_id], None)[0])
        return lambda: None

    def kill_actor(self, actor_id: str, no_restart: bool) -> None:
        actor = self._actors.pop(actor_id, None)
        if actor is not None:
            self._end(actor, exc.ActorDiedError(f"the actor {actor.spec.name} was killed with "
                                                f"kill()"))

    def placement_call(self, request):
        raise RuntimeError("placement groups are not available in local mode: every task runs "
                           "in the driver's process; call init() without local_mode=True")

    def state_query(self, query) -> tuple:
        return None, ("the state API and the timeline are not available in local mode: no "
                      "worker, actor or object lives outside the driver, and nothing is "
                      "recorded; call init() without local_mode=True")

    def finish_submitted(self) -> None:
        """At exit: every task has run already."""

    drop_unfinished_like_ray = finish_submitted

    def shutdown(self) -> None:
        for actor in list(self._actors.values()):
            self._end(actor, exc.ActorDiedError("minray was shut down"))
        self._actors.clear()
        self._objects.clear()

    # ------------------------------------------------------------- running calls
    def _store(self, ids: list[str], results: list[Result]) -> None:
        for oid, result in zip(ids, results, strict=False):
            self._objects[oid] = result

    def _args(self, spec: TaskSpec) -> tuple[list, dict]:
        return load_args(spec.args, {d: self._objects[d][1] for d in spec.deps})

    def _create(self, spec: TaskSpec) -> None:
        env = self._env_for(spec)
        try:
            with self._running_as(spec, env):
                args, kwargs = self._args(spec)
                instance = self._functions[spec.func_id](*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - its calls raise it
            self._dead[spec.actor_id] = exc.ActorDiedError(
                f"the actor's constructor failed:\n{task_error(spec.name, e)}")
            return
        self._actors[spec.actor_id] = _Actor(spec, env, instance, [])

    def _call(self, spec: TaskSpec) -> list[Result]:
        n = max(len(spec.return_ids), 1)
        actor = None
        if spec.actor_id is not None:
            actor = self._actors.get(spec.actor_id)
            if actor is None:
                error = self._dead.get(spec.actor_id) or exc.ActorDiedError(
                    f"the actor of {spec.name} is not alive")
                return [dump_error(error)] * n
        try:
            with self._running_as(spec, actor.env if actor is not None else self._env_for(spec)):
                args, kwargs = self._args(spec)
                fn = (getattr(actor.instance, spec.method) if actor is not None
                      else self._functions[spec.func_id])
                value = fn(*args, **kwargs)
                if spec.generator is not None:
                    if inspect.isasyncgen(value):
                        return _run_async(actor, stream_async(spec, value, self._yielded))
                    return stream(spec, value, self._yielded)
                if inspect.iscoroutine(value):
                    value = _run_async(actor, value)
                return dump_results(value, len(spec.return_ids), spec.name)
        except exc.ActorExit as e:
            if actor is None:
                return [dump_error(task_error(spec.name, e))] * n
            error = exc.ActorDiedError(f"the actor {actor.spec.name} exited on purpose: {e}")
            self._actors.pop(spec.actor_id, None)
            self._end(actor, error)
            return [dump_error(error)] * n
        except Exception as e:  # noqa: BLE001 - every error goes to whoever gets the result
            return [dump_error(task_error(spec.name, e))] * n

    def _yielded(self, message: Yield) -> None:
        self._objects[message.object_id] = message.result

    def _end(self, actor: _Actor, error: exc.ActorDiedError) -> None:
        """An actor is gone: its later calls raise `error`; its name is free again."""
        self._dead[actor.spec.actor_id] = error
        creation = actor.spec.actor
        self._names.pop((creation.namespace, creation.name), None)
        shutdown = getattr(actor.instance, "__ray_shutdown__", None)
        if shutdown is not None:
            with contextlib.suppress(Exception):
                shutdown()
        if actor.loop:
            actor.loop[0].close()

    @contextlib.contextmanager
    def _running_as(self, spec: TaskSpec, env):
        """Run with `spec` as the caller (for the runtime context and nested calls), inside
        its runtime_env."""
        with _applied(self._launch(env)):
            self._running.append(_Running(spec, env))
            try:
                yield
            finally:
                self._running.pop()

    def _caller_env(self):
        return self._running[-1].env if self._running else self._job_env

    def _env_for(self, spec: TaskSpec):
        """A task's or new actor's env: its own fields over its caller's, as on the node."""
        import runtime_env as renv

        return renv.inherit(self._caller_env(), spec.runtime_env or {})

    def _launch(self, env):
        """The env's LaunchContext, prepared once (env vars, working_dir, py_modules)."""
        if not env:
            return None
        key = env.env_hash()
        if key not in self._launches:
            import runtime_env as renv

            if "worker_process_setup_hook" in env:
                warnings.warn("local mode does not run worker_process_setup_hook: there is "
                              "no worker process", stacklevel=2)
            try:
                self._launches[key] = renv.prepare(env)
            except renv.SetupError as e:
                raise exc.RuntimeEnvSetupError(str(e)) from None
        return self._launches[key]


def _check_fields(env, where: str) -> None:
    fields = sorted(set(env or ()) & set(OTHER_INTERPRETER))
    if fields:
        raise ValueError(f"{where}: runtime_env field(s) {fields} need a worker on another "
                         f"interpreter, which local mode cannot start (every task runs in this "
                         f"process); call init() without local_mode=True to use them")


def _run_async(actor: _Actor | None, awaitable):
    """Run an async method on its actor's event loop (kept between calls, as the actor's
    state may hold loop-bound objects); an async task on a loop of its own."""
    import asyncio

    if actor is None:
        return asyncio.run(awaitable)
    if not actor.loop:
        actor.loop.append(asyncio.new_event_loop())
    return actor.loop[0].run_until_complete(awaitable)


@contextlib.contextmanager
def _applied(launch):
    """Set a LaunchContext's env vars, sys.path entries and cwd for the block, then restore."""
    if launch is None:
        yield
        return
    saved_env = {k: os.environ.get(k) for k in launch.env_vars}
    saved_path, saved_cwd = list(sys.path), os.getcwd()
    os.environ.update(launch.env_vars)
    sys.path[:0] = [p for p in launch.python_path if p not in sys.path]
    if launch.cwd:
        os.chdir(launch.cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start(num_cpus: int, job_env, job_id: str, namespace: str,
          resource_totals: dict[str, float]) -> LocalCore:
    """The core `init(local_mode=True)` installs, after its warning."""
    warnings.warn(WARNING, UserWarning, stacklevel=3)
    return LocalCore(num_cpus, job_env, job_id, namespace, resource_totals)
