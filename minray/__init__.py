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
    wait,
)
from minray.generators import DynamicObjectRefGenerator, ObjectRefGenerator
from minray.objects import ObjectID, ObjectRef
from minray.remote import RemoteFunction

__version__ = "0.1.0"

_SUBMODULES = ("dag", "experimental", "util")


def __getattr__(name: str):
    """`minray.util`, `minray.dag` and `minray.experimental` as attributes, as in Ray, imported on
    first use: workers import minray and start faster without them."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"minray.{name}")
    raise AttributeError(f"module 'minray' has no attribute {name!r}")


__all__ = ["ActorClass", "ActorHandle", "DynamicObjectRefGenerator", "ObjectID", "ObjectRef",
           "ObjectRefGenerator", "RemoteFunction", "actor",
           "available_resources", "cancel", "cluster_resources", "exceptions", "get", "get_actor",
           "get_gpu_ids", "get_runtime_context", "init", "is_initialized", "kill", "method",
           "nodes", "put", "remote", "shutdown", "wait"]
