"""minray: Ray's API and runtime environments on one machine.

`import minray as ray` and the usual Ray code runs: tasks, actors, objects, and per-job,
per-task and per-actor runtime environments, prepared once and cached across runs.
"""

from minray import exceptions
from minray.api import (
    get,
    get_runtime_context,
    init,
    is_initialized,
    kill,
    put,
    shutdown,
    wait,
)
from minray.objects import ObjectRef
from minray.remote import ActorClass, ActorHandle, RemoteFunction, remote

__version__ = "0.1.0"

# Ray's submodules, reachable as attributes after `import minray as ray` (as in Ray), loaded on
# first use: workers import this package and need neither.
_SUBMODULES = ("runtime_env", "job_submission")


def __getattr__(name: str):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"minray.{name}")
    raise AttributeError(f"module 'minray' has no attribute {name!r}")


__all__ = ["ActorClass", "ActorHandle", "ObjectRef", "RemoteFunction", "exceptions", "get",
           "get_runtime_context", "init", "is_initialized", "kill", "put", "remote", "shutdown",
           "wait"]
