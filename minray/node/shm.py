"""The session's object folder: where large values live as files (minray/values.py), in shared
memory (/dev/shm) unless MINRAY_OBJECT_STORE_DIR names another root.

Nothing may be left there once the driver is gone, however it ended. `shutdown` removes the
folder. A driver killed with -9 cannot, so each session starts a reaper, a shell that reads a
pipe from the driver and removes the folder at EOF (again two seconds later, for a file a
worker created meanwhile; workers exit within a second of their driver). The driver also holds
a lock on `<folder>.lock` while it lives, and each new session removes the folders whose lock
is free, in case a reaper was killed too.

Freed segments are not removed at once: they wait RECYCLE_SECONDS in `<folder>/free/` for a
writer to take one (minray.values._claim), since tmpfs allocating fresh pages costs about as
much as copying into them. The pool holds at most a quarter of the folder's filesystem, and a
writer that needs its room empties it. A freed segment that a process still has mapped (a numpy
array read in place) must not be rewritten under its reader: it waits in `<folder>/held/`,
looked at every HELD_RECHECK_SECONDS, and joins the pool once nobody maps it (or is removed
after HELD_SECONDS; its readers keep its pages until they let go).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

from minray import values
from minray.node import launch

ROOT_VAR = "MINRAY_OBJECT_STORE_DIR"
RECYCLE_SECONDS = 2.0
HELD = "held"
HELD_RECHECK_SECONDS = 0.05
HELD_SECONDS = 10.0
_REAP = 'read _; rm -rf "$0" "$1"; sleep 2; rm -rf "$0" "$1"'


def root() -> Path:
    base = os.environ.get(ROOT_VAR) or ("/dev/shm" if os.path.isdir("/dev/shm")
                                        else tempfile.gettempdir())
    return Path(base) / f"minray-{os.getuid()}"


class ObjectFolder:
    def __init__(self, name: str):
        top = root()
        top.mkdir(mode=0o700, parents=True, exist_ok=True)
        sweep(top)
        self.path = top / name
        self._lock_path = top / f"{name}.lock"
        # Locked before it has its name, so no sweep ever sees this lock free.
        new = top / f".{name}.new"
        self._lock = os.open(new, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(new, self._lock_path)
        self.path.mkdir(mode=0o700)
        self._pool = self.path / values.POOL
        self._pool.mkdir(mode=0o700)
        self._pooled: dict[str, tuple[float, int]] = {}  # name -> (remove at, size)
        self._held_dir = self.path / HELD
        self._held_dir.mkdir(mode=0o700)
        self._held: dict[str, tuple[float, int]] = {}  # name -> (give up at, size)
        self._recheck_at = 0.0
        fs = os.statvfs(self.path)
        self._pool_limit = fs.f_blocks * fs.f_frsize // 4
        # Its own session: a Ctrl-C or kill of the driver's group leaves it to see the driver
        # go. Nothing but the pipe is inherited, and no MINRAY_ variable (shutdown's sweep of
        # marked processes is not for it).
        pipe, self._reaper_pipe = os.pipe()
        try:
            self._reaper = launch.spawn_session(
                ["/bin/sh", "-c", _REAP, str(self.path), str(self._lock_path)],
                {"PATH": os.defpath},
                [(os.POSIX_SPAWN_DUP2, pipe, 0),
                 *((os.POSIX_SPAWN_OPEN, n, os.devnull, os.O_WRONLY, 0) for n in (1, 2))])
        except BaseException:
            os.close(self._reaper_pipe)
            raise
        finally:
            os.close(pipe)

    def release(self, data: values.Data) -> None:
        """A freed value: its segment goes to the pool, waits while a process still has it
        mapped, or goes away when the pool is full."""
        if type(data) is not values.Segment:
            return
        try:
            size = os.stat(data.path).st_size  # a reused file may be longer than the value
        except FileNotFoundError:
            return
        if data.kind == values.PICKLED and _mapped(data.path):
            name = os.path.basename(data.path)
            if _move(data.path, self._held_dir / name):
                self._held[name] = (time.monotonic() + HELD_SECONDS, size)
            return
        self._to_pool(data.path, size)

    def _to_pool(self, path: str | Path, size: int) -> None:
        if sum(pooled for _, pooled in self._pooled.values()) + size > self._pool_limit:
            Path(path).unlink(missing_ok=True)
            return
        name = f"{size}.{os.urandom(8).hex()}"
        if _move(path, self._pool / name):
            self._pooled[name] = (time.monotonic() + RECYCLE_SECONDS, size)

    def expire(self) -> float | None:
        """Pool the held files nobody maps any more; remove the pool's files that waited long
        enough (a writer may have taken them). The seconds until the next look, None if none."""
        if not self._pooled and not self._held:  # the common case, on every turn of the loop
            return None
        now = time.monotonic()
        if self._held and now >= self._recheck_at:
            self._recheck_held(now)
        for name, (due, _size) in list(self._pooled.items()):
            if due <= now:
                del self._pooled[name]
                (self._pool / name).unlink(missing_ok=True)
        dues = [due for due, _ in self._pooled.values()]
        if self._held:
            dues.append(self._recheck_at)
        return max(0.0, min(dues) - now) if dues else None

    def _recheck_held(self, now: float) -> None:
        self._recheck_at = now + HELD_RECHECK_SECONDS
        for name, (give_up, size) in list(self._held.items()):
            path = self._held_dir / name
            if not _mapped(str(path)):
                del self._held[name]
                self._to_pool(path, size)
            elif give_up <= now:
                del self._held[name]
                path.unlink(missing_ok=True)

    def close(self) -> None:
        """Remove the folder and everything in it; end the reaper."""
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock_path.unlink(missing_ok=True)
        os.close(self._lock)
        self._reaper.kill()
        os.close(self._reaper_pipe)
        self._reaper.wait()


def _move(source: str | Path, target: Path) -> bool:
    try:
        os.rename(source, target)
        return True
    except FileNotFoundError:  # taken meanwhile
        return False


def _mapped(path: str) -> bool:
    """Whether a process has the file mapped: each mapping holds a shared lock on it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def sweep(top: Path) -> None:
    """Remove the folders of dead drivers: those whose lock is free, or that have none."""
    try:
        names = os.listdir(top)
    except OSError:
        return
    locks = {n[:-5] for n in names if n.endswith(".lock")}
    for name in locks:
        lock = top / f"{name}.lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        except OSError:  # removed meanwhile by its driver or another sweep
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its driver lives
            os.close(fd)
            continue
        shutil.rmtree(top / name, ignore_errors=True)
        lock.unlink(missing_ok=True)
        os.close(fd)
    for name in names:  # a folder is made after its lock: one without is a sweep's leftover
        if not name.startswith(".") and not name.endswith(".lock") and name not in locks \
                and not (top / f"{name}.lock").exists():
            shutil.rmtree(top / name, ignore_errors=True)
