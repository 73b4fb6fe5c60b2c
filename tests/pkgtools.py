"""Helpers for the files-field tests: trees, zips, what a package holds, a counting HTTP server."""

from __future__ import annotations

import functools
import http.server
import os
import stat
import threading
import zipfile
from collections import Counter
from pathlib import Path

from runtime_env import LaunchContext, parse, prepare


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create `root` with the given files (relative posix paths -> content)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def make_zip(path: Path, files: dict[str, str | bytes], *,
             symlinks: dict[str, str] | None = None) -> Path:
    """Write a zip with exactly these entry names (no normalisation: hostile names allowed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def listing(folder: str | Path) -> set[str]:
    """Every file and folder under `folder`, as relative posix paths (folders end in /)."""
    folder = Path(folder)
    out = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = Path(dirpath).relative_to(folder)
        out.update((rel / d).as_posix() + "/" for d in dirnames)
        out.update((rel / f).as_posix() for f in filenames)
    return out


def shipped_files(spec: dict) -> set[str]:
    """The files (not folders) a worker finds in its working_dir for this spec."""
    ctx = prepare(parse(spec))
    return {p for p in listing(ctx.cwd) if not p.endswith("/")}


def working_dir_uri(spec: dict) -> str:
    return parse(spec)["working_dir"]


def prepared(spec: dict) -> LaunchContext:
    return prepare(parse(spec))


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    counts: Counter

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.counts[self.path] += 1
        super().do_GET()

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass


class FileServer:
    """Serve a folder on 127.0.0.1 (a free port) and count GET requests per path."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.counts: Counter = Counter()
        handler = type("Handler", (CountingHandler,), {"counts": self.counts})
        self._server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/{name}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
