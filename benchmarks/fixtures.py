"""Inputs the scenarios need, made locally so the suite never reaches a package index."""

from __future__ import annotations

from pathlib import Path

from tests.wheels import make_wheel

__all__ = ["make_small_dir", "make_tree", "make_wheel"]


def make_small_dir(directory: str | Path) -> Path:
    """A small working_dir: a few small files, one of which the task reads."""
    directory = Path(directory)
    (directory / "pkg").mkdir(parents=True, exist_ok=True)
    (directory / "data.txt").write_text("hello from working_dir\n")
    (directory / "config.json").write_text('{"answer": 42}\n')
    (directory / "pkg" / "__init__.py").write_text("")
    (directory / "pkg" / "util.py").write_text("def f():\n    return 1\n")
    return directory


def make_tree(directory: str | Path, files: int = 10_000, per_dir: int = 100) -> Path:
    """A source tree of `files` files of about 1 KB (10 MB in all) in folders of `per_dir`."""
    directory = Path(directory)
    for i in range(files):
        sub = directory / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05d}.py").write_text(f"# file {i}\n" + "x = 1\n" * 170)
    return directory
