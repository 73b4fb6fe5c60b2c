"""py_modules: packages and modules importable in the workers.

Each entry is a local package folder, a `.py` file, a module object (resolved on the driver to
its top-level package's folder or file), a local `.whl`, or a remote `.zip`/`.whl` URI. A folder
is shipped under its own name and a wheel is unpacked as it is, so the folder holding each
entry goes on the workers' sys.path. Remote zips follow Ray's single top-level directory rule:
the contents of that directory go on sys.path.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime_env import package_fields
from runtime_env.plugin import Plugin, Validation


def module_source(module: types.ModuleType) -> str:
    """Where a module object's code lives: its top-level package's folder, or its `.py` file."""
    top_name = module.__name__.partition(".")[0]
    top = sys.modules.get(top_name) or module
    source = getattr(top, "__file__", None)
    if source:
        if os.path.basename(source) == "__init__.py":
            return os.path.dirname(source)
        if source.endswith(".py"):
            return source
        raise TypeError(f"runtime_env field 'py_modules': module {top_name!r} is compiled "
                        f"({os.path.basename(source)}); ship it as a wheel or through pip")
    paths = list(getattr(top, "__path__", None) or [])
    if len(paths) == 1:  # a namespace package in one folder
        return paths[0]
    raise TypeError(f"runtime_env field 'py_modules': module {top_name!r} has no source "
                    f"folder or file to ship (built-in, or a namespace package spread over "
                    f"{len(paths)} folders)")


class PyModulesPlugin(Plugin):
    name = "py_modules"
    priority = 15  # after working_dir, so the working_dir stays first on sys.path

    def validate(self, value: Any, spec: Mapping[str, Any],
                 validation: Validation | None = None) -> list[str]:
        if isinstance(value, (str, bytes, os.PathLike)) or not isinstance(value, (list, tuple)):
            raise TypeError("runtime_env field 'py_modules' must be a list of local paths, "
                            f"URIs or module objects, got {type(value).__name__}")
        out = []
        for item in value:
            if isinstance(item, types.ModuleType):
                item = module_source(item)
            out.append(package_fields.resolve(item, self.name, spec, validation, module=True))
        return out

    def create(self, value: list[str], setup) -> list[Path]:
        return [package_fields.folder(v, self.name, setup) for v in value]

    def modify(self, value, created: list[Path], launch, setup) -> None:
        for path in created:
            if str(path) not in launch.python_path:
                launch.python_path.append(str(path))
