"""working_dir: the folder workers start in and import from.

A local folder or `.zip`, or a remote zip URI. Packaged on the driver (see
runtime_env.package_fields); at setup the prepared folder becomes the workers' cwd and the
first entry of their sys.path, and is exported to later fields' commands as
${MINRAY_RUNTIME_ENV_CREATE_WORKING_DIR} (and Ray's ${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}) so
pip/conda can install from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime_env import package_fields
from runtime_env.plugin import Plugin, Validation

EXPORTS = ("MINRAY_RUNTIME_ENV_CREATE_WORKING_DIR", "RAY_RUNTIME_ENV_CREATE_WORKING_DIR")


class WorkingDirPlugin(Plugin):
    name = "working_dir"
    priority = 10  # first: pip/conda may refer to it

    def validate(self, value: Any, spec: Mapping[str, Any],
                 validation: Validation | None = None) -> str:
        return package_fields.resolve(value, self.name, spec, validation, module=False)

    def create(self, value: str, setup) -> Path:
        path = package_fields.folder(value, self.name, setup)
        for var in EXPORTS:
            setup.exports[var] = str(path)
        return path

    def modify(self, value, created: Path, launch, setup) -> None:
        launch.cwd = str(created)
        launch.python_path.insert(0, str(created))
