"""What a node's worker processes start with: the boot script and the variables that tell a
worker its node. Light to import (no node machinery), so that init can spawn the job's fork
server (`spawn`) before the rest of the node is loaded."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cloudpickle

from minray.forkserver import FD_VAR

BOOT_SCRIPT = str(Path(__file__).parent.parent / "_boot" / "minray_worker.py")


def launch_vars(socket_path: str, job_id: str, num_cpus: int,
                **node_vars: str) -> dict[str, str]:
    """What every worker of this node is told, besides its env's own variables; `node_vars`:
    the rest the node knows once it is built (its id, namespace, session and object folders),
    which a fork server spawned before it does not need (each fork gets its whole env)."""
    return {
        **node_vars,
        "MINRAY_NODE_SOCKET": socket_path,
        "MINRAY_DRIVER_PID": str(os.getpid()),
        "MINRAY_JOB_ID": job_id,
        "MINRAY_NUM_CPUS": str(num_cpus),
        "MINRAY_WORKER_PATH": os.pathsep.join(_worker_import_paths()),
        "MINRAY_DRIVER_SYS_PATH": os.pathsep.join(_driver_code_paths()),
    }


def _worker_import_paths() -> list[str]:
    """Where minray and its worker-side dependencies live, appended to a worker's sys.path so
    they import in any env (a venv, a conda prefix) after the env's own packages. Modules'
    __file__ are absolute: no need to resolve them (which stats every folder on the way)."""
    paths = [str(Path(os.path.abspath(__file__)).parent.parent.parent),
             str(Path(os.path.abspath(cloudpickle.__file__)).parent.parent)]
    return list(dict.fromkeys(paths))


def _driver_code_paths() -> list[str]:
    """The driver's script directory and cwd, as Ray adds them, so functions defined in the
    driver's own modules import in workers."""
    paths = [sys.path[0] if sys.path and sys.path[0] else os.getcwd(), os.getcwd()]
    return list(dict.fromkeys(os.path.abspath(p) for p in paths))


class Spawned:
    """A process started by `spawn`: the part of Popen its owner uses."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def wait(self) -> int:
        return self._reap(0)

    def _reap(self, flags: int) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, flags)
            except ChildProcessError:  # reaped by someone else (SIGCHLD ignored): as Popen
                pid, status = self.pid, 0
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            import signal

            os.kill(self.pid, signal.SIGKILL)


def spawn(argv: list[str], env: dict[str, str]) -> tuple[Spawned, int]:
    """Start a fork server in this process's cwd, as Popen(start_new_session=True) would, and
    return it with our end of its socket pair (a file descriptor). Uses posix_spawn and the
    C socket module: subprocess, socket and signal are not loaded yet when init calls this,
    and loading them first would delay the server by a few ms."""
    import _socket

    ours, theirs = _socket.socketpair()
    fd = theirs.detach()
    try:
        os.set_inheritable(fd, True)
        stray = [int(n) for n in os.listdir("/proc/self/fd") if int(n) > 2 and int(n) != fd
                 and _inheritable(int(n))]  # as Popen's close_fds
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   *((os.POSIX_SPAWN_CLOSE, n) for n in stray)]
        # Signals: a Python child ignores SIGPIPE and SIGXFSZ itself, as the driver does.
        pid = os.posix_spawn(argv[0], argv, {**env, FD_VAR: str(fd)}, file_actions=actions,
                             setsid=True)
    except BaseException:
        ours.close()
        raise
    finally:
        os.close(fd)
    return Spawned(pid), ours.detach()


def _inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:  # the listing's own descriptor, closed by now
        return False
