"""The session folder: the node's socket and the session's logs, under
$MINRAY_TMPDIR (or the temp dir)/minray-<uid>/, the newest linked as session_latest."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from runtime_env import processes

KEEP_SESSIONS = 20
_MAX_SOCKET_PATH = 100  # AF_UNIX paths hold 104-108 bytes


def new_session_dir() -> Path:
    """A new session folder with a logs/ folder. Only the newest sessions are kept, and those
    whose driver still runs: logs must not fill a disk over months of test runs."""
    root = Path(os.environ.get("MINRAY_TMPDIR") or tempfile.gettempdir()) / f"minray-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    session = Path(tempfile.mkdtemp(prefix=f"session_{stamp}_{os.getpid()}_", dir=root))
    (session / "logs").mkdir()
    latest = root / "session_latest"
    tmp_link = root / f".latest-{os.getpid()}"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(session.name)
    os.replace(tmp_link, latest)
    old = sorted(root.glob("session_2*"), key=lambda p: p.stat().st_mtime)[:-KEEP_SESSIONS]
    for folder in old:
        parts = folder.name.split("_")  # session, date, time, pid, random
        if not (len(parts) == 5 and parts[3].isdigit() and processes.pid_alive(int(parts[3]))):
            shutil.rmtree(folder, ignore_errors=True)
    return session


def socket_path(session: Path) -> str:
    """The node's socket in its session folder, or in a short private folder when a long
    TMPDIR (macOS has one) would make the path too long for a Unix socket."""
    path = str(session / "node.sock")
    if len(path.encode()) <= _MAX_SOCKET_PATH:
        return path
    return str(Path(tempfile.mkdtemp(prefix="minray-", dir="/tmp")) / "node.sock")


def remove_socket(path: str, session: Path) -> None:
    sock = Path(path)
    sock.unlink(missing_ok=True)
    if sock.parent != session:
        shutil.rmtree(sock.parent, ignore_errors=True)
