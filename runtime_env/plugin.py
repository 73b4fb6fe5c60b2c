"""The plugin interface: one plugin per runtime_env field.

A plugin validates its field at the call site, creates what the field needs (into the cache),
and modifies the launch context of the workers. Plugins run in ascending `priority`, so
`working_dir` (10) is in place before `pip`/`conda` (30) install from it.

Third-party plugins register a `Plugin` subclass under the entry point group
`minray.runtime_env_plugins`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from runtime_env.context import LaunchContext
    from runtime_env.setup import Setup

ENTRY_POINT_GROUP = "minray.runtime_env_plugins"

_BUILTIN = (
    "runtime_env.plugins.working_dir:WorkingDirPlugin",
    "runtime_env.plugins.py_modules:PyModulesPlugin",
    "runtime_env.plugins.pip:PipPlugin",
    "runtime_env.plugins.uv:UvPlugin",
    "runtime_env.plugins.conda:CondaPlugin",
    "runtime_env.plugins.py_executable:PyExecutablePlugin",
    "runtime_env.plugins.env_vars:EnvVarsPlugin",
)


class Plugin:
    """Base class of a runtime_env field."""

    name: ClassVar[str]
    priority: ClassVar[int] = 50
    conflicts: ClassVar[tuple[str, ...]] = ()

    def validate(self, value: Any, spec: Mapping[str, Any]) -> Any:
        """Check and normalise `value` on the caller's side; raise TypeError/ValueError.

        Must be idempotent: a normalised value validates to itself. `spec` is the whole
        runtime_env as given, for fields that read another (py_modules reads `excludes`).
        """
        return value

    def create(self, value: Any, setup: Setup) -> Any:
        """Build what the value needs (usually a cache entry) and return it for `modify`."""
        return None

    def modify(self, value: Any, created: Any, launch: LaunchContext, setup: Setup) -> None:
        """Adjust how workers start (interpreter, env vars, cwd, sys.path)."""


def _load(target: str) -> Plugin:
    module_name, _, attr = target.partition(":")
    module = __import__(module_name, fromlist=[attr])
    return getattr(module, attr)()


@functools.cache
def registry() -> dict[str, Plugin]:
    """All plugins by field name: the built-in ones, then those of installed distributions."""
    plugins: dict[str, Plugin] = {}
    for target in _BUILTIN:
        try:
            plugin = _load(target)
        except ModuleNotFoundError as e:  # a field whose module is not written yet
            if not e.name or not e.name.startswith("runtime_env.plugins"):
                raise
            continue
        plugins[plugin.name] = plugin
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        plugin = ep.load()()
        plugins[plugin.name] = plugin
    return plugins


def ordered(fields: Iterable[str]) -> list[Plugin]:
    """The plugins of the given fields, in the order they run."""
    reg = registry()
    return sorted((reg[f] for f in fields if f in reg), key=lambda p: (p.priority, p.name))
