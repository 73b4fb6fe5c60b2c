"""working_dir: the folder workers start in and import from.

A local folder or `.zip`, or a remote zip URI. Packaged on the driver (see runtime_env.files);
at setup the prepared folder becomes the workers' cwd and the first entry of their sys.path,
and is exported to later fields' commands as ${MINRAY_RUNTIME_ENV_CREATE_WORKING_DIR} (and
Ray's ${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}) so pip/conda can install from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime_env import files
from runtime_env.plugin import Plugin

EXPORTS = ("MINRAY_RUNTIME_ENV_CREATE_WORKING_DIR", "RAY_RUNTIME_ENV_CREATE_WORKING_DIR")


class WorkingDirPlugin(Plugin):
    name = "working_dir"
    priority = 10  # first: pip/conda may refer to it

    def validate(self, value: Any, spec: Mapping[str, Any]) -> str:
        return files.resolve(files.as_str(value, self.name), self.name, spec, module=False)

    def create(self, value: str, setup) -> Path:
        path = files.folder(value, self.name, setup)
        for var in EXPORTS:
            setup.exports[var] = str(path)
        return path

    def modify(self, value, created: Path, launch, setup) -> None:
        launch.cwd = str(created)
        launch.python_path.insert(0, str(created))
