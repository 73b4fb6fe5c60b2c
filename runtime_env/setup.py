"""Turn a validated RuntimeEnv into a LaunchContext by running its plugins in order.

Setup runs on the node (here: a thread of the driver). Commands run through `Setup.run`, which
logs their output to the job's setup log, kills them with their children at the deadline, and
turns a failure into a SetupError carrying the command and the tail of its output. A guard
process (`guard.py`) kills the commands still running if the driver dies. What the log
and the errors say has its URL passwords masked (`masking.mask`).
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from runtime_env import plugin as _plugin
from runtime_env.cache import Cache, default_cache
from runtime_env.context import LaunchContext
from runtime_env.errors import SetupError
from runtime_env.processes import kill_tree
from runtime_env.spec import RuntimeEnv

LOG_TO_DRIVER_VARS = ("MINRAY_RUNTIME_ENV_LOG_TO_DRIVER_ENABLED",
                      "RAY_RUNTIME_ENV_LOG_TO_DRIVER_ENABLED")
TAIL_LINES = 20


class Setup:
    """What a plugin may use while it creates: the cache, the log, commands, the deadline."""

    def __init__(self, *, cache: Cache, log_path: str | None, deadline: float | None):
        self.cache = cache
        self.log_path = log_path
        self.deadline = deadline
        self.field: str | None = None
        # Variables visible to later plugins' commands, e.g. the prepared working_dir.
        self.exports: dict[str, str] = {}
        self._to_driver = any(os.environ.get(v) == "1" for v in LOG_TO_DRIVER_VARS)
        self._lock = threading.Lock()

    def log(self, text: str) -> None:
        """Append a line to the setup log (and the driver's stderr), passwords masked."""
        from runtime_env.masking import mask  # here: a cached env logs nothing, nor loads it

        line = f"{time.strftime('%H:%M:%S')} [{self.field or 'setup'}] {mask(text.rstrip())}\n"
        with self._lock:
            if self.log_path:
                with open(self.log_path, "a") as f:
                    f.write(line)
            if self._to_driver:
                sys.stderr.write(f"(runtime_env) {line}")

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def fail(self, reason: str, **details) -> SetupError:
        return SetupError(reason, field=self.field, log_path=self.log_path, **details)

    def run(self, cmd: Sequence[str], *, env: dict[str, str] | None = None,
            cwd: str | None = None) -> str:
        """Run a command to completion and return its output; raise SetupError on failure."""
        from runtime_env import guard  # here: a cached env runs no command, nor loads it

        cmd = [str(c) for c in cmd]
        self.log("$ " + " ".join(cmd))
        full_env = {**os.environ, **self.exports, **(env or {})}
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=full_env, cwd=cwd,
                                    text=True, errors="replace", start_new_session=True)
        except OSError as e:
            raise self.fail(f"cannot run {cmd[0]!r}: {e.strerror}", command=cmd) from None
        guard.watch(proc.pid)  # killed with its children if this process dies first
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        reader = threading.Thread(target=self._pump, args=(proc, tail), daemon=True)
        reader.start()
        try:
            proc.wait(timeout=self.remaining())
        except subprocess.TimeoutExpired:
            pass
        finally:  # timed out, or interrupted (Ctrl-C): no command outlives its run
            finished = proc.returncode is not None
            if not finished:
                kill_tree(proc.pid)
            guard.forget(proc.pid)
        if not finished:
            reader.join(5)
            raise self.fail("setup timed out (setup_timeout_seconds) while running a command",
                            command=cmd, output_tail="".join(tail))
        reader.join()
        if proc.returncode != 0:
            raise self.fail(f"command exited with code {proc.returncode}", command=cmd,
                            output_tail="".join(tail))
        return "".join(tail)

    def _pump(self, proc: subprocess.Popen, tail: collections.deque) -> None:
        for line in proc.stdout:
            tail.append(line)
            self.log("  " + line)


def prepare(env: RuntimeEnv, *, cache: Cache | None = None, log_path: str | None = None,
            timeout: float | None = None) -> LaunchContext:
    """Create everything `env` needs and return how to start a worker in it.

    `cache` must be the one `env` was validated with (None: the default cache, on both sides).
    """
    setup = Setup(cache=default_cache() if cache is None else cache, log_path=log_path,
                  deadline=None if timeout is None else time.monotonic() + timeout)
    launch = LaunchContext()
    for plugin in _plugin.ordered(env):
        setup.field = plugin.name
        value = env[plugin.name]
        try:
            created = plugin.create(value, setup)
            plugin.modify(value, created, launch, setup)
        except SetupError:
            raise
        except Exception as e:  # a bug or an OS error inside a plugin: still the user's answer
            setup.log(f"failed: {e!r}")
            raise setup.fail(f"{type(e).__name__}: {e}") from e
        if setup.remaining() is not None and setup.remaining() <= 0:
            raise setup.fail("setup timed out (setup_timeout_seconds)")
    setup.field = None
    return launch
