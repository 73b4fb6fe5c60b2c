"""pip: packages installed into a virtualenv layered on the driver's environment.

Forms: a list of requirement specifiers, a path to a requirements.txt (read on the driver), or
`{"packages", "pip_check", "pip_version", "pip_install_options"}`. Installed with `uv pip`
(fast, uses uv's cache) unless `pip_version` is given or `MINRAY_PIP_INSTALLER=pip` is set:
then a virtualenv-made env and real `python -m pip`.
"""

from __future__ import annotations

import os
from pathlib import Path

from runtime_env.plugins.installers import VenvPlugin, venv_python

INSTALLER_VAR = "MINRAY_PIP_INSTALLER"


class PipPlugin(VenvPlugin):
    name = "pip"
    conflicts = ("conda", "uv")
    check_key = "pip_check"
    version_key = "pip_version"
    options_key = "pip_install_options"
    version_package = "pip"

    def installer(self, value: dict) -> str:
        if self.version_key in value:
            return "pip"
        choice = os.environ.get(INSTALLER_VAR, "uv").strip().lower() or "uv"
        if choice not in ("uv", "pip"):
            raise ValueError(f"{INSTALLER_VAR} must be 'uv' or 'pip', got {choice!r}")
        return choice

    def tool(self, value: dict, installer: str, setup) -> str:
        return "pip" if installer == "pip" else super().tool(value, installer, setup)

    def install(self, value: dict, tool: str, venv: Path, req: Path, setup) -> None:
        if tool == "pip" and self.version_key in value:
            # No --upgrade: a pip that already satisfies the spec stays, with no index access.
            setup.run([str(venv_python(venv)), "-m", "pip", "install",
                       "--disable-pip-version-check", "--no-input",
                       "pip" + value[self.version_key], *value.get(self.options_key, [])])
        super().install(value, tool, venv, req, setup)
