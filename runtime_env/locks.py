"""Cache entry locks whose files may be deleted: flock, re-checked against the path.

gc deletes the lock file of an entry it removes, so lock files do not pile up. A process that
was waiting on that file would then get a lock on a file no path names any more, and a
third process could lock a new file under the same name at the same time (filelock has that
race). So after locking, `locked` checks that the path still names the file it holds
(fstat of the descriptor vs stat of the path) and otherwise starts over. Delete a lock file
only while holding it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

POLL_SECONDS = 0.02


@contextlib.contextmanager
def locked(path: str | os.PathLike, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock file `path` (created if missing; the OS releases it if we are killed).

    `timeout` None waits as long as it takes, 0 tries once; raises TimeoutError when another
    process holds it past the timeout.
    """
    fd = _acquire(os.fspath(path), None if timeout is None else time.monotonic() + timeout)
    try:
        yield
    finally:
        os.close(fd)


def _acquire(path: str, deadline: float | None) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if not _lock(fd, deadline):
                raise TimeoutError(f"timed out waiting for the lock {path}, held by another "
                                   f"process building that cache entry")
            if _names(path, fd):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its holder deleted it: lock whatever the path names now


def _lock(fd: int, deadline: float | None) -> bool:
    """Lock `fd`, waiting until `deadline` (None: for ever); False if it did not get it."""
    if deadline is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL_SECONDS, left))


def _names(path: str, fd: int) -> bool:
    """Does `path` still name the file open as `fd`?"""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)
