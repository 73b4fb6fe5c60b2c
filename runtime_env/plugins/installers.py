"""The installing fields: what `pip` and `uv` share (requirement lists, the virtualenv, the
installers), and what `conda` uses too (building an env in the cache, activating it).

An env is a virtualenv over the driver's base interpreter (with `--system-site-packages` when
the driver itself sees them), plus a `.pth` that adds the driver's own environment (a venv,
`uv run --with` overlays) after the env's packages: everything the driver can import stays
importable, nothing more, and the env's packages win.
It lives in the cache under `<field>/<key>/venv`, `key` hashing the expanded requirements, the
interpreter, the layered dirs and the installer.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime_env import uv_run
from runtime_env.errors import SetupError
from runtime_env.expansion import expand_known, expansion_env
from runtime_env.input_checks import did_you_mean
from runtime_env.masking import mask_all
from runtime_env.plugin import Plugin

LAYER_PTH = "_minray_layer.pth"
WHAT_FILE = "built_for.json"  # in the entry: the expanded value and installer it was built for
BUILD_MARK = "building new environment"


# --- call site ---------------------------------------------------------------------------
def parse_requirements(text: str) -> list[str]:
    """The requirement lines of a requirements.txt: comments and blanks dropped,
    backslash continuations joined. Option lines (`-r`, `--index-url`, ...) are kept."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(pending.strip())
    return lines


def read_requirements_file(path: str, field: str) -> list[str]:
    p = Path(path).expanduser()
    if not p.is_file():
        hint = ""
        if not path.endswith((".txt", ".in")) and os.sep not in path:  # a package, not a file
            hint = (f"; to install the package {path!r}, give a list: "
                    f"{{{field!r}: [{path!r}]}}")
        raise ValueError(f"runtime_env field '{field}': requirements file {path!r} does not exist "
                         f"(relative paths are relative to the driver's cwd, {os.getcwd()})"
                         f"{hint}")
    return parse_requirements(p.read_text())


def _str_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{what} must be a list of strings, got {type(value).__name__}")
    out = []
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"{what} must be a list of strings, got item {item!r}")
        if "\n" in item.strip() or "\r" in item.strip():  # would become two requirement lines
            raise ValueError(f"{what}: {item!r} holds a line break; give one requirement or "
                             f"option per list item")
        if item.strip():
            out.append(item.strip())
    return out


def version_spec(value: Any, what: str, package: str) -> str:
    """A version spec as Ray takes it ("==22.0.2;python_version=='3.8'"), checked."""
    from packaging.requirements import InvalidRequirement, Requirement

    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{what} must be a version specifier string like '==1.2.3'")
    spec = value.strip()
    if spec[0].isdigit():
        spec = "==" + spec
    try:
        Requirement(package + spec)
    except InvalidRequirement as e:
        raise ValueError(f"{what}: {value!r} is not a valid version specifier ({e})") from None
    return spec


def normalise(value: Any, field: str, *, check: str, version: str, options: str,
              package: str) -> dict:
    """list | path | dict -> {"packages": [...], check: bool, [version], [options]}."""
    where = f"runtime_env field '{field}'"
    if isinstance(value, str):
        return {"packages": read_requirements_file(value, field), check: False}
    if isinstance(value, (list, tuple)):
        return {"packages": _str_list(value, where), check: False}
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a list of requirements, a path to a requirements "
                        f"file or a dict, got {type(value).__name__}")
    known = ("packages", check, version, options)
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}{did_you_mean(unknown, list(known))}; "
                         f"known keys are {list(known)}")
    if "packages" not in value:
        raise ValueError(f"{where}: the dict form needs 'packages'")
    packages = value["packages"]
    out: dict = {"packages": (read_requirements_file(packages, field)
                              if isinstance(packages, str)
                              else _str_list(packages, f"{where} 'packages'"))}
    flag = value.get(check, False)
    if not isinstance(flag, bool):
        raise TypeError(f"{where} '{check}' must be a bool, got {type(flag).__name__}")
    out[check] = flag
    if value.get(version) is not None:
        out[version] = version_spec(value[version], f"{where} '{version}'", package)
    if value.get(options) is not None:
        out[options] = _str_list(value[options], f"{where} '{options}'")
    return out


# --- on the node -------------------------------------------------------------------------
def _local_file_stamps(lines: list[str]) -> dict[str, list]:
    """Size and mtime of requirements that are local files, so a rebuilt wheel is a new env."""
    stamps = {}
    for line in lines:
        for token in line.split():
            if os.sep in token and os.path.isfile(token):
                st = os.stat(token)
                stamps[token] = [st.st_size, st.st_mtime_ns]
    return stamps


@functools.cache
def interpreter_identity(python: str) -> str:
    return f"{os.path.realpath(python)} {sys.implementation.name} {sys.version}"


def env_key(field: str, value: dict, *, installer: str, python: str, layer: list[str]) -> str:
    body = {"field": field, "value": value, "installer": installer,
            "python": interpreter_identity(python), "layer": layer,
            "files": _local_file_stamps(value.get("packages", []))}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def site_packages(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Lib" / "site-packages"
    return venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def write_layer(venv: Path, layer: list[str]) -> None:
    """Add the driver's environment after the env's own packages (processing its .pth files,
    so editable installs of the driver's venv work too)."""
    if not layer:
        return
    lines = [f"import site; site.addsitedir({d!r})" for d in layer]
    (site_packages(venv) / LAYER_PTH).write_text("\n".join(lines) + "\n")


_UV_BIN_LOCK = threading.Lock()


def uv_bin() -> str:
    """The uv binary. Looked up under a lock: the node prepares envs on several threads, and
    uv.find_uv_bin reads sysconfig, whose first use is not thread-safe (CPython 3.11 returned
    None for "EXE" to a second thread)."""
    with _UV_BIN_LOCK:
        return _find_uv_bin()


@functools.cache
def _find_uv_bin() -> str:
    import uv

    return uv.find_uv_bin()


def get_or_build(setup, field: str, key: str, build, meta: dict, watch: list[Path]) -> Path:
    """Cache.get_or_create with the setup deadline on the lock, too, and a damaged entry's
    rebuild logged (and named in the error if it fails). `watch`: paths inside the entry."""
    built: list[Path] = []
    damage: list[str] = []

    def logged_build(path: Path) -> None:
        built.append(path)
        build(path)

    def damaged(problem: str) -> None:
        damage.append(problem)
        setup.log(f"cache entry damaged ({problem}): rebuilding it")

    try:
        path = setup.cache.get_or_create(field, key, logged_build, meta=mask_all(meta),
                                         watch=[str(w) for w in watch],
                                         timeout=setup.remaining(), on_damage=damaged)
    except TimeoutError:
        raise setup.fail("setup timed out (setup_timeout_seconds) waiting for another process "
                         "building the same environment") from None
    except SetupError as e:
        if not damage:
            raise
        raise setup.fail(f"the cache entry {setup.cache.path(field, key)} was damaged "
                         f"({damage[0]}) and rebuilding it failed: {e.reason}",
                         command=e.command, output_tail=e.output_tail) from None
    if not built:
        setup.log(f"using cached environment {path}")
    setup.used(field, key, built=bool(built))
    return path


class VenvPlugin(Plugin):
    """Base of `pip` and `uv`: validate to a dict, build a cached venv, run workers on it."""

    priority = 30
    check_key: str
    version_key: str
    options_key: str
    version_package: str

    def validate(self, value: Any, spec: Mapping[str, Any], validation=None) -> dict:
        return normalise(value, self.name, check=self.check_key, version=self.version_key,
                         options=self.options_key, package=self.version_package)

    # subclasses say which installer ("uv" or "pip") and which binary runs it, and install
    def installer(self, value: dict) -> str:
        return "uv"

    def tool(self, value: dict, installer: str, setup) -> str:
        """The program that installs: the uv binary, or for real pip the env's python."""
        return uv_bin()

    def create(self, value: dict, setup) -> Path:
        env = expansion_env(setup)
        expanded = {**value, "packages": [expand_known(p, env) for p in value["packages"]]}
        if self.options_key in value:
            expanded[self.options_key] = [expand_known(o, env) for o in value[self.options_key]]
        installer = self.installer(expanded)
        inside = self._running_inside(expanded, installer, setup)
        if inside is not None:
            return inside
        tool = self.tool(expanded, installer, setup)
        python = uv_run.worker_python()
        layer = uv_run.layer_dirs()
        key = env_key(self.name, expanded, installer=installer, python=python, layer=layer)

        def build(path: Path) -> None:
            setup.log(f"{BUILD_MARK} {path} with {installer}: {expanded['packages']}")
            venv = path / "venv"
            (path / WHAT_FILE).write_text(json.dumps([expanded, installer], sort_keys=True))
            setup.step("venv", f"with {installer}")
            self.make_venv(installer, python, venv, setup)
            write_layer(venv, layer)
            if expanded["packages"]:
                req = path / "requirements.txt"
                req.write_text("\n".join(expanded["packages"]) + "\n")
                from runtime_env.describe import requirements  # building: not on the call site

                count = len(requirements(expanded["packages"]))
                setup.step("install", f"{count} package{'s' * (count != 1)} with {installer}")
                self.install(expanded, tool, venv, req, setup)
            if expanded.get(self.check_key):
                setup.step("check")
                self.check(tool, venv, setup)

        venv = Path("venv")
        path = get_or_build(setup, self.name, key, build,
                            meta={"installer": installer, "packages": expanded["packages"],
                                  "python": python},
                            watch=[venv_python(venv), site_packages(venv)])
        return path / "venv"

    def _running_inside(self, expanded: dict, installer: str, setup) -> Path | None:
        """This very env, when this process runs in it: a job's entrypoint runs in its job's
        env, and its tasks must not get a second env layered on the first."""
        prefix = sys.prefix  # plain strings: every cached prepare passes here
        entry = os.path.dirname(prefix)
        if os.path.basename(prefix) != "venv" or \
                os.path.dirname(entry) != os.path.join(str(setup.cache.root), self.name):
            return None
        try:
            with open(os.path.join(entry, WHAT_FILE)) as f:
                built_for = json.load(f)
        except (OSError, ValueError):
            return None
        key = os.path.basename(entry)
        if built_for != [expanded, installer] or setup.cache.use(self.name, key):
            return None
        setup.log(f"using the environment this driver runs in, {prefix}")
        setup.used(self.name, key, built=False)
        return Path(prefix)

    def make_venv(self, installer: str, python: str, venv: Path, setup) -> None:
        system = ["--system-site-packages"] if uv_run.sees_base_site_packages() else []
        if installer == "pip":
            setup.run([sys.executable, "-m", "virtualenv", "--python", python, *system,
                       "--no-download", "--no-periodic-update", str(venv)], cwd=str(venv.parent))
        else:  # cwd: the entry, so uv finds no project of the user's to read a python from
            setup.run([uv_bin(), "venv", "--quiet", *system, "--python", python, str(venv)],
                      cwd=str(venv.parent))

    def install(self, value: dict, tool: str, venv: Path, req: Path, setup) -> None:
        py = str(venv_python(venv))
        if tool == "pip":
            setup.run([py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                       "-r", str(req), *value.get(self.options_key, [])])
        else:
            setup.run([tool, "pip", "install", "--python", py, "-r", str(req),
                       *value.get(self.options_key, [])])

    def check(self, tool: str, venv: Path, setup) -> None:
        py = str(venv_python(venv))
        if tool == "pip":
            setup.run([py, "-m", "pip", "check"])
        else:
            setup.run([tool, "pip", "check", "--python", py])

    def modify(self, value: Any, created: Path, launch, setup) -> None:
        activate(launch, created, {"VIRTUAL_ENV": str(created)})


def activate(launch, prefix: Path, variables: dict[str, str]) -> None:
    """Workers run on the env's python, with its bin/ first on PATH (so `python`, `pip` and a
    `py_executable` of "python" mean the env's)."""
    bindir = venv_python(prefix).parent
    launch.py_executable = [str(bindir / Path(venv_python(prefix)).name)]
    path = launch.env_vars.get("PATH", os.environ.get("PATH", ""))
    launch.env_vars["PATH"] = os.pathsep.join(filter(None, [str(bindir), path]))
    launch.env_vars.update(variables)
