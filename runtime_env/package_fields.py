"""What working_dir and py_modules share: turning a value into a package on the driver, and
finding the package's folder at setup.

On the driver (validate), a local folder or file is packaged into the cache and replaced by its
`minray-pkg://` URI, so the spec is a pure, content-addressed value; remote URIs are only
checked. At setup (create), a package URI names its cache folder and a remote URI is fetched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime_env import packaging, remote_uris
from runtime_env.cache import ABSENT
from runtime_env.plugin import Validation
from runtime_env.spec import validate_excludes

if TYPE_CHECKING:
    from runtime_env.setup import Setup


def excludes_of(spec: Mapping[str, Any]) -> list[str]:
    return validate_excludes(spec.get("excludes") or [])


def resolve(value: Any, field_name: str, spec: Mapping[str, Any],
            validation: Validation | None, *, module: bool) -> str:
    """The normalised form of one local path or URI (idempotent); a local one is packaged into
    the validation's cache (the default cache when a plugin is called without one).

    `module` selects py_modules' rules: a folder is shipped under its own name (so its parent
    goes on sys.path), and `.py` files and wheels are accepted.
    """
    value = _as_str(value, field_name)
    if packaging.is_pkg_uri(value):
        parsed = packaging.parse_pkg_uri(value)
        if parsed is None or parsed[0] != field_name:
            raise ValueError(f"runtime_env field '{field_name}': {value!r} is not a package "
                             f"URI of this field")
        return value
    scheme = remote_uris.scheme_of(value)
    if scheme is not None:
        if not remote_uris.is_remote(value):
            raise ValueError(f"runtime_env field '{field_name}': URI scheme '{scheme}://' is "
                             f"not supported; use one of "
                             f"{', '.join(s + '://' for s in remote_uris.CLIENTS)}")
        return remote_uris.check_uri(value, field_name, wheels=module)
    path = os.path.abspath(os.path.expanduser(value))
    if not os.path.exists(path):
        raise ValueError(f"runtime_env field '{field_name}': local path {value!r} does not "
                         f"exist (resolved to {path})")
    cache = (validation or Validation()).cache
    if os.path.isdir(path):
        prefix = os.path.basename(path) + "/" if module else ""
        return packaging.package_dir(path, field_name, excludes_of(spec), cache, prefix=prefix)
    if module and path.endswith(".py"):
        return packaging.package_file(path, field_name, cache)
    if module and path.endswith(".whl"):
        return packaging.package_archive(path, field_name, cache, wheel=True)
    if path.endswith(".zip"):
        return packaging.package_archive(path, field_name, cache, wheel=False)
    kinds = "a folder, a .py file, a .whl or .zip file" if module else "a folder or a .zip file"
    raise ValueError(f"runtime_env field '{field_name}': local path {value!r} must be {kinds}")


def folder(value: str, field_name: str, setup: Setup) -> Path:
    """The prepared folder of a normalised value, fetching a remote package if needed."""
    if not packaging.is_pkg_uri(value):
        return remote_uris.fetch(value, field_name, setup)
    field, key = packaging.parse_pkg_uri(value)
    problem = setup.cache.use(field, key)
    if problem == ABSENT:
        raise setup.fail(f"package {value} is no longer in the cache "
                         f"({setup.cache.root}), perhaps removed by garbage collection; "
                         f"validate the runtime_env again to re-package it")
    if problem is not None:  # its source may be gone or changed: only validation rebuilds it
        raise setup.fail(f"the cache entry of package {value} was damaged after it was "
                         f"built: {problem}; validate the runtime_env again to re-package it")
    setup.used(field, key, built=False)
    return setup.cache.path(field, key)


def _as_str(value: Any, field_name: str) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(f"runtime_env field '{field_name}' must be a str (a local path or a "
                        f"URI), got {type(value).__name__}")
    if not value:
        raise ValueError(f"runtime_env field '{field_name}' must not be empty")
    return value
