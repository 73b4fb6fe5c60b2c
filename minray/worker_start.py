"""A worker process's start: connect to the node, run the env's setup hook, say hello, serve.

Run by minray/_boot/minray_worker.py in an exec'd worker and by the fork server in a forked
one; minray/worker.py is what the worker does once started.
"""

from __future__ import annotations

import _pickle as pickle  # the C module: a worker starts ~1 ms sooner without pickle.py
import _signal as signal  # the C module: signal.py builds enums, ~0.7 ms of a worker start
import _thread
import os
import select
import sys
from typing import TYPE_CHECKING

from minray import core, remote_pdb
from minray.protocol import Channel, Hello
from minray.worker import WorkerCore
from runtime_env.processes import pid_alive

if TYPE_CHECKING:
    import socket


def _watch_driver(sock: socket.socket, driver_pid: int) -> None:
    """Exit as soon as the driver is gone, even if it was killed with SIGKILL mid-task, with
    the output its tasks printed (a node that shuts down closes the socket too: the main
    thread may see that first, or this one)."""
    hangup = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR
    poller = select.poll()
    poller.register(sock.fileno(), hangup)
    while True:
        if poller.poll(1000) or not pid_alive(driver_pid):
            WorkerCore.leave()


def _whole_lines() -> None:
    """Under PYTHONUNBUFFERED (or -u) each piece of a print is a write of its own, and workers
    share the driver's stdout: two printing at once would mix halves of their lines. Line
    buffering writes each line at once, as Ray's workers' lines arrive whole."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "write_through", False):
            stream.reconfigure(write_through=False, line_buffering=True)


def _run_setup_hook(hook: str) -> str | None:
    """Run the env's worker_process_setup_hook; the error, with its traceback, if it raised."""
    try:
        if hook.startswith("cloudpickle:"):
            import base64

            fn = pickle.loads(base64.b64decode(hook.removeprefix("cloudpickle:")))
        else:
            import importlib

            module, _, name = hook.rpartition(".")
            fn = getattr(importlib.import_module(module), name)
        fn()
    except BaseException as e:  # noqa: BLE001 - any failure fails the env, with its reason
        import traceback

        return "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return None


def _hello(worker: WorkerCore, setup_error: str | None) -> None:
    try:
        worker.send(Hello(worker.worker_id, setup_error))
    except OSError:  # the node shut down while this worker was connecting
        os._exit(0)


def main() -> None:
    import _socket  # the C module: socket.py's enums cost a worker ~4 ms of its start

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(os.environ["MINRAY_NODE_SOCKET"])
    except OSError:  # the node shut down while this worker was starting
        os._exit(0)
    channel = Channel(sock)
    worker = WorkerCore(channel, os.environ["MINRAY_WORKER_ID"])
    hook = os.environ.get("MINRAY_SETUP_HOOK")
    if hook is None:  # the node sends this worker its work while it finishes its start
        _hello(worker, None)
    for path in os.environ.get("MINRAY_DRIVER_SYS_PATH", "").split(os.pathsep):
        if path and path not in sys.path:
            sys.path.append(path)
    _whole_lines()
    # A bare thread (daemon, as it were): Thread.start waits until the new thread runs, which
    # on a busy machine held the first task up by ms.
    _thread.start_new_thread(_watch_driver, (sock, int(os.environ["MINRAY_DRIVER_PID"])))
    signal.signal(signal.SIGINT, worker.interrupt)
    core.set_current(worker)
    remote_pdb.install()
    if hook is not None:  # it runs in the worker as tasks will find it, and may fail the env
        _hello(worker, _run_setup_hook(hook))
    try:
        worker.serve()
    except (EOFError, ConnectionError):
        pass
    finally:
        worker.leave()
