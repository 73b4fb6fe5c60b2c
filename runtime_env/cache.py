"""The persistent, content-addressed cache of environment resources.

A field's folder `<root>/<field>/` holds, per entry: `<key>/` (the entry), `<key>.json` (its
manifest, which publishes it; `<key>.json.gc` while a gc decides), `<key>.lock` (its lock) and
`<key>.leases/` (its users).

Building: an entry is built in place under its lock and counts as present only once its
manifest has been written by an atomic rename, so concurrent processes (pytest-xdist, several
drivers) build each entry once and readers, which never lock, never see half of one. Building
in place, rather than renaming a finished folder, keeps virtualenvs and conda prefixes valid:
both record their own path. A folder without a manifest is a killed builder's leftover.

Damage: the manifest records the names found in the paths the builder watches (a venv's
python and site-packages; by default the entry's top level). Each use re-checks that they are
all still there (a stat or listdir each) and a damaged entry is rebuilt, so a package deleted
from an env is never silently replaced by another copy further down sys.path. Contents are not
checked, and names added later (__pycache__, a task's output) are no damage.

Leases: a process that builds or uses an entry leases it (a file named by its pid, counted
while the pid lives) before it looks for the manifest. `gc` takes an entry's lock without
waiting (a builder's entry is skipped), unpublishes the manifest, then looks for leases: a user
who found the manifest had leased already, and the manifest is put back; a user who looks later
finds none, waits for the lock and rebuilds what gc removed. gc removes an entry's lock file
with it, and the leftovers (folder, lock, leases) of keys that have no manifest.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime_env import locks
from runtime_env.processes import pid_alive

DEFAULT_FIELD_LIMIT_GB = 10.0
ABSENT = "not in the cache"  # what `Cache.use` says of an entry that is not published


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
        # Absolute: workers get paths into the cache and do not start in the driver's cwd.
        self.root = Path(root or default_root()).expanduser().absolute()
        self._root = str(self.root)

    # --- paths ---------------------------------------------------------------------------
    def path(self, field: str, key: str) -> Path:
        return self.root / field / key

    def _manifest(self, field: str, key: str) -> Path:
        return self.root / field / f"{key}.json"

    def _unpublished(self, field: str, key: str) -> Path:
        return self.root / field / f"{key}.json.gc"

    def _lock(self, field: str, key: str) -> Path:
        return self.root / field / f"{key}.lock"

    def _leases(self, field: str, key: str) -> Path:
        return self.root / field / f"{key}.leases"

    def scratch(self, field: str, key: str) -> Path:
        """A file beside the entry for its builder's work in progress (a download): the builder
        removes it, and gc removes one a killed builder left."""
        return self.root / field / f"{key}.scratch"

    def _fields(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith("."))

    # --- use and build -------------------------------------------------------------------
    def use(self, field: str, key: str) -> str | None:
        """Lease the entry for this process, then check it: None when it can be used, ABSENT
        when it is not published, else what is damaged (naming the path).

        The path of every cached prepare: plain strings and a few system calls, no pathlib.
        """
        entry = os.path.join(self._root, field, key)
        _lease(entry)
        problem = _check(entry)
        if problem is None:
            try:
                os.utime(entry + ".json")  # last use, for gc's order
            except OSError:
                pass
        return problem

    def get_or_create(self, field: str, key: str, build: Callable[[Path], None], *,
                      meta: dict | None = None, watch: Sequence[str] = (),
                      timeout: float | None = None,
                      on_damage: Callable[[str], None] | None = None) -> Path:
        """Return the entry, leased, building it with `build(path)` if it is absent or damaged.

        `watch`: paths inside the entry whose presence (a file) or names (a folder) every use
        checks; by default, the entry's own names. `on_damage(problem)` hears of a damaged entry
        before it is rebuilt. Raises TimeoutError if another builder holds it past `timeout`.
        """
        path = self.path(field, key)
        if self.use(field, key) is None:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        with locks.locked(self._lock(field, key), timeout):
            self._restore(field, key)
            problem = self.use(field, key)  # leased again: a gc may have removed the lease
            if problem is None:
                return path
            if problem != ABSENT and on_damage is not None:
                on_damage(problem)
            self._build(field, key, build, meta or {}, watch)
        self.gc(field)
        return path

    def _build(self, field: str, key: str, build: Callable[[Path], None], meta: dict,
               watch: Sequence[str]) -> None:
        """Build in place (under the lock), unpublished meanwhile: a half-built entry must not
        pass for a whole one."""
        path = self.path(field, key)
        self._manifest(field, key).unlink(missing_ok=True)
        if path.exists():  # damaged, or left behind by a builder that was killed
            shutil.rmtree(path)
        path.mkdir()
        try:
            build(path)
        except BaseException:  # leave nothing: no folder, no lease of ours, no lock file
            shutil.rmtree(path, ignore_errors=True)
            leases = self._leases(field, key)
            (leases / str(os.getpid())).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                leases.rmdir()  # unless another user waits to build it
            self._lock(field, key).unlink(missing_ok=True)  # we hold it: see locks
            raise
        manifest = {"field": field, "key": key, "created": time.time(),
                    "size": _tree_size(path), "meta": meta, "watch": _names_of(path, watch)}
        _write_json(self._manifest(field, key), manifest)

    def _restore(self, field: str, key: str) -> None:
        """Re-publish a manifest that a gc unpublished and was killed (we hold the lock)."""
        try:
            os.replace(self._unpublished(field, key), self._manifest(field, key))
        except FileNotFoundError:
            pass

    # --- leases --------------------------------------------------------------------------
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
        out = []
        for f in [field] if field else self._fields():
            for manifest in sorted((self.root / f).glob("*.json")):
                try:
                    data = json.loads(manifest.read_text())
                    used = manifest.stat().st_mtime
                except (OSError, ValueError):
                    continue
                if not isinstance(data, dict):
                    continue
                key = manifest.stem
                out.append(Entry(f, key, self.path(f, key), data.get("size", 0),
                                 data.get("created", 0.0), used, self._live_leases(f, key),
                                 data.get("meta", {})))
        return out

    def remove(self, field: str, key: str) -> None:
        """Remove an entry now, even one in use (`gc` is the careful way)."""
        with locks.locked(self._lock(field, key)):
            self._delete(field, key)

    def gc(self, field: str | None = None, limit_bytes: int | None = None, *,
           dry_run: bool = False) -> list[Entry]:
        """Remove unleased entries, least recently used first, until each field fits.

        Never waits: an entry whose lock a builder holds is skipped. `dry_run`: remove
        nothing, return what would be removed.
        """
        removed = []
        for f in [field] if field else self._fields():
            if not (self.root / f).is_dir():
                continue
            if not dry_run:
                self._sweep(f)
            entries = self.entries(f)
            limit = field_limit_bytes(f) if limit_bytes is None else limit_bytes
            total = sum(e.size for e in entries)
            for e in sorted(entries, key=lambda e: e.last_used):
                if total <= limit:
                    break
                if e.leased_by or not (dry_run or self.collect(f, e.key)):
                    continue
                total -= e.size
                removed.append(e)
        return removed

    def collect(self, field: str, key: str) -> bool:
        """Remove an entry unless a builder holds it or a user leased it; True if removed."""
        try:
            with locks.locked(self._lock(field, key), timeout=0):
                try:  # unpublish first: from now on a new user waits for our lock
                    os.replace(self._manifest(field, key), self._unpublished(field, key))
                except FileNotFoundError:
                    return False
                if self._live_leases(field, key):  # leased before it looked: it is in use
                    self._restore(field, key)
                    return False
                self._delete(field, key)
                return True
        except TimeoutError:
            return False

    def _sweep(self, field: str) -> None:
        """Remove the folders, lock files and leases of keys without a manifest (left by killed
        builders, or by a use of an entry that was gone), and a killed builder's scratch file,
        unless a builder holds their lock."""
        folder = self.root / field
        keys = {p.name.split(".", 1)[0] for p in folder.iterdir() if not p.name.startswith(".")}
        for key in keys:
            published = self._manifest(field, key).exists()
            if published and not self.scratch(field, key).exists():
                continue
            try:
                with locks.locked(self._lock(field, key), timeout=0):
                    self.scratch(field, key).unlink(missing_ok=True)
                    if published:
                        continue
                    self._restore(field, key)
                    if not self._manifest(field, key).exists():
                        self._delete(field, key)
            except TimeoutError:
                pass

    def _delete(self, field: str, key: str) -> None:
        """Unpublish and remove an entry with its leases and lock file (we hold the lock, so
        deleting the lock file is safe: see runtime_env.locks)."""
        self._manifest(field, key).unlink(missing_ok=True)
        self._unpublished(field, key).unlink(missing_ok=True)
        self.scratch(field, key).unlink(missing_ok=True)
        shutil.rmtree(self.path(field, key), ignore_errors=True)
        shutil.rmtree(self._leases(field, key), ignore_errors=True)
        self._lock(field, key).unlink(missing_ok=True)


def _names_of(path: Path, watch: Sequence[str]) -> dict[str, list[str] | None]:
    """The fingerprint a use re-checks: for each watched path that exists (the entry itself if
    none is named), its names (a folder; without __pycache__, which Python writes later) or
    None (a file)."""
    out: dict[str, list[str] | None] = {}
    for rel in watch or [""]:
        target = path / rel
        if target.is_dir():
            out[rel] = sorted(n for n in os.listdir(target) if n != "__pycache__")
        elif target.exists():
            out[rel] = None
    return out


def _lease(entry: str) -> None:
    """Mark the entry as used by this process until it exits (see `Cache.gc`)."""
    lease = f"{entry}.leases{os.sep}{os.getpid()}"
    try:
        os.utime(lease)  # this process leased it before: the cheapest call that checks so
        return
    except FileNotFoundError:
        pass
    while True:
        try:
            os.close(os.open(lease, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
            return
        except FileNotFoundError:  # the first lease (or a gc removing the folder)
            os.makedirs(os.path.dirname(lease), exist_ok=True)


def _check(entry: str) -> str | None:
    """None if the entry is published and intact, ABSENT, or what is damaged."""
    manifest = entry + ".json"
    try:
        with open(manifest, "rb") as f:
            data = json.load(f)
    except FileNotFoundError:
        return ABSENT
    except (OSError, ValueError):
        return f"its manifest {manifest} is unreadable or not JSON"
    watch = data.get("watch", {"": []}) if isinstance(data, dict) else None
    if not isinstance(watch, dict):
        return f"its manifest {manifest} is not a minray cache manifest"
    return _missing(entry, watch)


def _missing(entry: str, watch: dict) -> str | None:
    """What of the fingerprint is gone from the entry, None if nothing."""
    for rel, names in watch.items():
        target = os.path.join(entry, rel) if rel else entry
        try:
            if names is None:
                os.stat(target)
                continue
            gone = set(names).difference(os.listdir(target))
        except OSError:
            return f"{target} is missing"
        if gone:
            return f"{target} lacks {', '.join(sorted(gone)[:5])}"
    return None


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
