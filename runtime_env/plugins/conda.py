"""conda: workers run in a conda environment, made from a spec or already existing.

Forms: a dict (an environment YAML), a path to an environment.yml (read on the driver), the name
of an existing env, or the path (prefix) of one. An existing env must have the driver's Python
major.minor (workers import minray from the driver's paths); a made one gets `python=X.Y` added
when its spec names no python. Made with the first of `CONDA_EXE`/`MAMBA_EXE`, micromamba,
mamba, conda found; the env lives in the cache under `conda/<key>/env`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime_env.expansion import expand_known, expansion_env
from runtime_env.plugin import Plugin
from runtime_env.plugins.installers import BUILD_MARK, activate, get_or_build, site_packages

DRIVER_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
_VERSION_CODE = "import sys; print('%d.%d' % sys.version_info[:2])"
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
TOOLS = ("micromamba", "mamba", "conda")


def prefix_python(prefix: str | Path) -> Path:
    prefix = Path(prefix)
    return prefix / "python.exe" if os.name == "nt" else prefix / "bin" / "python"


def python_version(python: str | Path, timeout: float | None = 30) -> str:
    """major.minor of an interpreter, asked by running it."""
    out = subprocess.run([str(python), "-c", _VERSION_CODE], capture_output=True, text=True,
                         timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{python} failed: {(out.stderr or out.stdout).strip()[-500:]}")
    return out.stdout.strip()


@functools.cache
def _cached_version(python: str, mtime_ns: int) -> str:
    return python_version(python)


def check_prefix(prefix: str) -> str | None:
    """Why `prefix` cannot run workers, or None when it can."""
    p = Path(prefix)
    if not p.is_dir():
        return f"{prefix} does not exist"
    if not (p / "conda-meta").is_dir():
        return f"{prefix} is not a conda environment (it has no conda-meta/)"
    python = prefix_python(p)
    if not python.exists():
        return f"{prefix} has no Python ({python} is missing): add python={DRIVER_PYTHON}"
    try:
        version = _cached_version(str(python), python.stat().st_mtime_ns)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return f"cannot run {python}: {e}"
    if version != DRIVER_PYTHON:
        return (f"{prefix} has Python {version} but the driver runs Python {DRIVER_PYTHON}; "
                f"workers need the same major.minor")
    return None


def _is_path(value: str) -> bool:
    return os.path.isabs(value) or value.startswith(("." + os.sep, "~")) or os.sep in value


def read_environment_file(path: str) -> dict:
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a dependency
        raise ValueError("runtime_env field 'conda': reading an environment.yml needs PyYAML "
                         "(pip install pyyaml)") from None
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"runtime_env field 'conda': environment file {path!r} does not exist "
                         f"(relative paths are relative to the driver's cwd, {os.getcwd()})")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"runtime_env field 'conda': {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise TypeError(f"runtime_env field 'conda': {path} must hold a mapping (name, "
                         f"channels, dependencies), got {type(data).__name__}")
    return _checked_dict(data)


def _checked_dict(value: Mapping) -> dict:
    try:
        data = json.loads(json.dumps(value))
    except (TypeError, ValueError) as e:
        raise TypeError(f"runtime_env field 'conda': the environment dict must be plain JSON "
                        f"data: {e}") from None
    deps = data.get("dependencies", [])
    if not isinstance(deps, list):
        raise TypeError("runtime_env field 'conda': 'dependencies' must be a list")
    for dep in deps:
        if not isinstance(dep, (str, dict)):
            raise TypeError(f"runtime_env field 'conda': dependency {dep!r} must be a string or "
                            "a {'pip': [...]} dict")
    return data


def with_python(env: dict) -> dict:
    """Add python=<driver major.minor> unless the spec names a python itself."""
    deps = list(env.get("dependencies", []))
    names = [re.split(r"[\s=<>!~\[]", d, maxsplit=1)[0].split("::")[-1]
             for d in deps if isinstance(d, str)]
    if "python" not in names:
        deps.insert(0, f"python={DRIVER_PYTHON}")
    return {**env, "dependencies": deps}


def find_tool() -> str | None:
    for var in ("CONDA_EXE", "MAMBA_EXE"):
        exe = os.environ.get(var)
        if exe and os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe
    for name in TOOLS:
        exe = shutil.which(name)
        if exe:
            return exe
    return None


def create_command(tool: str, prefix: Path, file: Path) -> list[str]:
    if "micromamba" in Path(tool).name:
        return [tool, "create", "--yes", "--prefix", str(prefix), "--file", str(file)]
    return [tool, "env", "create", "--prefix", str(prefix), "--file", str(file)]


def _expand_all(data: Any, env: Mapping[str, str]) -> Any:
    if isinstance(data, str):
        return expand_known(data, env)
    if isinstance(data, list):
        return [_expand_all(d, env) for d in data]
    if isinstance(data, dict):
        return {k: _expand_all(v, env) for k, v in data.items()}
    return data


def env_roots() -> list[Path]:
    """Where named envs live: next to the active env, under conda's/mamba's root, at home."""
    roots: list[Path] = []
    prefix = os.environ.get("CONDA_PREFIX")
    if prefix:
        p = Path(prefix)
        roots += [p / "envs", p.parent] if p.parent.name == "envs" else [p / "envs"]
    for var in ("CONDA_EXE", "MAMBA_EXE"):
        exe = os.environ.get(var)
        if exe:
            roots.append(Path(exe).resolve().parent.parent / "envs")
    if os.environ.get("MAMBA_ROOT_PREFIX"):
        roots.append(Path(os.environ["MAMBA_ROOT_PREFIX"]) / "envs")
    home = Path.home()
    roots += [home / ".conda" / "envs"] + [home / d / "envs" for d in
                                           ("miniforge3", "miniconda3", "anaconda3", "micromamba")]
    return list(dict.fromkeys(roots))


class CondaPlugin(Plugin):
    name = "conda"
    priority = 30
    conflicts = ("pip", "uv")

    def validate(self, value: Any, spec: Mapping[str, Any], validation=None) -> dict | str:
        if isinstance(value, Mapping):
            return _checked_dict(value)
        if not isinstance(value, str):
            raise TypeError("runtime_env field 'conda' must be a dict (environment YAML), a path "
                            "to an environment.yml, an env name or an env prefix, got "
                            f"{type(value).__name__}")
        value = value.strip()
        if value.endswith((".yml", ".yaml")):
            return read_environment_file(value)
        if _is_path(value):
            prefix = os.path.abspath(os.path.expanduser(value))
            problem = check_prefix(prefix)
            if problem:
                raise ValueError(f"runtime_env field 'conda': {problem}")
            return prefix
        if not _NAME.match(value):
            raise ValueError(f"runtime_env field 'conda': {value!r} is not an env name, an "
                             "absolute prefix or a path to an environment.yml")
        return value

    def create(self, value: dict | str, setup) -> Path:
        if isinstance(value, dict):
            return self._create_env(value, setup)
        prefix = value if os.path.isabs(value) else self._find_named(value, setup)
        problem = check_prefix(prefix)
        if problem:
            raise setup.fail(problem)
        setup.log(f"using existing conda env {prefix}")
        return Path(prefix)

    def _find_named(self, name: str, setup) -> str:
        roots = env_roots()
        if name == "base":
            for var in ("CONDA_EXE", "MAMBA_EXE"):
                if os.environ.get(var):
                    return str(Path(os.environ[var]).resolve().parent.parent)
        for root in roots:
            if (root / name / "conda-meta").is_dir():
                return str(root / name)
        tool = find_tool()
        if tool:
            out = setup.run([tool, "env", "list", "--json"])
            for found in re.findall(r'"([^"]+)"', out):
                if Path(found).name == name and (Path(found) / "conda-meta").is_dir():
                    return found
        raise setup.fail(f"conda env {name!r} not found (looked in "
                         f"{', '.join(str(r) for r in roots)}"
                         f"{' and asked ' + tool if tool else ''})")

    def _create_env(self, value: dict, setup) -> Path:
        spec = with_python(_expand_all(value, expansion_env(setup)))
        tool = find_tool()
        if tool is None:
            raise setup.fail("creating a conda environment needs conda, mamba or micromamba, "
                             "and none was found on PATH or in CONDA_EXE/MAMBA_EXE. Install "
                             "one (e.g. micromamba or Miniforge), or name an existing env, or "
                             "use the 'pip'/'uv' field")
        blob = json.dumps({"spec": spec, "tool": Path(tool).name, "python": sys.version},
                          sort_keys=True)
        key = hashlib.sha256(blob.encode()).hexdigest()[:16]

        def build(path: Path) -> None:
            setup.log(f"{BUILD_MARK} {path} with {tool}")
            setup.step("create", f"with {Path(tool).name}")
            file = path / "environment.yml"
            file.write_text(json.dumps(spec, indent=1))  # JSON is YAML
            setup.run(create_command(tool, path / "env", file), cwd=str(path))
            problem = check_prefix(str(path / "env"))
            if problem:
                raise setup.fail(problem)

        env = Path("env")
        return get_or_build(setup, self.name, key, build, meta={"tool": tool, "spec": spec},
                            watch=[prefix_python(env), site_packages(env)]) / env

    def modify(self, value: Any, created: Path, launch, setup) -> None:
        activate(launch, created, {"CONDA_PREFIX": str(created),
                                   "CONDA_DEFAULT_ENV": created.name if isinstance(value, str)
                                   and not os.path.isabs(value) else str(created)})
