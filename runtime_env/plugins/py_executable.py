"""py_executable: the program, with arguments, that runs workers.

`"python -X dev"`, `"uv run --with emoji"`, `"./wrap.sh"`. The program is resolved once, when
the env is prepared: a bare name through the PATH workers will have (so after a `pip` or
`conda` field, `"python"` is that env's python, as in Ray), then in the prepared working_dir;
a relative path against the working_dir (when it exists there), else the driver's cwd.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping
from typing import Any

from runtime_env.plugin import Plugin


def split(value: str) -> list[str]:
    return shlex.split(value)


class PyExecutablePlugin(Plugin):
    name = "py_executable"
    priority = 40  # after pip/uv/conda: it may name their python

    def validate(self, value: Any, spec: Mapping[str, Any], validation=None) -> str:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            value = shlex.join(value)
        if not isinstance(value, str):
            raise TypeError("runtime_env field 'py_executable' must be a string (a program "
                            f"and its arguments), got {type(value).__name__}")
        try:
            argv = split(value)
        except ValueError as e:
            raise ValueError(f"runtime_env field 'py_executable': cannot split {value!r}: {e}"
                             ) from None
        if not argv:
            raise ValueError("runtime_env field 'py_executable' must not be empty")
        return value.strip()

    def modify(self, value: str, created: Any, launch, setup) -> None:
        argv = split(value)
        launch.py_executable = [resolve(argv[0], launch, setup), *argv[1:]]
        setup.log(f"workers start as {shlex.join(launch.py_executable)} <worker>")


def resolve(program: str, launch, setup) -> str:
    program = os.path.expanduser(program)
    bases = [b for b in (launch.cwd, os.getcwd()) if b]
    if os.path.isabs(program):
        found = program if os.path.exists(program) else None
    elif os.sep in program or (os.altsep and os.altsep in program):
        found = next((os.path.join(b, program) for b in bases
                      if os.path.exists(os.path.join(b, program))), None)
    else:
        path = launch.env_vars.get("PATH", os.environ.get("PATH", ""))
        found = shutil.which(program, path=path)
        if found is None and launch.cwd and os.path.isfile(os.path.join(launch.cwd, program)):
            found = os.path.join(launch.cwd, program)
    if found is None:
        raise setup.fail(f"py_executable: program {program!r} not found (looked on the "
                         f"workers' PATH and in {bases})")
    if not os.access(found, os.X_OK):
        raise setup.fail(f"py_executable: {found} is not executable (chmod +x it)")
    return os.path.abspath(found)
