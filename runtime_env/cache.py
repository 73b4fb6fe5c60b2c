"""The persistent, content-addressed cache of environment resources.

Layout: `<root>/<field>/<key>/` holds an entry, `<key>.json` (its manifest) publishes it.
An entry is built in place under a per-entry file lock and counts as present only once its
manifest has been written by an atomic rename, so concurrent processes (pytest-xdist, several
drivers) build each entry once and readers, which never lock, never see half of one. Building
in place, rather than renaming a finished folder, keeps virtualenvs and conda prefixes valid:
both record their own path. A folder without a manifest is the leftover of a killed builder and
is rebuilt.

Live users hold a lease (a file named after their pid); `gc` removes only entries without a
live lease, least recently used first, until a field fits its size limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runtime_env.processes import pid_alive

DEFAULT_FIELD_LIMIT_GB = 10.0


def default_root() -> Path:
    if os.environ.get("MINRAY_CACHE_DIR"):
        return Path(os.environ["MINRAY_CACHE_DIR"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("minray"))


def default_cache() -> Cache:
    """The cache of a caller that names none (under MINRAY_CACHE_DIR, else the user cache dir).

    The one place runtime_env picks a cache by itself, so that a `RuntimeEnv(working_dir=...)`
    typed by a user, and the `prepare` that follows it, agree without being told.
    """
    return Cache()


@contextlib.contextmanager
def _locked(path: Path, timeout: float | None = None):
    """Hold an entry's file lock (the OS drops it if the holder is killed). Raises TimeoutError.
    filelock is imported here: readers of a published entry never lock, nor pay for it."""
    import filelock

    lock = filelock.FileLock(str(path) + ".lock",
                             timeout=-1 if timeout is None else max(timeout, 0.01))
    try:
        lock.acquire()
    except filelock.Timeout:
        raise TimeoutError(f"timed out waiting for another process building {path}") from None
    try:
        yield
    finally:
        lock.release()


def field_limit_bytes(field: str) -> int:
    """Size limit of one field's cache, from MINRAY_/RAY_RUNTIME_ENV_<FIELD>_CACHE_SIZE_GB."""
    for prefix in ("MINRAY", "RAY"):
        value = os.environ.get(f"{prefix}_RUNTIME_ENV_{field.upper()}_CACHE_SIZE_GB")
        if value:
            return int(float(value) * 1024**3)
    return int(DEFAULT_FIELD_LIMIT_GB * 1024**3)


@dataclass
class Entry:
    field: str
    key: str
    path: Path
    size: int
    created: float
    last_used: float
    leased_by: list[int]
    meta: dict


class Cache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_root()

    # --- paths ---------------------------------------------------------------------------
    def path(self, field: str, key: str) -> Path:
        return self.root / field / key

    def _manifest(self, field: str, key: str) -> Path:
        return self.root / field / f"{key}.json"

    def _leases(self, field: str, key: str) -> Path:
        return self.root / field / f"{key}.leases"

    # --- build ---------------------------------------------------------------------------
    def ready(self, field: str, key: str) -> bool:
        return self._manifest(field, key).exists()

    def get_or_create(self, field: str, key: str, build: Callable[[Path], None], *,
                      meta: dict | None = None, timeout: float | None = None) -> Path:
        """Return the entry, building it with `build(path)` if no process has yet.
        Raises TimeoutError if another builder holds it past `timeout`."""
        path = self.path(field, key)
        if self.ready(field, key):
            self._touch(field, key)
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path, timeout):
            if self.ready(field, key):
                return path
            if path.exists():  # left behind by a builder that was killed
                shutil.rmtree(path)
            path.mkdir()
            try:
                build(path)
            except BaseException:
                shutil.rmtree(path, ignore_errors=True)
                raise
            manifest = {"field": field, "key": key, "created": time.time(),
                        "size": _tree_size(path), "meta": meta or {}}
            _write_json(self._manifest(field, key), manifest)
        self.gc(field)
        return path

    def _touch(self, field: str, key: str) -> None:
        try:
            os.utime(self._manifest(field, key))
        except OSError:
            pass

    # --- leases --------------------------------------------------------------------------
    def lease(self, field: str, key: str) -> None:
        """Mark the entry as used by this process until it exits (see `gc`)."""
        leases = self._leases(field, key)
        leases.mkdir(parents=True, exist_ok=True)
        (leases / str(os.getpid())).touch()
        self._touch(field, key)

    def _live_leases(self, field: str, key: str) -> list[int]:
        leases = self._leases(field, key)
        if not leases.is_dir():
            return []
        live = []
        for f in leases.iterdir():
            if f.name.isdigit() and pid_alive(int(f.name)):
                live.append(int(f.name))
            else:
                f.unlink(missing_ok=True)
        return live

    # --- inspection and garbage collection -------------------------------------------
    def entries(self, field: str | None = None) -> list[Entry]:
        fields = [field] if field else sorted(p.name for p in self.root.glob("*") if p.is_dir())
        out = []
        for f in fields:
            for manifest in sorted((self.root / f).glob("*.json")):
                try:
                    data = json.loads(manifest.read_text())
                except (OSError, ValueError):
                    continue
                key = manifest.stem
                out.append(Entry(f, key, self.path(f, key), data.get("size", 0),
                                 data.get("created", 0.0), manifest.stat().st_mtime,
                                 self._live_leases(f, key), data.get("meta", {})))
        return out

    def remove(self, field: str, key: str) -> None:
        """Unpublish first, so a reader never sees a half-removed entry."""
        with _locked(self.path(field, key)):
            self._manifest(field, key).unlink(missing_ok=True)
            shutil.rmtree(self.path(field, key), ignore_errors=True)
            shutil.rmtree(self._leases(field, key), ignore_errors=True)

    def gc(self, field: str | None = None, limit_bytes: int | None = None) -> list[Entry]:
        """Remove unleased entries, least recently used first, until each field fits."""
        removed = []
        fields = [field] if field else sorted({e.field for e in self.entries()})
        for f in fields:
            entries = self.entries(f)
            limit = field_limit_bytes(f) if limit_bytes is None else limit_bytes
            total = sum(e.size for e in entries)
            for e in sorted(entries, key=lambda e: e.last_used):
                if total <= limit:
                    break
                if e.leased_by:
                    continue
                self.remove(e.field, e.key)
                total -= e.size
                removed.append(e)
        return removed


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
