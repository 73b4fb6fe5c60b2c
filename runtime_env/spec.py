"""RuntimeEnv and RuntimeEnvConfig: validated at the call site, normalised, hashed.

A spec is a pure value once validated: local inputs (directories, files, modules) have been
resolved by the plugins into content-addressed URIs, so two equal specs mean the same
environment, and the hash of the canonical form keys the cache and the worker pool.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runtime_env import plugin as _plugin

if TYPE_CHECKING:
    from runtime_env.cache import Cache

# Fields that are not plugins of their own: `config` shapes setup, `excludes` is read by the
# packaging plugins (working_dir, py_modules).
CONFIG = "config"
EXCLUDES = "excludes"
# Fields that do not change what a worker is, so they stay out of the identity.
_NOT_IDENTITY = (CONFIG,)

DEFAULT_SETUP_TIMEOUT_SECONDS = 600
MAX_SETUP_TIMEOUT_SECONDS = 365 * 24 * 3600


class RuntimeEnvConfig(dict):
    """Options of environment setup: `setup_timeout_seconds` and `eager_install`."""

    FIELDS = ("setup_timeout_seconds", "eager_install")

    def __init__(self, setup_timeout_seconds: int = DEFAULT_SETUP_TIMEOUT_SECONDS,
                 eager_install: bool = True, **unknown: Any):
        if unknown:
            from runtime_env.input_checks import did_you_mean

            raise ValueError(
                f"runtime_env field 'config': unknown option(s) {sorted(unknown)}"
                f"{did_you_mean(sorted(unknown), list(self.FIELDS))}; "
                f"known options are {list(self.FIELDS)}")
        timeout = setup_timeout_seconds
        if isinstance(timeout, bool) or not isinstance(timeout, int):  # Ray's rule: an int
            raise TypeError("runtime_env field 'config': 'setup_timeout_seconds' must be an "
                            f"int (seconds), got {type(timeout).__name__}")
        # Huge values cannot be waited for: they would fail on the setup thread, leaving the
        # task waiting forever.
        if timeout != -1 and not 0 < timeout <= MAX_SETUP_TIMEOUT_SECONDS:
            raise ValueError("runtime_env field 'config': 'setup_timeout_seconds' must be > 0 "
                             f"and at most {MAX_SETUP_TIMEOUT_SECONDS} (a year), or -1 for no "
                             f"timeout, got {timeout}")
        if not isinstance(eager_install, bool):
            raise TypeError("runtime_env field 'config': 'eager_install' must be a bool, got "
                            f"{type(eager_install).__name__}")
        super().__init__(setup_timeout_seconds=timeout, eager_install=eager_install)

    @classmethod
    def parse(cls, value: Any) -> RuntimeEnvConfig:
        if isinstance(value, RuntimeEnvConfig):
            return value
        if not isinstance(value, Mapping):
            raise TypeError("runtime_env field 'config' must be a dict or RuntimeEnvConfig, "
                            f"got {type(value).__name__}")
        if not all(isinstance(k, str) for k in value):
            raise TypeError("runtime_env field 'config': option names must be strings")
        return cls(**value)

    @property
    def timeout(self) -> float | None:
        """The setup deadline in seconds, None when unlimited."""
        t = self["setup_timeout_seconds"]
        return None if t == -1 else float(t)


class RuntimeEnv(dict):
    """A runtime environment, as in Ray: a dict of fields, validated when it is made.

    Unknown fields are an error that lists the known ones (Ray lets a typo pass silently).
    Local folders and files are packaged into the default cache (`parse` takes another).
    """

    def __init__(self, *, _validate: bool = True, **fields: Any):
        if _validate and fields:
            fields = _validated(fields, _plugin.Validation())
        super().__init__({k: v for k, v in fields.items() if v is not None})

    # --- Ray-compatible accessors -------------------------------------------------------
    def to_dict(self) -> dict:
        return dict(self)

    def serialize(self) -> str:
        return json.dumps(self, sort_keys=True)

    @classmethod
    def deserialize(cls, text: str) -> RuntimeEnv:
        return cls(_validate=False, **json.loads(text))

    def config(self) -> RuntimeEnvConfig:
        return RuntimeEnvConfig.parse(self.get(CONFIG, {}))

    def env_vars(self) -> dict:
        return dict(self.get("env_vars", {}))

    def working_dir(self) -> str:
        return self.get("working_dir", "")

    def py_modules(self) -> list:
        return list(self.get("py_modules", []))

    def has_working_dir(self) -> bool:
        return "working_dir" in self

    def has_py_modules(self) -> bool:
        return "py_modules" in self

    def has_pip(self) -> bool:
        return bool(self.get("pip"))

    def has_uv(self) -> bool:
        return bool(self.get("uv"))

    def has_conda(self) -> bool:
        return bool(self.get("conda"))

    def pip_config(self) -> dict:
        """The normalised `pip` field ({"packages": [...], "pip_check": ...}), {} if none."""
        return dict(self.get("pip") or {})

    def uv_config(self) -> dict:
        return dict(self.get("uv") or {})

    def conda_config(self) -> str | None:
        """A created conda env's spec as JSON, as Ray gives it; None for an env's name."""
        conda = self.get("conda")
        return json.dumps(conda, sort_keys=True) if isinstance(conda, Mapping) else None

    def conda_env_name(self) -> str | None:
        conda = self.get("conda")
        return conda if isinstance(conda, str) else None

    def py_executable(self) -> str | None:
        return self.get("py_executable")

    # --- identity -----------------------------------------------------------------------
    def canonical(self) -> str:
        """Canonical JSON of the fields that decide what a worker is."""
        body = {k: v for k, v in self.items() if k not in _NOT_IDENTITY}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    def env_hash(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:20]

    def is_empty(self) -> bool:
        return not any(k not in _NOT_IDENTITY for k in self)


def known_fields() -> list[str]:
    return sorted([*_plugin.known_fields(), CONFIG, EXCLUDES])


# Ray's fields that run nothing on one machine: each is answered with what to do instead.
_NO_CONTAINERS = ("minray runs no containers: give the env's packages with 'pip', 'uv' or "
                  "'conda' instead (or run the job on Ray)")
_NOT_HERE = {
    "image_uri": _NO_CONTAINERS,
    "container": _NO_CONTAINERS,
    "nsight": "minray starts no profiler for you: start workers under one with "
              "'py_executable', e.g. {'py_executable': 'nsys profile python'}",
}


def _validated(fields: Mapping[str, Any], validation: _plugin.Validation) -> dict:
    from runtime_env import input_checks  # here: init() without a runtime_env never loads it

    # None: not given; an empty excludes is dropped, as Ray does
    fields = {k: v for k, v in fields.items()
              if v is not None and not (k == EXCLUDES and v == [])}
    for name in fields:
        if name in _NOT_HERE:
            raise ValueError(f"runtime_env field {name!r} is Ray's, but {_NOT_HERE[name]}")
    unknown = [k for k in fields if k not in (CONFIG, EXCLUDES) and not _plugin.is_field(k)]
    if unknown:
        raise ValueError(f"runtime_env: unknown field(s) {sorted(unknown)}"
                         f"{input_checks.did_you_mean(unknown, known_fields())}; "
                         f"known fields are {known_fields()}")
    for name in fields:
        if name in (CONFIG, EXCLUDES):
            continue
        for other in _plugin.get(name).conflicts:
            if other in fields:
                raise ValueError(f"runtime_env: '{name}' and '{other}' cannot both be given "
                                 f"in one runtime_env")
    out: dict = {}
    order = [n for n in (EXCLUDES, CONFIG) if n in fields]
    for name in [*order, *(p.name for p in _plugin.ordered(fields))]:
        where = f"runtime_env field '{name}'"
        with input_checks.about(where):
            input_checks.reject_nul(fields[name], where)  # before a plugin gives it to the OS
            out[name] = _validate_field(name, fields, validation)
    input_checks.check_size(out)
    return {k: out[k] for k in fields}  # keep the user's order for display


def _validate_field(name: str, fields: Mapping[str, Any], validation: _plugin.Validation):
    if name == EXCLUDES:
        return validate_excludes(fields[name])
    if name == CONFIG:
        return dict(RuntimeEnvConfig.parse(fields[name]))
    return _plugin.get(name).validate(fields[name], fields, validation)


def validate_excludes(value: Any) -> list[str]:
    bad = [value] if not isinstance(value, (list, tuple)) else [
        p for p in value if not isinstance(p, str)]
    if bad:
        raise TypeError("runtime_env field 'excludes' must be a list of gitignore-style "
                        f"pattern strings, got {_shown(bad[0])}")
    return list(value)


def _shown(value: Any) -> str:
    """A short, safe description of a wrong value: strings quoted, anything else its type."""
    return repr(value[:100]) if type(value) is str else type(value).__name__


def parse(value: Any, *, cache: Cache | None = None) -> RuntimeEnv:
    """Accept what a user may pass (None, a dict, a RuntimeEnv) and return a valid RuntimeEnv.

    Local folders and files are packaged into `cache` (None: the default cache); give
    `prepare` the same one. A RuntimeEnv is taken as it is: it was validated when made.
    """
    if value is None:
        return RuntimeEnv()
    if isinstance(value, RuntimeEnv):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"runtime_env must be a dict or RuntimeEnv, got {type(value).__name__}")
    from runtime_env import input_checks

    with input_checks.about("runtime_env"):  # a mapping whose iteration raises, say
        fields = dict(value)
    bad = [k for k in fields if not isinstance(k, str)]
    if bad:
        raise TypeError(f"runtime_env field names must be strings, got a key of type "
                        f"{type(bad[0]).__name__}")
    return RuntimeEnv(_validate=False, **_validated(fields, _plugin.Validation(cache)))
