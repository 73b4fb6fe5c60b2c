"""Turn a validated RuntimeEnv into a LaunchContext by running its plugins in order.

Setup runs on the node (here: a thread of the driver). Commands run through `Setup.run`, which
logs their output to the job's setup log, kills them with their children at the deadline, and
turns a failure into a SetupError carrying the command and the tail of its output. A guard
process (`guard.py`) kills the commands still running if the driver dies. What the log
and the errors say has its URL passwords masked (`masking.mask`).
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from runtime_env import plugin as _plugin
from runtime_env.cache import Cache, default_cache
from runtime_env.context import LaunchContext
from runtime_env.errors import SetupError
from runtime_env.processes import kill_tree
from runtime_env.spec import RuntimeEnv

if TYPE_CHECKING:
    from runtime_env.progress import Reporter

RECORDS_DIR = ".envs"  # in the cache: which envs use which entries (a dot folder: no field)
_saved: set[str] = set()  # records this process wrote or found: not looked for again
LOG_TO_DRIVER_VARS = ("MINRAY_RUNTIME_ENV_LOG_TO_DRIVER_ENABLED",
                      "RAY_RUNTIME_ENV_LOG_TO_DRIVER_ENABLED")
TAIL_LINES = 20


class EntryUse(NamedTuple):
    """A cache entry an env uses, and whether this setup built it."""
    field: str
    key: str
    built: bool


class Prepared(NamedTuple):
    """What `setup_env` did: how to start a worker, the cache entries it used, its time."""
    launch: LaunchContext
    entries: list[EntryUse]
    seconds: float

    @property
    def built(self) -> bool:
        return any(e.built for e in self.entries)


class Setup:
    """What a plugin may use while it creates: the cache, the log, commands, the deadline,
    and `step`/`used` to say what it does (progress for a waiting person, the env's record)."""

    def __init__(self, *, cache: Cache, log_path: str | None, deadline: float | None,
                 env: RuntimeEnv | None = None, progress: Reporter | None = None):
        self.cache = cache
        self.log_path = log_path
        self.deadline = deadline
        self.field: str | None = None
        # Variables visible to later plugins' commands, e.g. the prepared working_dir.
        self.exports: dict[str, str] = {}
        self.entries: list[EntryUse] = []
        self._env = env
        self._progress = progress
        self._reported = False  # SetupStarted sent: only once something is built
        self._t0 = time.monotonic()
        self._to_driver = any(os.environ.get(v) == "1" for v in LOG_TO_DRIVER_VARS)
        self._lock = threading.Lock()

    @property
    def env_id(self) -> str:
        return "" if self._env is None else self._env.env_hash()

    def step(self, step: str, detail: str = "") -> None:
        """A step of building begins (venv, download, unpack, install, check, create)."""
        self.log(f"step: {step} {detail}".rstrip())
        if self._progress is None:
            return
        from runtime_env import progress

        if not self._reported:
            from runtime_env.describe import summary

            self._reported = True
            self._progress(progress.SetupStarted(
                self.env_id, summary(self._env or {}), self.log_path))
        self._progress(progress.StepStarted(self.env_id, self.field or "setup", step, detail))

    def used(self, field: str, key: str, *, built: bool) -> None:
        """The env uses this cache entry (recorded for `minray env list`)."""
        self.entries.append(EntryUse(field, key, built))

    def finished(self, error: BaseException | None) -> None:
        """Tell the reporter that a setup it heard of is over."""
        if self._reported:
            from runtime_env import progress
            from runtime_env.masking import mask

            self._progress(progress.SetupFinished(
                self.env_id, time.monotonic() - self._t0,
                None if error is None else mask(str(error)),
                interrupted=error is not None and not isinstance(error, Exception)))

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
        report = None
        if self._reported:
            from runtime_env.masking import mask
            from runtime_env.progress import InstallerOutput

            def report(line: str) -> None:
                self._progress(InstallerOutput(self.env_id, mask(line.rstrip())))
        for line in proc.stdout:
            tail.append(line)
            self.log("  " + line)
            if report is not None:
                report(line)


def prepare(env: RuntimeEnv, *, cache: Cache | None = None, log_path: str | None = None,
            timeout: float | None = None, progress: Reporter | None = None) -> LaunchContext:
    """Create everything `env` needs and return how to start a worker in it.

    `cache` must be the one `env` was validated with (None: the default cache, on both sides).
    `progress` hears of each step once something is built (see runtime_env.progress).
    """
    return setup_env(env, cache=cache, log_path=log_path, timeout=timeout,
                     progress=progress).launch


def setup_env(env: RuntimeEnv, *, cache: Cache | None = None, log_path: str | None = None,
              timeout: float | None = None, progress: Reporter | None = None) -> Prepared:
    """`prepare`, also saying which cache entries the env uses and whether any was built;
    an env that uses some is recorded in the cache for `minray env list`."""
    setup = Setup(cache=default_cache() if cache is None else cache, log_path=log_path,
                  deadline=None if timeout is None else time.monotonic() + timeout,
                  env=env, progress=progress)
    try:
        launch = _run_plugins(env, setup)
    except BaseException as e:
        setup.finished(e)
        raise
    if setup.entries:
        _record_env(setup.cache, env, [(e.field, e.key) for e in setup.entries])
    setup.finished(None)
    return Prepared(launch, setup.entries, time.monotonic() - setup._t0)


def _record_env(cache: Cache, env: RuntimeEnv, entries: list[tuple[str, str]]) -> None:
    """Record that `env` uses `entries` (see runtime_env.env_records, which reads them): one
    stat when a record already says so, nothing when this process saw it."""
    wanted = sorted({tuple(e) for e in entries})
    env_id = env.env_hash()
    digest = hashlib.sha256(repr(wanted).encode()).hexdigest()[:12]
    path = os.path.join(str(cache.root), RECORDS_DIR, f"{env_id}.{digest}.json")
    if path in _saved:
        return
    try:
        os.stat(path)
        _saved.add(path)
        return
    except OSError:
        pass
    from runtime_env.masking import mask_all

    body = {"env_id": env_id, "spec": mask_all(dict(env)), "entries": [list(e) for e in wanted],
            "created": time.time()}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(body, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
        _saved.add(path)
    except OSError:  # a read-only or full cache must not fail a setup that worked
        pass


def forget_record(path: str) -> None:
    """A record was removed: the next setup that needs it writes it again."""
    _saved.discard(path)


def _run_plugins(env: RuntimeEnv, setup: Setup) -> LaunchContext:
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
