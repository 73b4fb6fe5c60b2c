"""The public API: init/shutdown, get/wait/put, kill, get_runtime_context.

Every call goes through `minray.core.current()`: the node in the driver, the worker's
connection to it inside a task, so the same code runs in both places, as in Ray.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from typing import Any

import cloudpickle

from minray import core
from minray.objects import ObjectRef, value_of
from minray.remote import ActorHandle

JOB_RUNTIME_ENV_VAR = "MINRAY_JOB_RUNTIME_ENV"  # set by `minray job submit`

_lock = threading.Lock()


class _Initialized(dict):
    """What `init` returns: a dict of facts about the node (Ray returns a context object)."""

    def __init__(self, node):
        super().__init__(session_dir=str(node.session_dir), num_cpus=node.num_cpus,
                         job_id=node.job_id)
        self._core = node


def init(num_cpus: int | None = None, runtime_env: dict | None = None,
         ignore_reinit_error: bool = False, *, address: str | None = None,
         namespace: str | None = None, log_to_driver: bool = True,
         include_dashboard: bool | None = None, logging_level: Any = None) -> _Initialized:
    """Start the embedded local node. Cheap: workers start when tasks need them."""
    import runtime_env as renv  # the driver's alone: workers start faster without them
    from minray.node import start_node

    if address not in (None, "local", "auto"):
        raise ValueError(f"address={address!r}: minray runs one local node; connecting to a "
                         f"cluster needs real Ray")
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
        node = start_node(num_cpus=(os.cpu_count() or 1) if num_cpus is None else num_cpus,
                          job_env=env, job_id=f"{os.getpid() & 0xFFFFFFFF:08x}")
        core.set_current(node)
        atexit.register(shutdown)
        return _Initialized(node)


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
    refs = list(object_refs) if isinstance(object_refs, (list, tuple)) else None
    if refs is None or not all(isinstance(r, ObjectRef) for r in refs):
        raise ValueError(f"{what} takes an ObjectRef or a list of ObjectRefs, got "
                         f"{type(object_refs).__name__}")
    return refs


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
    c.put(oid, cloudpickle.dumps(value, protocol=5))
    return ObjectRef(oid)


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Stop an actor's process; its pending and later calls raise ActorDiedError."""
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"kill takes an actor handle, got {type(actor).__name__}")
    core.current().kill_actor(actor._actor_id, no_restart)


class RuntimeContext:
    """Where the caller runs: job, task, actor and effective runtime_env."""

    def __init__(self, c: core.Core):
        self._core = c

    def get_job_id(self) -> str:
        return self._core.job_id

    def get_task_id(self) -> str | None:
        return self._core.task_id

    def get_actor_id(self) -> str | None:
        return self._core.actor_id

    def get_worker_id(self) -> str:
        return self._core.worker_id

    def get_node_id(self) -> str:
        return "local"

    @property
    def job_id(self) -> str:
        return self.get_job_id()

    @property
    def runtime_env(self):
        """The effective env, a `RuntimeEnv`."""
        from runtime_env import RuntimeEnv  # the spec module only, on use

        return RuntimeEnv.deserialize(self.get_runtime_env_string())

    def get_runtime_env_string(self) -> str:
        return self._core.runtime_env_json

    @property
    def was_current_actor_reconstructed(self) -> bool:
        return self._core.was_restarted


def get_runtime_context() -> RuntimeContext:
    return RuntimeContext(core.current())


core.set_autostart(lambda: init()._core)
