"""Runtime environments: validate a spec, prepare it once into the cache, and say how to
start a worker in it. Knows nothing of tasks or workers (no import of minray).

Names are imported on first use: the driver's `init()` needs the spec, not the installers,
locks and process tools behind `prepare`. The same names are imported under TYPE_CHECKING,
so IDEs and type checkers see them.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `X as X`: re-exported, as `__all__` (made from _WHERE) says
    from runtime_env.cache import Cache as Cache
    from runtime_env.context import LaunchContext as LaunchContext
    from runtime_env.errors import SetupError as SetupError
    from runtime_env.merge import inherit as inherit
    from runtime_env.merge import merge_job as merge_job
    from runtime_env.setup import prepare as prepare
    from runtime_env.spec import RuntimeEnv as RuntimeEnv
    from runtime_env.spec import RuntimeEnvConfig as RuntimeEnvConfig
    from runtime_env.spec import parse as parse

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
