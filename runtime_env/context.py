"""How to start a Python worker in an environment: the only thing minray gets from here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from runtime_env.uv_run import worker_python


@dataclass
class LaunchContext:
    """A worker is started as `py_executable + [script]` with `env_vars` set, in `cwd`,
    with `python_path` in front of its sys.path."""

    py_executable: list[str] = field(default_factory=lambda: [worker_python()])
    env_vars: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    python_path: list[str] = field(default_factory=list)

    def process_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The full environment of a worker process: `base` (the node's), then ours."""
        env = dict(os.environ if base is None else base)
        env.update(self.env_vars)
        if self.python_path:
            paths = [*self.python_path, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
            env["PYTHONPATH"] = os.pathsep.join(paths)
        return env
