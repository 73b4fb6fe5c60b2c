"""minray: Ray's API and runtime environments on one machine.

`import minray as ray` and the usual Ray code runs: tasks, actors, objects, and per-job,
per-task and per-actor runtime environments, prepared once and cached across runs.
"""

from minray import actor, exceptions
from minray.actor import ActorClass, ActorHandle, method
from minray.api import (
    available_resources,
    cancel,
    cluster_resources,
    get,
    get_actor,
    get_gpu_ids,
    get_runtime_context,
    init,
    is_initialized,
    kill,
    nodes,
    put,
    remote,
    shutdown,
    timeline,
    wait,
)
from minray.generators import DynamicObjectRefGenerator, ObjectRefGenerator
from minray.objects import ObjectID, ObjectRef
from minray.remote import RemoteFunction

__version__ = "0.1.0"

# Ray's submodules, reachable as attributes after `import minray as ray` (as in Ray), loaded on
# first use: workers import this package and start faster without them.
_SUBMODULES = ("dag", "experimental", "util", "runtime_env", "job_submission")


def __getattr__(name: str):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"minray.{name}")
    raise AttributeError(f"module 'minray' has no attribute {name!r}")


__all__ = ["ActorClass", "ActorHandle", "DynamicObjectRefGenerator", "ObjectID", "ObjectRef",
           "ObjectRefGenerator", "RemoteFunction", "actor",
           "available_resources", "cancel", "cluster_resources", "exceptions", "get", "get_actor",
           "get_gpu_ids", "get_runtime_context", "init", "is_initialized", "kill", "method",
           "nodes", "put", "remote", "shutdown", "timeline", "wait"]
