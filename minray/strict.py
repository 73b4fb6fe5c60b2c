"""Strict mode: refuse what minray allows on one machine but Ray refuses or does otherwise, so
code tested here also runs on a cluster. On with MINRAY_STRICT=1 (portable: Ray ignores it),
or `init(_strict=True)`.

Each check names Ray's rule; README's "Differences from Ray" lists them all.
"""

from __future__ import annotations

import os
import re

_enabled: bool | None = None  # set by init(_strict=...); None: the environment decides


def enabled() -> bool:
    if _enabled is not None:
        return _enabled
    return os.environ.get("MINRAY_STRICT", "").lower() in ("1", "true", "yes")


def set_enabled(value: bool | None) -> None:
    global _enabled
    _enabled = value


class NotPortableError(ValueError):
    """Strict mode: this works on minray but Ray refuses it (or does something else)."""


def check_runtime_env(env, *, task_level: bool) -> None:
    """A runtime_env as given (a dict or RuntimeEnv), for a task or actor or for the job."""
    if not env or not hasattr(env, "get"):
        return
    for field in ("pip", "uv"):
        value = env.get(field)
        if isinstance(value, str) and os.path.isfile(value):
            check_requirements_file(value)
    if task_level:
        _check_task_level(env)


def _check_task_level(env) -> None:
    working_dir = env.get("working_dir")
    if isinstance(working_dir, str) and _local(working_dir):
        raise NotPortableError(
            f"runtime_env working_dir {working_dir!r}: Ray supports a local directory only "
            f"for the job (init(runtime_env=...) or job submission), not per task or actor; "
            f"use a remote URI here, or set it for the job (strict mode, MINRAY_STRICT)")
    for entry in env.get("py_modules") or ():
        if not isinstance(entry, str) or (_local(entry) and not entry.endswith(".whl")):
            shown = getattr(entry, "__name__", entry)
            raise NotPortableError(
                f"runtime_env py_modules entry {shown!r}: Ray supports local directories and "
                f"module objects only for the job, not per task or actor; use a remote URI or "
                f"a .whl here, or set it for the job (strict mode, MINRAY_STRICT)")
    config = env.get("config")
    if isinstance(config, dict) and "eager_install" in config:
        raise NotPortableError(
            "runtime_env config eager_install: Ray supports it only for the job, not per task "
            "or actor (strict mode, MINRAY_STRICT)")


_LOCAL_REQUIREMENT = re.compile(r"^\s*(-r|--requirement|-c|--constraint|-e|\.{0,2}/|file:)|"
                                r"\.whl\s*$")


def check_requirements_file(path: str) -> None:
    """Ray installs a requirements.txt on every node: lines naming local files cannot work."""
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if _LOCAL_REQUIREMENT.search(line.split("#", 1)[0]):
                raise NotPortableError(
                    f"{path}:{number}: {line.strip()!r} refers to a local file; Ray does not "
                    f"support local files inside a requirements.txt (strict mode, "
                    f"MINRAY_STRICT)")


def exit_note(unfinished: int) -> str:
    return (f"minray (strict mode): exiting with {unfinished} unfinished task(s); on Ray they "
            f"would be dropped, so minray drops them too. Call get() on their refs to wait")


def _local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("minray-pkg://")
