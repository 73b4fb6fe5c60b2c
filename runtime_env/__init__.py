"""Runtime environments: validate a spec, prepare it once into the cache, and say how to
start a worker in it. Knows nothing of tasks or workers (no import of minray)."""

from runtime_env.cache import Cache
from runtime_env.context import LaunchContext
from runtime_env.errors import SetupError
from runtime_env.merge import inherit, merge_job
from runtime_env.setup import prepare
from runtime_env.spec import RuntimeEnv, RuntimeEnvConfig, parse

__all__ = ["Cache", "LaunchContext", "RuntimeEnv", "RuntimeEnvConfig", "SetupError",
           "inherit", "merge_job", "parse", "prepare"]
