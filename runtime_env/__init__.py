"""Runtime environments: validate a spec, prepare it once into the cache, and say how to
start a worker in it. Knows nothing of tasks or workers (no import of minray).

Names are imported on first use: the driver's `init()` needs the spec, not the installers,
locks and process tools behind `prepare`.
"""

import importlib

_WHERE = {
    "Cache": "runtime_env.cache",
    "LaunchContext": "runtime_env.context",
    "SetupError": "runtime_env.errors",
    "inherit": "runtime_env.merge",
    "merge_job": "runtime_env.merge",
    "prepare": "runtime_env.setup",
    "RuntimeEnv": "runtime_env.spec",
    "RuntimeEnvConfig": "runtime_env.spec",
    "parse": "runtime_env.spec",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'runtime_env' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
