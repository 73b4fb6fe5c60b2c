"""worker_process_setup_hook: a function each worker runs once, before any task (Ray's way to
set up logging, warm caches, patch modules in every worker).

A callable or a `"module.function"` name. A callable travels pickled (cloudpickle, base64) in
the spec, so it is part of the env's identity; a name is imported in the worker, where the env's
packages and working_dir are. The worker runs it before it says hello; if it raises, the env
fails with RuntimeEnvSetupError quoting the error.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from runtime_env.plugin import Plugin

HOOK_VAR = "MINRAY_SETUP_HOOK"  # what the worker reads
PICKLED = "cloudpickle:"
_NAME = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")


class SetupHookPlugin(Plugin):
    name = "worker_process_setup_hook"
    priority = 50  # nothing depends on it

    def validate(self, value: Any, spec: Mapping[str, Any], validation=None) -> str:
        if isinstance(value, str):
            if value.startswith(PICKLED) or _NAME.match(value):
                return value
            raise ValueError("runtime_env field 'worker_process_setup_hook' must be a callable "
                             f"or a 'module.function' name, got {value!r}")
        if callable(value):
            import cloudpickle

            return PICKLED + base64.b64encode(cloudpickle.dumps(value)).decode("ascii")
        raise TypeError("runtime_env field 'worker_process_setup_hook' must be a callable or a "
                        f"'module.function' name, got {type(value).__name__}")

    def modify(self, value: str, created: Any, launch, setup) -> None:
        launch.env_vars[HOOK_VAR] = value
