"""Fork servers: per interpreter, one pre-imported process that forks the node's new workers.

An exec'd worker pays an interpreter start and its imports (about 1.4x `python -c pass`); a
forked one pays a fork (minray/forkserver.py is the server's side). A worker is forked only
when that gives it exactly the process an exec would, otherwise `ForkServers.fork` returns
None and the pool execs it. The rule (`launch.server_key`):

- the program is a Python interpreter with options only. A wrapper (a script, `uv run`,
  `nice`) may do something per process, so its workers are exec'd;
- the variables read while an interpreter starts, which no later change of os.environ undoes,
  equal the server's: PYTHON* (sys.path, hash seed, allocator, flags), LD_* (the dynamic
  loader, LD_LIBRARY_PATH and LD_PRELOAD), MALLOC_* and GLIBC_TUNABLES (glibc's allocator),
  LANG, LANGUAGE and LC_* (the locale and encodings Python sets up), TZ (read when `time` is
  imported), HOME (the user site-packages), and PATH when the program is found through it;
  with a relative PYTHONPATH entry, the cwd too. These make a server's key.

Everything else (an env's other env_vars, the worker's ids, its cwd) the child sets itself, so
new actors and `env_vars`-only envs share the job's server. A key's server starts when its
first worker is asked for, which is forked as soon as the server is up (so it costs what an
exec would), and lives until shutdown; the job's is spawned first thing in init
(`spawn_job_server`), so the worker init prestarts comes from it. A server that cannot start
or dies is not restarted: its key's workers are exec'd from then on, the ones it was asked
for and had not forked included (`WorkerPool._forked_exit`). Servers need pidfds
(Linux): elsewhere every worker is exec'd, as it is with MINRAY_FORK_SERVER=0.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from minray.forkserver import Decoder, Exited, Fork, Forked, ForkFailed, Reap, encode
from minray.node import launch
from minray.node.launch import FD_VAR, enabled, server_key
from runtime_env import processes

if TYPE_CHECKING:  # loaded with the node, after the job's server was spawned
    import socket
    import subprocess

    from minray.node.io_loop import IOLoop
    from minray.node.launch import JobServer

PER_WORKER_VARS = ("MINRAY_WORKER_ID", "MINRAY_RUNTIME_ENV", "MINRAY_ACTOR_RESTARTS")
MAX_SERVERS = 8  # keys beyond this many are exec'd: each server is a resident process


class ForkServers:
    """The node's fork servers by key. `on_exit(owner)` is called (under the node's lock, on
    the I/O thread) when a forked process ended or will never be forked."""

    def __init__(self, io: IOLoop, script: str, on_exit: Callable[[Any], None]):
        self._io = io
        self._script = script
        self._on_exit = on_exit
        self._servers: dict[tuple, ForkServer | None] = {}  # None: could not start
        self.enabled = io.pidfds and enabled()

    def fork(self, owner: Any, program: list[str], env: dict[str, str],
             cwd: str) -> ForkedProcess | None:
        """Ask for a worker process; None when it must be exec'd instead."""
        server = self._server(program, env, cwd)
        return None if server is None else server.fork(owner, env, cwd)

    def adopt(self, spawned: JobServer) -> None:
        """Take on the server `spawn_job_server` started (or end it, if it cannot be used)."""
        import socket

        sock = socket.socket(fileno=spawned.fd)
        key = server_key(spawned.program, spawned.env, spawned.cwd)
        if self.enabled and key not in self._servers:
            try:
                self._servers[key] = ForkServer(self._io, spawned.proc, sock, self._on_exit)
                return
            except OSError:  # no descriptor left to watch it with
                pass
        sock.close()
        spawned.proc.kill()
        spawned.proc.wait()

    def stop(self) -> None:
        """For shutdown, once the I/O thread has stopped: close the servers' sockets. Each
        then forks nothing more, reaps its children as the pool ends them, and exits. One
        that has not answered yet is still starting, has no child, and is killed at once."""
        for server in self._live():
            server.stop()

    def close(self, wait: float) -> None:
        """After `stop` and the end of the workers: wait up to `wait` seconds for the servers
        to exit, kill those that did not, reap them, and free what the node held of them."""
        servers = self._live()
        for proc in processes.wait_for_exit([s.proc for s in servers], wait):
            proc.kill()
        for server in servers:
            server.close()

    def _live(self) -> list[ForkServer]:
        return [s for s in self._servers.values() if s is not None and not s.dead]

    def _server(self, program: list[str], env: dict[str, str], cwd: str) -> ForkServer | None:
        if not self.enabled:
            return None
        key = server_key(program, env, cwd)
        if key is None:
            return None
        if key not in self._servers:
            if len(self._servers) >= MAX_SERVERS:
                return None
            self._servers[key] = ForkServer.start(self._io, [*program, self._script], env, cwd,
                                                  self._on_exit)
        server = self._servers[key]
        return server if server is not None and not server.dead else None


class ForkServer:
    """One server process: the forks asked of it and the children it has not seen end."""

    @classmethod
    def start(cls, io: IOLoop, argv: list[str], env: dict[str, str], cwd: str,
              on_exit: Callable[[Any], None]) -> ForkServer | None:
        """Start a server in the background; None if it cannot start (the exec'd worker that
        follows reports why)."""
        import socket
        import subprocess

        ours, theirs = socket.socketpair()
        server_env = {k: v for k, v in env.items() if k not in PER_WORKER_VARS}
        server_env[FD_VAR] = str(theirs.fileno())
        try:
            proc = subprocess.Popen(argv, env=server_env, cwd=cwd, stdin=subprocess.DEVNULL,
                                    start_new_session=True, pass_fds=(theirs.fileno(),))
        except (OSError, ValueError, TypeError):
            ours.close()
            return None
        finally:
            theirs.close()
        try:
            return cls(io, proc, ours, on_exit)
        except OSError:  # no descriptor left to watch it with
            proc.kill()
            proc.wait()
            ours.close()
            return None

    def __init__(self, io: IOLoop, proc: subprocess.Popen | launch.Spawned, sock: socket.socket,
                 on_exit: Callable[[Any], None]):
        self.proc = proc
        self.dead = False
        self.answered = False  # it has said something: it is up, and may have children
        self._io = io
        self._on_exit = on_exit
        self._sock = sock
        self._decoder = Decoder()
        self._pending: dict[str, ForkedProcess] = {}  # by worker id: asked, not forked yet
        self._children: dict[int, ForkedProcess] = {}  # by pid: forked, not ended yet
        io.watch_exit(proc, self, on_exit=ForkServer._died)
        self._conn = io.attach(sock, self._readable)

    def fork(self, owner: Any, env: dict[str, str], cwd: str) -> ForkedProcess:
        proc = ForkedProcess(self, owner)
        self._pending[owner.id] = proc
        self._io.send_bytes(self._conn, encode(Fork(owner.id, env, cwd)))
        return proc

    def reap(self, pid: int) -> None:
        if not self.dead:
            self._io.send_bytes(self._conn, encode(Reap(pid)))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def stop(self) -> None:
        if not self.answered:
            self.kill()
        self._sock.close()

    def close(self) -> None:
        self.proc.wait()
        self.dead = True
        for proc in self._children.values():
            proc.release()

    def _readable(self) -> None:
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:  # the server ended: its exit, watched, settles the rest
                self._io.close(self._conn)
                return
            self.answered = True
            for msg in self._decoder.feed(data):
                self._handle(msg)

    def _handle(self, msg: Forked | ForkFailed | Exited) -> None:
        if type(msg) is Forked:
            proc = self._pending.pop(msg.worker_id, None)
            if proc is not None:
                self._children[msg.pid] = proc
                proc.forked(msg.pid)
        elif type(msg) is ForkFailed:
            proc = self._pending.pop(msg.worker_id, None)
            if proc is not None:
                proc.error = OSError(msg.errno, msg.reason)
                self._on_exit(proc.owner)
        else:
            proc = self._children.pop(msg.pid, None)
            if proc is not None:
                proc.returncode = msg.returncode
                self._on_exit(proc.owner)

    def _died(self) -> None:
        """The server ended. Its pending forks never will be; its children, whose exits
        nobody can report now, are killed and handled as ended."""
        self.proc.wait()
        self.dead = True
        self._io.close(self._conn)
        pending, self._pending = list(self._pending.values()), {}
        children, self._children = list(self._children.values()), {}
        for proc in pending:
            self._on_exit(proc.owner)
        for proc in children:
            proc.kill()
            proc.returncode = -signal.SIGKILL
            self._on_exit(proc.owner)


class ForkedProcess:
    """A worker forked by a server: the part of Popen the node uses (pid, poll, wait, kill),
    its end told by the server. Its pid is None until the server has forked it."""

    def __init__(self, server: ForkServer, owner: Any):
        self.server = server
        self.owner = owner
        self.pid: int | None = None
        self.returncode: int | None = None
        self.error: OSError | None = None  # why the server could not fork it
        self._pidfd: int | None = None  # to signal it safely even after its server is gone
        self._kill_when_forked = False
        self._waited = False

    def forked(self, pid: int) -> None:
        self.pid = pid
        try:
            self._pidfd = os.pidfd_open(pid)
        except OSError:  # out of descriptors: its pid is safe while its server lives
            pass
        if self._kill_when_forked:
            self.kill()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self) -> int | None:
        """How it ended (None if unknown); called once its end was reported. Lets the server
        reap it."""
        if not self._waited:
            self.release()
            if self.pid is not None:
                self.server.reap(self.pid)
        return self.returncode

    def release(self) -> None:
        """Forget the process: it is no longer the node's to kill."""
        self._waited = True
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def kill(self) -> None:
        if self._waited:
            return
        if self.pid is None:
            self._kill_when_forked = True
            return
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
