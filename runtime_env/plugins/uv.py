"""uv: the `uv pip` flavour of `pip`.

Forms: a list of requirement specifiers, a path to a requirements.txt (read on the driver), or
`{"packages", "uv_check", "uv_version", "uv_pip_install_options"}`. `uv_version` uses the uv
that comes with minray when it satisfies the spec, otherwise installs that uv once into the
cache (`uv/uv-tool-<hash>`) and installs with it.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

from runtime_env.plugins.installers import VenvPlugin, get_or_build, uv_bin, venv_python


@functools.cache
def _uv_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30,
                         check=False)
    parts = out.stdout.split()
    return parts[1] if len(parts) > 1 else "0"


def satisfies(version: str, spec: str, package: str) -> bool:
    """Does `version` of `package` satisfy the Ray-style `spec` ("==0.4.0;python_version..")?
    A spec whose marker does not apply here asks for nothing."""
    from packaging.requirements import Requirement

    req = Requirement(package + spec)
    if req.marker is not None and not req.marker.evaluate():
        return True
    return req.specifier.contains(version, prereleases=True)


class UvPlugin(VenvPlugin):
    name = "uv"
    conflicts = ("pip", "conda")
    check_key = "uv_check"
    version_key = "uv_version"
    options_key = "uv_pip_install_options"
    version_package = "uv"

    def tool(self, value: dict, installer: str, setup) -> str:
        spec = value.get(self.version_key)
        default = uv_bin()
        if spec is None:
            return default
        current = _uv_version(default)
        if satisfies(current, spec, "uv"):
            setup.log(f"uv {current} satisfies uv_version {spec!r}: using it")
            return default
        key = "uv-tool-" + hashlib.sha256(spec.encode()).hexdigest()[:12]

        def build(path: Path) -> None:
            setup.log(f"installing uv{spec} into {path}")
            setup.step("install", f"uv{spec} (the installer)")
            venv = path / "venv"
            setup.run([default, "venv", "--quiet", str(venv)], cwd=str(path))
            setup.run([default, "pip", "install", "--python", str(venv_python(venv)),
                       "uv" + spec, *value.get(self.options_key, [])])

        uv = venv_python(Path("venv")).parent / "uv"
        path = get_or_build(setup, self.name, key, build, meta={"uv_version": spec},
                            watch=[uv])
        return str(path / uv)
