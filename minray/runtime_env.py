"""Ray-compatible import path: `from minray.runtime_env import RuntimeEnv, RuntimeEnvConfig`."""

from runtime_env.spec import RuntimeEnv, RuntimeEnvConfig

__all__ = ["RuntimeEnv", "RuntimeEnvConfig"]
