"""The marks the node leaves for cancelled tasks, and how a worker reads them cheaply.

A cancelled task or actor call is marked by a file named by its id in the session folder's
`cancelled/`; a worker checks the mark before each actor call and in its SIGINT handler. Beside
the folder, an 8-byte file shared through mmap counts the marks that exist, so that a worker
asks the file system only while some mark exists: a check is then a read of memory, not a
`stat` per actor call. The count is written by the node alone (under its lock), and the mark
file is made before the count goes up, so a worker that sees the count also sees the file.
"""

from __future__ import annotations

import mmap
import os

FOLDER = "cancelled"  # the mark files, in the session folder
COUNT = "cancelled.count"  # how many exist


def _map(path: str, create: bool) -> memoryview:
    fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    try:
        if create:
            os.ftruncate(fd, 8)
        return memoryview(mmap.mmap(fd, 8)).cast("q")
    finally:
        os.close(fd)  # the mapping stays


class Marks:
    """The node's side: leaves and removes marks, keeping the shared count."""

    def __init__(self, session_dir: str | os.PathLike):
        self._prefix = os.path.join(session_dir, FOLDER, "")
        os.makedirs(self._prefix, exist_ok=True)
        self._count = _map(os.path.join(session_dir, COUNT), create=True)

    def mark(self, task_id: str) -> None:
        os.close(os.open(self._prefix + task_id, os.O_WRONLY | os.O_CREAT, 0o600))
        self._count[0] += 1

    def unmark(self, task_id: str) -> None:
        try:
            os.unlink(self._prefix + task_id)
        except FileNotFoundError:
            return
        self._count[0] -= 1


class MarkReader:
    """A worker's side: is a task marked? Maps the count on first use. (os.path, not pathlib:
    every worker imports this module at start, and pathlib would cost it a few ms.)"""

    def __init__(self, session_dir: str):
        self._count_path = os.path.join(session_dir, COUNT)
        self._prefix = os.path.join(session_dir, FOLDER, "")
        self._count: memoryview | None = None

    def is_marked(self, task_id: str) -> bool:
        if self._count is None:
            try:
                self._count = _map(self._count_path, create=False)
            except OSError:  # the session is going away: ask the file system
                return os.path.exists(self._prefix + task_id)
        return self._count[0] > 0 and os.path.exists(self._prefix + task_id)
