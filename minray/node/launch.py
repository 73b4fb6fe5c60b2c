"""What a node's worker processes start with: the boot script, the variables that tell a
worker its node, and which of them a fork server can serve (`server_key`, the rule in
node/forkservers.py). Light to import (no node machinery), so that init can spawn the job's
fork server (`spawn_job_server`) before the rest of the node is loaded."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from minray.named_tuple import Record

if TYPE_CHECKING:
    import runtime_env as renv


BOOT_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "_boot", "minray_worker.py")
FD_VAR = "MINRAY_FORK_SERVER_FD"  # a fork server's end of its socket (the boot script reads it)
START_TIME_PREFIXES = ("PYTHON", "LD_", "MALLOC_", "LC_")
START_TIME_NAMES = frozenset({"GLIBC_TUNABLES", "LANG", "LANGUAGE", "TZ", "HOME"})
SWITCH_VAR = "MINRAY_FORK_SERVER"  # "0": exec every worker
_OPTIONS_WITH_VALUE = ("-W", "-X")


def server_key(program: list[str], env: dict[str, str], cwd: str) -> tuple | None:
    """What a fork server must share with a worker for a fork to equal an exec; None when no
    fork can (the program is not a bare interpreter)."""
    if not _bare_interpreter(program):
        return None
    found_on_path = os.sep not in program[0]
    start = tuple(sorted((k, v) for k, v in env.items()
                         if read_at_start(k) or (found_on_path and k == "PATH")))
    relative = any(p and not os.path.isabs(p)
                   for p in env.get("PYTHONPATH", "").split(os.pathsep))
    return tuple(program), start, cwd if relative else None


def enabled() -> bool:
    return hasattr(os, "pidfd_open") and os.environ.get(SWITCH_VAR, "1") != "0"


class JobServer(Record):
    """The job's fork server, spawned by `spawn_job_server` before the node exists."""

    program: list[str]
    env: dict[str, str]
    cwd: str
    proc: Spawned
    fd: int  # the node's end of its socket


def spawn_job_server(job_env: renv.RuntimeEnv, socket_path: str, job_id: str,
                     num_cpus: int) -> JobServer | None:
    """Spawn the fork server for the job's workers first thing in init, when they will come
    from the default launch context (an `env_vars`-only job env without start-time variables)
    and the env is prepared at init (eager_install), so that init prestarts a worker. None
    when not: then nothing starts before it is needed."""
    from runtime_env import LaunchContext

    fields = set(job_env)
    if not (enabled() and job_env.config()["eager_install"]
            and fields <= {"env_vars", "config"}
            and not any(read_at_start(name) for name in job_env.get("env_vars", {}))):
        return None
    context = LaunchContext()
    env = context.process_env()
    env.update(launch_vars(socket_path, job_id, num_cpus))
    cwd = os.getcwd()
    if server_key(context.py_executable, env, cwd) is None:
        return None
    try:
        proc, fd = spawn([*context.py_executable, BOOT_SCRIPT], env)
    except OSError:  # the pool starts one the usual way, or execs, and says why if it fails
        return None
    return JobServer(context.py_executable, env, cwd, proc, fd)


def read_at_start(name: str) -> bool:
    """Is this variable read while an interpreter starts (so a fork cannot change it)?"""
    return name.startswith(START_TIME_PREFIXES) or name in START_TIME_NAMES


def _bare_interpreter(program: list[str]) -> bool:
    """A python, with interpreter options only (`python3 -X dev -u`)."""
    if not os.path.basename(program[0]).startswith("python"):
        return False
    value_next = False
    for arg in program[1:]:
        if value_next:
            value_next = False
        elif not arg.startswith("-") or arg in ("-", "-c", "-m"):
            return False
        else:
            value_next = arg in _OPTIONS_WITH_VALUE
    return not value_next


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
    import cloudpickle  # the driver has it loaded by now (it pickled the functions)

    paths = [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
             os.path.dirname(os.path.dirname(os.path.abspath(cloudpickle.__file__)))]
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
        # Signals: a Python child ignores SIGPIPE and SIGXFSZ itself, as the driver does.
        proc = spawn_session(argv, {**env, FD_VAR: str(fd)},
                             [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)], keep=fd)
    except BaseException:
        ours.close()
        raise
    finally:
        os.close(fd)
    return proc, ours.detach()


def spawn_session(argv: list[str], env: dict[str, str], actions: list[tuple],
                  keep: int | None = None) -> Spawned:
    """posix_spawn `argv` in a new session after the file `actions`, passing on no descriptor
    but 0-2 and `keep` (as Popen's close_fds): what Popen(start_new_session=True) does,
    without loading subprocess (~3 ms of init)."""
    stray = [int(n) for n in os.listdir("/proc/self/fd") if int(n) > 2 and int(n) != keep
             and _inheritable(int(n))]
    actions = [*actions, *((os.POSIX_SPAWN_CLOSE, n) for n in stray)]
    return Spawned(os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True))


def _inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:  # the listing's own descriptor, closed by now
        return False
