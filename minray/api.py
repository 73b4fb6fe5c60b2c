"""The public API: init/shutdown, get/wait/put, kill, get_runtime_context.

Every call goes through `minray.core.current()`: the node in the driver, the worker's
connection to it inside a task, so the same code runs in both places, as in Ray.
"""

from __future__ import annotations

import atexit
import inspect
import json
import os
import threading
import uuid
from typing import Any

import cloudpickle

from minray import core, strict, values
from minray import exceptions as exc
from minray.actor import ActorClass, ActorHandle
from minray.objects import ObjectRef, value_of
from minray.remote_function import RemoteFunction
from minray.runtime_context import RuntimeContext

JOB_RUNTIME_ENV_VAR = "MINRAY_JOB_RUNTIME_ENV"  # set by `minray job submit`

_lock = threading.Lock()


class _Initialized(dict):
    """What `init` returns: a dict of facts about the node (Ray returns a context object)."""

    def __init__(self, node):
        super().__init__(session_dir=node.session_dir and str(node.session_dir),
                         num_cpus=node.num_cpus,
                         job_id=node.job_id, object_store_dir=node.object_dir)
        self._core = node


# Ray's init parameters that tune what minray does not have (a dashboard, an object store
# process, log forwarding, ...): accepted, so Ray code runs unchanged, and ignored.
_IGNORED_INIT_OPTIONS = frozenset((
    "object_store_memory", "include_dashboard", "dashboard_host",
    "dashboard_port", "job_config", "configure_logging", "logging_level", "logging_format",
    "logging_config", "log_to_driver", "labels", "enable_resource_isolation",
    "system_reserved_cpu", "system_reserved_memory", "_enable_object_reconstruction",
    "_system_config", "_temp_dir", "_plasma_directory", "_node_ip_address", "_redis_password",
    "_driver_object_store_memory", "_memory", "_metrics_export_port", "_node_name",
    "_tracing_startup_hook", "_cgroup_path", "_skip_env_hook"))


def init(address: str | None = None, *, num_cpus: int | None = None,
         num_gpus: int | None = None, resources: dict | None = None,
         runtime_env: dict | None = None, namespace: str | None = None,
         ignore_reinit_error: bool = False, _strict: bool | None = None,
         local_mode: bool = False, **ray_options) -> _Initialized:
    """Start the embedded local node. Cheap: workers start when tasks need them.

    `address` may be None, "local" or "auto" (all: this machine); Ray's tuning options that do
    not apply here are accepted and ignored. `local_mode=True` runs every task in this process
    instead, one at a time, for debugging (minray/local_mode.py)."""
    import runtime_env as renv  # the driver's alone: workers start faster without them
    from minray import resources as res
    from minray.node import start_node

    if address not in (None, "auto", "local"):  # those start or reuse the local node
        from minray.address import check_local

        check_local(address, "init")
    unknown = sorted(set(ray_options) - _IGNORED_INIT_OPTIONS)
    if unknown:
        raise TypeError(f"init() got unknown keyword argument(s) {unknown}")
    if num_gpus is not None and (isinstance(num_gpus, bool) or not isinstance(num_gpus, int)
                                 or num_gpus < 0):
        raise ValueError(f"num_gpus must be a non-negative int, got {num_gpus!r}")
    totals = res.node_totals(num_gpus, resources)
    if _strict is not None:
        strict.set_enabled(bool(_strict))
    if strict.enabled():
        strict.check_runtime_env(runtime_env, task_level=False)
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise ValueError(f"namespace must be a non-empty string, got {namespace!r}")
    if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int)
                                 or num_cpus < 0):
        raise ValueError(f"num_cpus must be a non-negative int, got {num_cpus!r}")
    env = renv.parse(runtime_env)
    with _lock:
        running = core.get_current()
        if running is not None:
            if ignore_reinit_error:
                return _Initialized(running) if running.is_driver else {"job_id": running.job_id}
            raise RuntimeError("minray.init() was already called; call minray.shutdown() "
                               "first, or pass ignore_reinit_error=True")
        job_env = os.environ.get(JOB_RUNTIME_ENV_VAR)
        if job_env:
            env = renv.merge_job(renv.parse(json.loads(job_env)), env)
        start = start_node
        if local_mode:
            from minray.local_mode import start
        node = start(num_cpus=(os.cpu_count() or 1) if num_cpus is None else num_cpus,
                     job_env=env, job_id=f"{os.getpid() & 0xFFFFFFFF:08x}",
                     namespace=namespace or str(uuid.uuid4()), resource_totals=totals)
        core.set_current(node)
        atexit.register(_finish_then_shutdown)
        return _Initialized(node)


def _finish_then_shutdown() -> None:
    """At interpreter exit, let the tasks already submitted finish first (as
    concurrent.futures does), so a fire-and-forget task's output is not lost; Ctrl-C stops
    waiting. An explicit shutdown() stops at once, as in Ray."""
    node = core.get_current()
    if node is not None and node.is_driver:
        try:
            if strict.enabled():
                node.drop_unfinished_like_ray()
            else:
                node.finish_submitted()
        except KeyboardInterrupt:
            pass
    shutdown()


def is_initialized() -> bool:
    return core.get_current() is not None


def shutdown() -> None:
    """Stop the node and every worker; a later call to the API starts a new one."""
    with _lock:
        node = core.get_current()
        if node is None or not node.is_driver:
            return  # inside a worker there is nothing to shut down
        core.set_current(None)
    node.shutdown()


def _refs(object_refs, what: str) -> list[ObjectRef]:
    if not isinstance(object_refs, (list, tuple)):
        raise ValueError(f"{what} takes an ObjectRef or a list of ObjectRefs, got "
                         f"{type(object_refs).__name__}")
    refs = list(object_refs)
    for i, ref in enumerate(refs):
        if not isinstance(ref, ObjectRef):
            raise ValueError(f"{what} takes an ObjectRef or a list of ObjectRefs, but item {i} "
                             f"of the list is {type(ref).__name__} {_short(ref)}")
    return refs


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _timeout(timeout: float | None) -> float | None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout < 0):
        raise ValueError(f"timeout must be None or a number >= 0, got {timeout!r}")
    return timeout


def get(object_refs, *, timeout: float | None = None):
    """The value(s) of one ObjectRef or a list of them; raises what the task raised."""
    single = isinstance(object_refs, ObjectRef)
    refs = [object_refs] if single else _refs(object_refs, "get")
    results = core.current().get([r.id for r in refs], _timeout(timeout))
    values = [value_of(result) for result in results]
    return values[0] if single else values


def wait(object_refs, *, num_returns: int = 1, timeout: float | None = None,
         fetch_local: bool = True) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Split refs into (ready, not ready) once `num_returns` are ready or `timeout` passes."""
    refs = _refs(object_refs, "wait")
    if not refs:
        return [], []
    if len(set(refs)) != len(refs):
        raise ValueError("wait got the same ObjectRef twice")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns < 1:
        raise ValueError(f"num_returns must be an int >= 1, got {num_returns!r}")
    if num_returns > len(refs):
        raise ValueError(f"num_returns={num_returns} exceeds the number of refs ({len(refs)})")
    done = core.current().wait([r.id for r in refs], num_returns, _timeout(timeout))
    ready = [r for r in refs if r.id in done][:num_returns]
    taken = set(ready)
    return ready, [r for r in refs if r not in taken]


def put(value: Any) -> ObjectRef:
    """Store a value and return its ObjectRef."""
    if isinstance(value, ObjectRef):
        raise TypeError("put() of an ObjectRef is not allowed; pass the ObjectRef itself")
    c = core.current()
    oid = c.new_id()
    c.put(oid, values.dumps(value, c.object_dir, cloudpickle.dumps))
    return ObjectRef(oid)


def remote(*args, **options):
    """Make a function a task, or a class an actor: `@remote`, or `@remote(num_cpus=1)`."""
    if len(args) == 1 and not options and (inspect.isfunction(args[0])
                                           or inspect.isclass(args[0])):
        return _make(args[0], {})
    if args:
        raise TypeError("remote takes a function or class, or only keyword options: "
                        "@remote or @remote(num_cpus=1, ...)")
    if not options:
        raise exc.RemoteDecoratorError(
            "@remote() with empty parentheses: write @remote, or give options, e.g. "
            "@remote(num_cpus=1) (Ray refuses the empty form)")
    return lambda target: _make(target, options)


def _make(target: Any, options: dict):
    if inspect.isclass(target):
        return ActorClass(target, options)
    if inspect.iscoroutinefunction(target):  # refused as Ray refuses it, with its way out
        raise ValueError(f"'async def' cannot be a remote task ({target.__qualname__}): only "
                         f"actors' methods may be async. Run it inside a plain task instead, "
                         f"e.g. return asyncio.run({target.__name__}(...))")
    if callable(target):
        return RemoteFunction(target, options)
    raise TypeError(f"remote applies to functions and classes, not {type(target).__name__}")


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """A handle to the live actor created with `.options(name=name)`, in this job's namespace
    unless another is given. ValueError if there is none."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"get_actor takes an actor's name, a non-empty string; got {name!r}")
    c = core.current()
    found = c.get_actor(name, namespace or c.namespace)
    if found is None:
        raise ValueError(f"there is no live actor named {name!r} in namespace "
                         f"{namespace or c.namespace!r} (it was never created, it died, or it "
                         f"is in another namespace: pass namespace=...)")
    return ActorHandle(*found)


def cancel(ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task that returns `ref`: it never runs if it has not started; if it runs it
    gets KeyboardInterrupt (`force=True`: its worker is killed); `get` then raises
    TaskCancelledError (WorkerCrashedError with force). A running actor call is not
    interrupted but sees `get_runtime_context().is_canceled()`; `force=True` is refused for
    actor calls, as in Ray. With `recursive`, the tasks it started are cancelled too."""
    if not isinstance(ref, ObjectRef):
        raise TypeError(f"cancel takes an ObjectRef, got {type(ref).__name__}")
    core.current().cancel(ref.id, bool(force), bool(recursive))


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Stop an actor's process; its pending and later calls raise ActorDiedError."""
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"kill takes an actor handle, got {type(actor).__name__}")
    core.current().kill_actor(actor._actor_id, no_restart)


def cluster_resources() -> dict[str, float]:
    """What the node has, by Ray's names (CPU, GPU, memory, custom, node:<ip>)."""
    return _with_node_keys(core.current().resources()["total"])


def available_resources() -> dict[str, float]:
    """What is free now; a resource fully in use is left out, as in Ray."""
    free = core.current().resources()["available"]
    return _with_node_keys({k: v for k, v in free.items() if v > 0})


def _with_node_keys(amounts: dict[str, float]) -> dict[str, float]:
    return {**{k: v for k, v in amounts.items() if v or k == "CPU"},
            "node:127.0.0.1": 1.0, "node:__internal_head__": 1.0}


def nodes() -> list[dict]:
    """The one node, in Ray's shape."""
    c = core.current()
    return [{"NodeID": c.node_id, "Alive": True, "NodeManagerAddress": "127.0.0.1",
             "NodeManagerHostname": os.uname().nodename, "NodeName": "127.0.0.1",
             "Resources": cluster_resources(), "alive": True}]


def timeline(filename: str | os.PathLike | None = None) -> list[dict] | None:
    """The session's tasks, actor calls, worker starts, env preparation, waits and blocked
    gets in Chrome trace format (open the file in ui.perfetto.dev or chrome://tracing), as
    Ray's `ray.timeline()`: written as JSON to `filename`, or returned as a list without one."""
    if filename is not None and not isinstance(filename, (str, os.PathLike)):
        raise TypeError(f"timeline(filename=...) takes a path (str or os.PathLike) or None, "
                        f"not {type(filename).__name__}")
    from minray.chrome_trace import trace_events
    from minray.util.state_tasks import snapshot

    core.current()  # as every call: this process's session, auto-started if need be
    events = trace_events(snapshot())
    if filename is None:
        return events
    with open(filename, "w") as f:
        json.dump(events, f)
    return None


def get_gpu_ids() -> list[int]:
    """The GPUs the calling task or actor holds (none in the driver)."""
    return list(core.current().gpu_ids)


def get_runtime_context() -> RuntimeContext:
    return RuntimeContext(core.current())


def _autostart() -> core.Core:
    """The first API call without init starts a node, as in Ray, unless
    RAY_ENABLE_AUTO_CONNECT=0 (or MINRAY_ENABLE_AUTO_CONNECT=0) turns that off."""
    for var in ("MINRAY_ENABLE_AUTO_CONNECT", "RAY_ENABLE_AUTO_CONNECT"):
        if os.environ.get(var, "").lower() in ("0", "false"):
            raise RuntimeError(f"minray is not initialised and {var}=0 turns automatic "
                               f"start-up off; call minray.init() first")
    return init()._core


core.set_autostart(_autostart)
