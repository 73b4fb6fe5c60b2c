"""Envs and cache entries in a few words, as progress lines and `minray env list` show them.

`summary` works from a validated spec alone ("pip: 3 packages; working_dir: package 3f2a1c"),
`holds` from a cache entry's manifest metadata (the packages, the URI, the source folder).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_NOT_SHOWN = ("config", "excludes")


def summary(env: Mapping[str, Any]) -> str:
    """What an env holds, in a few words per field."""
    parts = [_field(name, value) for name, value in env.items() if name not in _NOT_SHOWN]
    return "; ".join(parts) or "nothing (an empty env)"


def _field(name: str, value: Any) -> str:
    if name in ("pip", "uv"):
        packages = value.get("packages", []) if isinstance(value, Mapping) else value
        return f"{name}: {_count(requirements(packages), 'package')}"
    if name == "conda":
        if isinstance(value, Mapping):
            return f"conda: {_count(list(value.get('dependencies') or []), 'dependency')}"
        return f"conda: env {value}"
    if name == "working_dir":
        return f"working_dir: {_source(value)}"
    if name == "py_modules":
        return f"py_modules: {_count(list(value), 'module')}"
    if name == "env_vars" and isinstance(value, Mapping):
        return f"env_vars: {', '.join(sorted(value))}"
    if isinstance(value, str):
        return f"{name}: {value}"
    return name


# Options whose value may be the next list item: ["--find-links", "/wheels", "emoji"].
_TAKES_VALUE = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "-r",
                "--requirement", "-c", "--constraint", "--trusted-host", "--index",
                "--default-index")


def requirements(lines: Any) -> list[str]:
    """The requirements of a package list, without options (--index-url URL, ...)."""
    if not isinstance(lines, (list, tuple)):
        return []
    out, skip_next = [], False
    for line in lines:
        if not isinstance(line, str) or skip_next:
            skip_next = False
            continue
        if line.startswith("-"):
            skip_next = line in _TAKES_VALUE
            continue
        out.append(line)
    return out


def _source(value: Any) -> str:
    text = str(value)
    if text.startswith("minray-pkg://"):
        return f"package {text.rsplit('/', 1)[-1][:12]}"
    return text


def _count(items: list, noun: str) -> str:
    if len(items) == 1:
        return f"1 {noun}"
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{len(items)} {plural}"


def holds(field: str, meta: Mapping[str, Any]) -> str:
    """What one cache entry holds, from its manifest's metadata."""
    if "packages" in meta:
        packages = requirements(meta["packages"])
        installer = f" (with {meta['installer']})" if meta.get("installer") else ""
        return f"{field}: {', '.join(packages) or 'no packages'}{installer}"
    if "uri" in meta:
        return f"{field}: {meta['uri']}"
    if "source" in meta:
        files = f" ({meta['files']} files)" if "files" in meta else ""
        return f"{field}: {meta['source']}{files}"
    if "spec" in meta and isinstance(meta["spec"], Mapping):
        deps = [d if isinstance(d, str) else "pip: [...]"
                for d in meta["spec"].get("dependencies") or []]
        return f"{field}: {', '.join(deps)}"
    if "uv_version" in meta:
        return f"{field}: uv{meta['uv_version']} (the installer)"
    return field
