"""env_vars: variables set in the workers, with `${VAR}` expanded against the node's env."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from runtime_env.expansion import expand_or_empty
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
                raise TypeError(f"runtime_env field 'env_vars' must map str to str; "
                                f"{k!r}: {v!r} is {type(k).__name__} to {type(v).__name__}")
            if not k or "=" in k or "\0" in k:
                raise ValueError(f"runtime_env field 'env_vars': {k!r} is not a valid "
                                 f"variable name")
        return dict(value)

    def modify(self, value, created, launch, setup) -> None:
        node_env = {**os.environ, **launch.env_vars}
        launch.env_vars.update({k: expand_or_empty(v, node_env) for k, v in value.items()})
