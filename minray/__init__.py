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
from minray.remote import ActorClass, ActorHandle, RemoteFunction, method, remote

__version__ = "0.1.0"

__all__ = ["ActorClass", "ActorHandle", "ObjectRef", "RemoteFunction", "exceptions", "get",
           "get_runtime_context", "init", "is_initialized", "kill", "method", "put", "remote",
           "shutdown", "wait"]
