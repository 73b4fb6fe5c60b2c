"""minray: Ray's API and runtime environments on one machine.

`import minray as ray` and the usual Ray code runs: tasks, actors, objects, and per-job,
per-task and per-actor runtime environments, prepared once and cached across runs.
"""

__version__ = "0.1.0"

# The API is loaded on first use (PEP 562), as are Ray's submodules reachable as attributes:
# a worker imports this package for its own modules and starts faster without the rest (its
# fork server loads the rest once its first worker is forked, minray/forkserver.py).
_API = {
    **dict.fromkeys(("ActorClass", "ActorHandle", "method"), "actor"),
    **dict.fromkeys(("available_resources", "cancel", "cluster_resources", "get", "get_actor",
                     "get_gpu_ids", "get_runtime_context", "init", "is_initialized", "kill",
                     "nodes", "put", "remote", "shutdown", "timeline", "wait"), "api"),
    **dict.fromkeys(("DynamicObjectRefGenerator", "ObjectRefGenerator"), "generators"),
    **dict.fromkeys(("ObjectID", "ObjectRef"), "objects"),
    "RemoteFunction": "remote_function",
}
_SUBMODULES = ("actor", "exceptions", "dag", "experimental", "util", "runtime_env",
               "job_submission")


def __getattr__(name: str):
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"minray.{name}")
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'minray' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"minray.{module}"), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API, *_SUBMODULES})


__all__ = ["ActorClass", "ActorHandle", "DynamicObjectRefGenerator", "ObjectID", "ObjectRef",
           "ObjectRefGenerator", "RemoteFunction", "actor",
           "available_resources", "cancel", "cluster_resources", "exceptions", "get", "get_actor",
           "get_gpu_ids", "get_runtime_context", "init", "is_initialized", "kill", "method",
           "nodes", "put", "remote", "shutdown", "timeline", "wait"]
