"""Which paths of a local directory go into a package.

Rules come in layers. For each path the most specific layer that has a matching pattern
decides; inside one layer the last matching pattern wins and `!pattern` re-includes (git's
rules). From most to least specific:

1. the `excludes` field of the runtime_env: said at the call site, so it beats everything;
2. ignore files found in the tree, deeper folders before shallower; in one folder
   `.minrayignore` before `.rayignore` (Ray's own, read as Ray reads it) before `.gitignore`;
   their patterns are relative to their own folder;
3. the default excludes: `.git`, `.venv/`, `venv/`, `__pycache__/`.

So `excludes: ["!venv"]` ships a `venv/` folder, and a nested `.gitignore` can re-include what
its parent's ignored. An excluded folder is never entered, so nothing below it comes back (as
in git). `.gitignore` files are skipped when MINRAY_RUNTIME_ENV_IGNORE_GITIGNORE=1 (or Ray's
RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1); `.minrayignore` and `.rayignore` files always apply.

pathspec is imported only when there is a pattern to match: it costs ~40 ms to import, more
than packaging a small directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pathspec

GITIGNORE = ".gitignore"
MINRAYIGNORE = ".minrayignore"
RAYIGNORE = ".rayignore"
IGNORE_GITIGNORE_VARS = ("MINRAY_RUNTIME_ENV_IGNORE_GITIGNORE", "RAY_RUNTIME_ENV_IGNORE_GITIGNORE")

# The default excludes (".git", ".venv/", "venv/", "__pycache__/"), checked by name: no
# pattern matching needed.
_DEFAULT_ANY = frozenset({".git"})
_DEFAULT_DIRS = frozenset({".venv", "venv", "__pycache__"})


def gitignore_enabled() -> bool:
    return not any(os.environ.get(v) == "1" for v in IGNORE_GITIGNORE_VARS)


def _spec(lines: Iterable[str]) -> pathspec.GitIgnoreSpec | None:
    lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return None
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)


@dataclass(frozen=True)
class Layer:
    base: str  # the folder the patterns are relative to: "" or "sub/dir/"
    spec: pathspec.GitIgnoreSpec


class Rules:
    """The layers that apply inside one folder of the walk (immutable; `enter` makes a child)."""

    def __init__(self, excludes: Layer | None, files: tuple[Layer, ...], gitignore: bool):
        self._excludes = excludes
        self._files = files  # most specific first
        self._gitignore = gitignore

    @classmethod
    def root(cls, excludes: Sequence[str] = ()) -> Rules:
        spec = _spec(excludes)
        return cls(Layer("", spec) if spec else None, (), gitignore_enabled())

    def enter(self, folder: str, rel: str, names: Iterable[str]) -> Rules:
        """The rules for the folder `rel` ("" or "a/b/") at `folder`, which holds `names`."""
        wanted = [MINRAYIGNORE, RAYIGNORE] + ([GITIGNORE] if self._gitignore else [])
        found = [n for n in wanted if n in names]
        if not found:
            return self
        layers = list(self._files)
        for name in reversed(found):  # .minrayignore ends up first: the most specific
            try:
                with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
                    spec = _spec(f.read().splitlines())
            except OSError:
                continue
            if spec:
                layers.insert(0, Layer(rel, spec))
        return Rules(self._excludes, tuple(layers), self._gitignore)

    def excluded(self, rel: str, name: str, is_dir: bool) -> bool:
        """Is the path `rel` (relative to the package root, no trailing slash) left out?"""
        path = rel + "/" if is_dir else rel
        if self._excludes is not None:
            decision = self._excludes.spec.check_file(path).include
            if decision is not None:
                return decision
        for layer in self._files:
            decision = layer.spec.check_file(path[len(layer.base):]).include
            if decision is not None:
                return decision
        return name in _DEFAULT_ANY or (is_dir and name in _DEFAULT_DIRS)
