"""The session folder: the node's socket and the session's logs, under
$MINRAY_TMPDIR (or the temp dir)/minray-<uid>/, the newest linked as session_latest.

Folders and logs are readable by their user only (they can hold paths and package lists). Old
sessions are pruned so logs do not fill a disk over months of test runs, but never one younger
than a day: an error message quotes its setup log, and many drivers at once (pytest-xdist)
would otherwise prune each other's within minutes. Pruning looks at every session folder, which
after a day of test runs is thousands (20 ms, a third of an init), so it runs at most once
every PRUNE_EVERY seconds per root, as a stamp file's age tells."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from minray.named_tuple import Record

KEEP_SESSIONS = 20
KEEP_SECONDS = 24 * 3600
PRUNE_EVERY = 3600
_MAX_SOCKET_PATH = 100  # AF_UNIX paths hold 104-108 bytes


def minray_root() -> Path:
    """$MINRAY_TMPDIR (or the temp dir)/minray-<uid>, made private: sessions and jobs live here."""
    root = Path(os.environ.get("MINRAY_TMPDIR") or tempfile.gettempdir()) / f"minray-{os.getuid()}"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


def new_session_dir(prune: bool = True) -> Path:
    """A new session folder with a logs/ folder; prunes old ones (or leaves that to a later
    `prune_old_sessions`: the node spawns the job's fork server in between)."""
    root = minray_root()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    session = Path(tempfile.mkdtemp(prefix=f"session_{stamp}_{os.getpid()}_", dir=root))
    (session / "logs").mkdir(mode=0o700)
    latest = root / "session_latest"
    tmp_link = root / f".latest-{os.getpid()}"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(session.name)
    os.replace(tmp_link, latest)
    if prune:
        prune_old_sessions()
    return session


def prune_old_sessions() -> None:
    """Prune, unless this root was pruned less than PRUNE_EVERY seconds ago."""
    root = minray_root()
    stamp = root / ".pruned"
    try:
        if time.time() - stamp.stat().st_mtime < PRUNE_EVERY:
            return
    except OSError:  # never pruned
        pass
    stamp.touch()
    _prune(root)


def new_log(path: str) -> str:
    """Create an empty log readable by its user only; writers append to it."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    return path


def _prune(root: Path) -> None:
    """Remove sessions beyond the newest KEEP_SESSIONS that are over a day old and whose
    driver is gone."""
    with os.scandir(root) as entries:
        by_age = sorted((_mtime(e), Path(e.path)) for e in entries
                        if e.name.startswith("session_2"))[:-KEEP_SESSIONS]
    day_ago = time.time() - KEEP_SECONDS
    for mtime, folder in by_age:
        if mtime >= day_ago:  # checked first: with many young sessions, no pid is looked up
            break
        info = session_info(folder)
        if info is None or not info.alive:
            shutil.rmtree(folder, ignore_errors=True)


def _mtime(entry: os.DirEntry | Path) -> float:
    try:
        return entry.stat().st_mtime
    except OSError:  # pruned meanwhile by another driver
        return 0.0


def socket_path(session: Path) -> str:
    """The node's socket in its session folder, or in a short private folder when a long
    TMPDIR (macOS has one) would make the path too long for a Unix socket; then the session
    folder says where it is (`socket_path`), for `find_socket`."""
    path = str(session / "node.sock")
    if len(path.encode()) <= _MAX_SOCKET_PATH:
        return path
    path = str(Path(tempfile.mkdtemp(prefix="minray-", dir="/tmp")) / "node.sock")
    (session / "socket_path").write_text(path)
    return path


def find_socket(session: Path) -> str:
    """Where a session's node listens (the path may no longer exist)."""
    try:
        return (session / "socket_path").read_text()
    except FileNotFoundError:
        return str(session / "node.sock")


class SessionInfo(Record):
    """A session folder as another process sees it: whose driver, and whether it lives."""

    folder: Path
    driver_pid: int
    alive: bool  # its driver runs: its pid does, and that process is older than the folder


def session_info(folder: Path) -> SessionInfo | None:
    """What a folder's name says (session_<date>_<time>_<driver pid>_<random>); None if it is
    no session folder."""
    parts = folder.name.split("_", 4)
    if len(parts) != 5 or parts[0] != "session" or not parts[3].isdigit():
        return None
    pid = int(parts[3])
    return SessionInfo(folder, pid, _driver_runs(pid, f"{parts[1]}_{parts[2]}"))


def _driver_runs(pid: int, stamp: str) -> bool:
    """The pid runs, and not as a later process that reused it: the driver made the folder,
    so it started before the folder's time stamp (which is truncated to the second)."""
    from runtime_env import processes  # on use: init needs none of it before its first spawn

    if not processes.pid_alive(pid):
        return False
    import psutil

    try:
        made = time.mktime(time.strptime(stamp, "%Y-%m-%d_%H-%M-%S"))
        return psutil.Process(pid).create_time() <= made + 1
    except (ValueError, OverflowError):  # a hand-made name: trust the pid
        return True
    except psutil.Error:  # gone meanwhile
        return False


def sessions() -> list[SessionInfo]:
    """This user's session folders, newest first."""
    found = [info for f in minray_root().glob("session_2*")
             if (info := session_info(f)) is not None]
    found.sort(key=lambda i: (i.folder.name.split("_", 3)[1:3], _mtime(i.folder)), reverse=True)
    return found


def remove_socket(path: str, session: Path) -> None:
    sock = Path(path)
    sock.unlink(missing_ok=True)
    if sock.parent != session:
        shutil.rmtree(sock.parent, ignore_errors=True)
