"""The fork server: a worker process, imported once, that forks new workers on request.

The node starts it like a worker (`<env's python> _boot/minray_worker.py`, with
MINRAY_FORK_SERVER_FD naming its end of a socket pair). It imports what a worker imports, then
forks one child per `Fork`: the child closes the server's descriptors, starts a session of its
own, takes the worker's environment and cwd, and runs `minray.worker.main`. A new worker thus
costs a fork, not an interpreter start. The node forks only workers whose interpreter and
start-time variables equal the server's (minray/node/forkservers.py); the rest of the
environment is the child's own.

The server is its children's parent, so it tells the node how each one ended (`Exited`) and
leaves it a zombie until the node has handled that (`Reap`): until then the pid names that
process and no other, so the node can kill it and its tree by pid. When the node's end of the
socket closes (shutdown, or the driver killed) the server forks nothing more, reaps its
children as they end (they end by themselves once the node is gone), kills those left after
a while, and exits: no child outlives it unreaped, whatever init does with orphans.
"""

from __future__ import annotations

import _pickle as pickle  # the C module: a worker starts ~1 ms sooner without pickle.py
import gc
import os
import select
import struct
import sys
import time
from typing import TYPE_CHECKING

from minray.named_tuple import Record

if TYPE_CHECKING:
    import socket

WIND_DOWN_SECONDS = 2.0  # after the node is gone, how long children may take to end
WORKER_PATH_VAR = "MINRAY_WORKER_PATH"  # read by the boot script at start, then removed


# --- node -> server ------------------------------------------------------------------------
class Fork(Record):
    """Fork a worker with this complete environment, in this folder."""

    worker_id: str
    env: dict[str, str]
    cwd: str


class Reap(Record):
    """The node has handled this child's exit: reap it."""

    pid: int


# --- server -> node ------------------------------------------------------------------------
class Forked(Record):
    worker_id: str
    pid: int


class ForkFailed(Record):
    """No child could be made (the machine is out of processes or memory)."""

    worker_id: str
    errno: int
    reason: str


class Exited(Record):
    """A child ended; `returncode` as Popen's: the exit code, or minus the signal."""

    pid: int
    returncode: int


ForkServerMessage = Fork | Reap | Forked | ForkFailed | Exited
_KINDS: tuple[type, ...] = (Fork, Reap, Forked, ForkFailed, Exited)
_TAG = {kind: tag for tag, kind in enumerate(_KINDS)}
_HEADER = struct.Struct("!I")


def encode(message: ForkServerMessage) -> bytes:
    body = pickle.dumps((_TAG[type(message)], *message), protocol=5)
    return _HEADER.pack(len(body)) + body


class Decoder:
    """Whole messages out of a byte stream, keeping a partial one for the next call."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[ForkServerMessage]:
        self._buf += data
        out = []
        while len(self._buf) >= _HEADER.size:
            end = _HEADER.size + _HEADER.unpack_from(self._buf)[0]
            if len(self._buf) < end:
                break
            values = pickle.loads(self._buf[_HEADER.size:end])
            del self._buf[:end]
            out.append(_KINDS[values[0]](*values[1:]))
        return out


# --- the server ----------------------------------------------------------------------------
def serve(fd: int) -> None:
    """The server's loop on its end `fd` of the node's socket: fork on request, report exits,
    reap when told; never returns."""
    import _socket  # the C module: socket.py's enums cost a worker ~4 ms of its start

    import minray.worker_start  # noqa: F401 - everything a worker imports, once for all children

    server = _Server(_socket.socket(fileno=fd))
    try:
        while server.turn():
            pass
    finally:  # the node is gone (or this loop broke): no child may be left unreaped
        server.wind_down()


class _Server:
    """Forks on request. Right after the first fork (made as soon as it is asked for: the
    worker init prestarts, whose task is what a user waits for) it loads what tasks use
    beyond a worker's start, cloudpickle and the API (`minray.get`, `.remote()`), once for
    every later child. Loading it later (after an idle moment, or a module at a time between
    requests) was measured: init + first task no faster beyond noise, and new actors and
    env_vars envs just after it 2-3x slower, their children importing what they lacked."""

    def __init__(self, ctl: socket.socket):
        self.ctl = ctl
        ctl.setblocking(True)
        self.poller = select.poll()
        self.poller.register(ctl.fileno(), select.POLLIN)
        self.children: dict[int, int] = {}  # pidfd -> pid of each child that has not ended
        self.ended: set[int] = set()  # children whose end was reported, not reaped yet
        self.decoder = Decoder()
        self.forked_any = False
        self.warm = False

    def turn(self) -> bool:
        """Handle what is ready, waiting until there is something; False once the node's end
        of the socket is closed."""
        for fd, _ in self.poller.poll():
            if fd != self.ctl.fileno():
                pid = self.children.pop(fd)
                self.poller.unregister(fd)
                os.close(fd)
                self.ended.add(pid)
                if not self._send(Exited(pid, _returncode(pid))):
                    return False
                continue
            try:
                data = self.ctl.recv(1 << 20)
            except OSError:
                data = b""
            if not data or self._closed_after():
                return False  # a fork asked just before the node left is not made
            for msg in self.decoder.feed(data):
                if type(msg) is Reap:
                    self.ended.discard(msg.pid)
                    _reap(msg.pid)
                elif not self._send(self._fork(msg)):
                    return False
        if self.forked_any and not self.warm:
            self._warm_up()
        return True

    def _closed_after(self) -> bool:
        """Has the node closed its end behind what was just read?"""
        from _socket import MSG_DONTWAIT, MSG_PEEK

        try:
            return self.ctl.recv(1, MSG_PEEK | MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def _send(self, message: ForkServerMessage) -> bool:
        try:
            self.ctl.sendall(encode(message))
            return True
        except OSError:  # the node closed its end
            return False

    def _warm_up(self) -> None:
        import minray.actor  # noqa: F401 - with minray.api: what `minray.get`, `.remote()` etc. load
        import minray.api  # noqa: F401

        gc.freeze()  # children's collections leave these objects, and so their pages, shared
        self.warm = True

    def _fork(self, msg: Fork) -> Forked | ForkFailed:
        self.forked_any = True
        try:
            pid = os.fork()
        except OSError as e:
            return ForkFailed(msg.worker_id, e.errno or 0, e.strerror or str(e))
        if pid == 0:
            _become_worker(msg, [self.ctl.fileno(), *self.children])
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as e:  # no descriptor left to watch it with: it cannot be a worker
            os.kill(pid, 9)  # SIGKILL (the signal module is not loaded here)
            _reap(pid)
            return ForkFailed(msg.worker_id, e.errno or 0, e.strerror or str(e))
        self.children[pidfd] = pid
        self.poller.register(pidfd, select.POLLIN)
        return Forked(msg.worker_id, pid)

    def wind_down(self) -> None:
        """Reap every child as it ends (each ends by itself once the node is gone), kill those
        left after WIND_DOWN_SECONDS, and exit."""
        self.poller.unregister(self.ctl.fileno())
        for pid in self.ended:
            _reap(pid)
        deadline = time.monotonic() + WIND_DOWN_SECONDS
        while self.children and deadline > time.monotonic():
            for fd, _ in self.poller.poll((deadline - time.monotonic()) * 1000):
                self.poller.unregister(fd)
                os.close(fd)
                _reap(self.children.pop(fd))
        from signal import SIGKILL, pidfd_send_signal

        for fd, pid in self.children.items():
            pidfd_send_signal(fd, SIGKILL)
            _reap(pid)
        os._exit(0)


def _returncode(pid: int) -> int:
    """How a child ended, leaving it a zombie (WNOWAIT) until the node says Reap."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _become_worker(msg: Fork, inherited: list[int]) -> None:
    """In the child: what an exec'd worker would have got from Popen, then the worker."""
    try:
        for fd in inherited:
            os.close(fd)
        os.setsid()
        _replace_environ(msg.env)
        os.chdir(msg.cwd)
    except BaseException as e:  # noqa: BLE001 - reported as a worker that could not start
        print(f"minray: a forked worker could not start in {msg.cwd!r}: {e}", file=sys.stderr,
              flush=True)
        os._exit(1)
    from minray.worker_start import main

    try:
        main()  # ends the process
    except BaseException:  # noqa: BLE001 - never back into the server's loop
        import traceback

        traceback.print_exc()
    os._exit(1)


def _replace_environ(env: dict[str, str]) -> None:
    """Make os.environ (and the C environment, which libraries read) exactly `env`."""
    for name in [n for n in os.environ if n not in env]:
        del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value
    os.environ.pop(WORKER_PATH_VAR, None)  # as the boot script removes it
    tempfile = sys.modules.get("tempfile")
    if tempfile is not None:
        tempfile.tempdir = None  # found again from this environment's TMPDIR when needed
