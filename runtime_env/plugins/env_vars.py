"""env_vars: variables set in the workers, with `${VAR}` expanded against the node's env."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from runtime_env.expansion import expand_or_empty
from runtime_env.input_checks import MAX_ENV_STRING
from runtime_env.plugin import Plugin


class EnvVarsPlugin(Plugin):
    name = "env_vars"
    priority = 90  # last: may refer to what other fields prepared

    def validate(self, value: Any, spec: Mapping[str, Any], validation=None) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise TypeError(f"runtime_env field 'env_vars' must be a dict of str to str, "
                            f"got {type(value).__name__}")
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                name = repr(k) if type(k) is str else f"a key of type {type(k).__name__}"
                raise TypeError(f"runtime_env field 'env_vars' must map str to str; "
                                f"{name} maps to {type(v).__name__}")
            # What an environment cannot hold: exec refuses these, or splits NAME=value wrong.
            if not k or "=" in k or "\0" in k:
                raise ValueError(f"runtime_env field 'env_vars': {k!r} is not a valid "
                                 f"variable name")
            if "\0" in v:
                raise ValueError(f"runtime_env field 'env_vars': the value of {k!r} contains "
                                 f"a NUL byte")
            if len(k.encode()) + 1 + len(v.encode()) > MAX_ENV_STRING:
                raise ValueError(f"runtime_env field 'env_vars': {k!r} is too long for an "
                                 f"environment variable (at most {MAX_ENV_STRING} bytes for "
                                 f"NAME=value); put large data in a file instead")
        return dict(value)

    def modify(self, value, created, launch, setup) -> None:
        node_env = {**os.environ, **launch.env_vars}
        launch.env_vars.update({k: expand_or_empty(v, node_env) for k, v in value.items()})
