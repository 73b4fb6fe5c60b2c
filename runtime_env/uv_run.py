"""Drivers started by `uv run`: workers get the driver's resolved environment by default.

`uv run` resolves an environment (the project's `.venv`, or an ephemeral one for `--with` and
scripts) and starts the driver on its interpreter, with `UV_RUN_RECURSION_DEPTH` set in the
environment. The driver's `sys.executable` already *is* that environment's python, so workers
started on it get the same packages without running `uv run` again per worker. Ray (>= 2.47)
does the same by default; `MINRAY_UV_RUN_RUNTIME_ENV=0` (or Ray's
`RAY_ENABLE_UV_RUN_RUNTIME_ENV=0`) opts out: workers then run on the interpreter beneath the
uv environment, and `pip`/`uv` envs are layered on that interpreter only.

Ray also sets `working_dir` to the driver's cwd then, so remote nodes see the same sources;
on one machine workers already start in the driver's cwd with its script directory on their
path, so no copy is made.
"""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

UV_RUN_MARKER = "UV_RUN_RECURSION_DEPTH"
OPT_OUT_VARS = ("MINRAY_UV_RUN_RUNTIME_ENV", "RAY_ENABLE_UV_RUN_RUNTIME_ENV")
_FALSE = ("0", "false", "no", "off")


def under_uv_run() -> bool:
    """True when this process (the driver) was started by `uv run`."""
    return bool(os.environ.get(UV_RUN_MARKER, "").strip())


def enabled() -> bool:
    """False when the user opted out of inheriting the `uv run` environment."""
    for var in OPT_OUT_VARS:
        value = os.environ.get(var)
        if value is not None and value.strip().lower() in _FALSE:
            return False
    return True


def base_python() -> str:
    """The interpreter beneath the driver's virtual environment (itself when there is none)."""
    base = getattr(sys, "_base_executable", None)
    return base if base and os.path.exists(base) else sys.executable


def worker_python() -> str:
    """The interpreter workers run on when no field says otherwise."""
    if under_uv_run() and not enabled():
        return base_python()
    return sys.executable


def sees_base_site_packages() -> bool:
    """True when workers would import from the base interpreter's site-packages: no venv, a
    venv made with --system-site-packages, or the uv run opt-out. A pip/uv env then sees them
    too, and only then: it shows workers what the driver sees, not more."""
    if under_uv_run() and not enabled():
        return True
    base = os.path.realpath(sys.base_prefix) + os.sep
    return any(Path(p).name in ("site-packages", "dist-packages")
               and os.path.realpath(p).startswith(base) for p in sys.path if p)


def layer_dirs() -> list[str]:
    """Site directories of the driver's environment that its base interpreter lacks.

    A `pip`/`uv` env is a virtualenv with `--system-site-packages` over the base interpreter;
    these directories (a venv's site-packages, the overlays of `uv run --with`) are added
    after the env's own packages, so the env is layered on the driver's whole environment.
    """
    if under_uv_run() and not enabled():
        return []
    base = os.path.realpath(sys.base_prefix) + os.sep
    user = os.path.realpath(site.getusersitepackages()) if site.ENABLE_USER_SITE else None
    out: list[str] = []
    for entry in sys.path:
        if not entry or Path(entry).name not in ("site-packages", "dist-packages"):
            continue
        real = os.path.realpath(entry)
        if real.startswith(base) or real == user or not os.path.isdir(real) or real in out:
            continue
        out.append(real)
    return out
