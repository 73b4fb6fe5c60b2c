"""The plugin interface: one plugin per runtime_env field.

A plugin validates its field at the call site, creates what the field needs (into the cache),
and modifies the launch context of the workers. Plugins run in ascending `priority`, so
`working_dir` (10) is in place before `pip`/`conda` (30) install from it.

Third-party plugins register a `Plugin` subclass under the entry point group
`minray.runtime_env_plugins`, with the entry point named after the field. A plugin written
before `validate` took its `validation` argument (`validate(self, value, spec)`) still works:
it is called without it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from runtime_env.cache import Cache
    from runtime_env.context import LaunchContext
    from runtime_env.setup import Setup

ENTRY_POINT_GROUP = "minray.runtime_env_plugins"

# Built-in fields and where their plugins live: a plugin module is imported only when its field
# is used, so `init()` without pip or conda pays for neither.
_BUILTIN = {
    "working_dir": "runtime_env.plugins.working_dir:WorkingDirPlugin",
    "py_modules": "runtime_env.plugins.py_modules:PyModulesPlugin",
    "pip": "runtime_env.plugins.pip:PipPlugin",
    "uv": "runtime_env.plugins.uv:UvPlugin",
    "conda": "runtime_env.plugins.conda:CondaPlugin",
    "py_executable": "runtime_env.plugins.py_executable:PyExecutablePlugin",
    "env_vars": "runtime_env.plugins.env_vars:EnvVarsPlugin",
    "worker_process_setup_hook": "runtime_env.plugins.setup_hook:SetupHookPlugin",
}


class Validation:
    """What `Plugin.validate` may use besides the value and the spec: the cache that local
    folders and files are packaged into, which `prepare` must then be given too."""

    def __init__(self, cache: Cache | None = None):
        self._cache = cache

    @property
    def cache(self) -> Cache:
        """The caller's cache, else the default one: looked up only when a value needs it, so a
        spec without local files never loads the cache."""
        if self._cache is None:
            from runtime_env.cache import default_cache

            self._cache = default_cache()
        return self._cache


class Plugin:
    """Base class of a runtime_env field."""

    name: ClassVar[str]
    priority: ClassVar[int] = 50
    conflicts: ClassVar[tuple[str, ...]] = ()

    def validate(self, value: Any, spec: Mapping[str, Any],
                 validation: Validation | None = None) -> Any:
        """Check and normalise `value` on the caller's side; raise TypeError/ValueError.

        Must be idempotent: a normalised value validates to itself. `spec` is the whole
        runtime_env as given, for fields that read another (py_modules reads `excludes`).
        `validation` is always given by `parse`; a plugin called directly may omit it.
        """
        return value

    def create(self, value: Any, setup: Setup) -> Any:
        """Build what the value needs (usually a cache entry) and return it for `modify`."""
        return None

    def modify(self, value: Any, created: Any, launch: LaunchContext, setup: Setup) -> None:
        """Adjust how workers start (interpreter, env vars, cwd, sys.path)."""


@functools.cache
def _installed() -> dict:
    """Third-party plugins: entry points named after their field. Looked up only when a field
    is not built in (scanning every installed distribution takes a few ms)."""
    from importlib import metadata

    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def is_field(name: str) -> bool:
    return name in _BUILTIN or name in _installed()


def known_fields() -> list[str]:
    return sorted({*_BUILTIN, *_installed()})


@functools.cache
def get(name: str) -> Plugin:
    """The plugin of a field (which must exist: see `is_field`)."""
    if name in _BUILTIN:
        module_name, _, attr = _BUILTIN[name].partition(":")
        cls = getattr(importlib.import_module(module_name), attr)
    else:
        cls = _installed()[name].load()
    plugin = cls()
    if plugin.name != name:
        raise TypeError(f"runtime_env plugin {cls.__name__} registered for field {name!r} "
                        f"says its name is {plugin.name!r}")
    if name not in _BUILTIN:
        _accept_validation(plugin)
    return plugin


def _accept_validation(plugin: Plugin) -> None:
    """Let a plugin written for `validate(value, spec)` be called with `validation` too."""
    import inspect

    two_args = plugin.validate
    try:
        inspect.signature(two_args).bind(None, None, None)
    except TypeError:
        plugin.validate = lambda value, spec, validation=None: two_args(value, spec)


def ordered(fields: Iterable[str]) -> list[Plugin]:
    """The plugins of the given fields, in the order they run."""
    return sorted((get(f) for f in fields if is_field(f)), key=lambda p: (p.priority, p.name))
