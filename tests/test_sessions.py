"""Session folders: logs are findable (session_latest) and old sessions do not pile up."""

import os
import time
from pathlib import Path

import minray


def test_old_sessions_are_pruned_and_live_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("MINRAY_TMPDIR", str(tmp_path))
    root = tmp_path / f"minray-{os.getuid()}"
    root.mkdir()
    dead_pid = 2**22 + 12345  # above Linux's pid_max: no such process
    for i in range(30):
        old = root / f"session_2020-01-01_00-00-{i:02d}_{dead_pid}_abc{i}"
        (old / "logs").mkdir(parents=True)
        os.utime(old, (1_000_000 + i, 1_000_000 + i))
    now = time.strftime("%Y-%m-%d_%H-%M-%S")
    live = root / f"session_{now}_{os.getpid()}_live"
    (live / "logs").mkdir(parents=True)
    os.utime(live, (900_000, 900_000))  # the oldest of all, but its driver runs
    reused = root / f"session_2020-01-01_00-00-00_{os.getpid()}_reused"
    (reused / "logs").mkdir(parents=True)  # this pid's, but years before this process began:
    os.utime(reused, (800_000, 800_000))  # another driver's, whose pid was reused since

    session = Path(minray.init(num_cpus=1)["session_dir"])
    minray.shutdown()

    sessions = sorted(p.name for p in root.glob("session_2*"))
    assert session.name in sessions and live.name in sessions
    assert len(sessions) <= 21
    assert (root / "session_latest").resolve() == session.resolve()
    assert "abc0" not in " ".join(sessions)  # the oldest dead ones went first
    assert reused.name not in sessions
