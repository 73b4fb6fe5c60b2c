"""The session's runtime envs: one state per env hash, each prepared once, in the background.

Preparing runs `runtime_env.prepare` on a thread of its own (installs can take minutes, and
their progress shows on the driver's stderr after a second); the node learns the outcome
through `on_ready` / `on_failed`, called under its lock. A failed env is remembered for a while
(Ray's BAD_RUNTIME_ENV_CACHE_TTL_SECONDS, 10 minutes by default), so its later tasks fail at
once; asking again after that, or with another `config` (a longer `setup_timeout_seconds`),
prepares it again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import runtime_env as renv
from minray import exceptions as exc
from minray.node.state import EnvState
from minray.node.task_log import TaskLog


class Envs:
    def __init__(self, lock: threading.RLock, setup_log: str, cache: renv.Cache | None, *,
                 on_ready: Callable[[EnvState], None],
                 on_failed: Callable[[EnvState, exc.RuntimeEnvSetupError], None],
                 log: TaskLog | None = None):
        self._lock = lock
        self._log = log or TaskLog()  # the timeline's env spans and their steps
        self.setup_log = setup_log
        self.cache = cache  # the one the specs were validated with (None: the default)
        self._on_ready, self._on_failed = on_ready, on_failed
        self.envs: dict[str, EnvState] = {}
        self.closed = False

    def get(self, spec: renv.RuntimeEnv, *, prepare: bool = True) -> EnvState:
        """The state of an env, starting its preparation on first use."""
        h = spec.env_hash()
        state = self.envs.get(h)
        if state is None:
            state = self.envs[h] = EnvState(h, spec)
        return self._use(state, spec, prepare)

    def for_task(self, parent: EnvState, override: dict | None) -> EnvState:
        """The env of a task or actor: its parent's, with the caller's fields over it."""
        if not override:  # the common case: no hashing (prepares a lazy job env on first use)
            return self._use(parent, parent.spec, True)
        child = override if isinstance(override, renv.RuntimeEnv) else renv.parse(override)
        return self.get(renv.inherit(parent.spec, child))

    def _use(self, state: EnvState, spec: renv.RuntimeEnv, prepare: bool) -> EnvState:
        if state.error is not None and self._may_retry(state, spec):
            state.spec, state.error, state.preparing = spec, None, False
        if prepare and not state.preparing:
            state.preparing = True
            threading.Thread(target=self._prepare, args=(state,), daemon=True,
                             name=f"minray-env-{state.hash[:8]}").start()
        return state

    def failed(self, state: EnvState, error: exc.RuntimeEnvSetupError) -> None:
        """Remember that the env cannot run workers (the first reason wins)."""
        if state.error is None:
            state.error, state.failed_at = error, time.monotonic()

    def _may_retry(self, state: EnvState, spec: renv.RuntimeEnv) -> bool:
        return (spec.config() != state.spec.config()
                or time.monotonic() - state.failed_at > bad_env_ttl())

    def _prepare(self, state: EnvState) -> None:
        timeout = state.spec.config().timeout
        result: list = []
        record = self._log.env_started(state.hash, state.spec)

        def progress(event) -> None:
            from runtime_env.progress import StepStarted

            if isinstance(event, StepStarted):
                self._log.env_step(record, event.field, event.step, event.detail)
            _show_progress(event)

        def build() -> None:
            try:
                result.append(renv.prepare(state.spec, cache=self.cache,
                                           log_path=self.setup_log, timeout=timeout,
                                           progress=progress))
            except BaseException as e:  # noqa: BLE001 - every failure is the user's answer
                result.append(e)

        builder = threading.Thread(target=build, daemon=True)
        builder.start()
        builder.join(None if timeout is None else timeout + 5)
        self._log.env_ended(record, None if not result or not isinstance(result[0], BaseException)
                            else _describe(result[0]))
        with self._lock:
            if self.closed:
                return
            if not result:
                self._on_failed(state, exc.RuntimeEnvSetupError(
                    f"runtime_env setup timed out after {timeout} s "
                    f"(config setup_timeout_seconds); full setup log: {self.setup_log}"))
            elif isinstance(result[0], BaseException):
                self._on_failed(state, exc.RuntimeEnvSetupError(_describe(result[0])))
            else:
                state.launch = result[0]
                self._on_ready(state)


def _show_progress(event) -> None:
    """Progress on the driver's stderr (unless MINRAY_QUIET): called only once a setup builds
    something, so a cached env loads nothing for it."""
    from runtime_env.progress import console

    reporter = console()
    if reporter is not None:
        reporter(event)


TTL_VARS = ("MINRAY_BAD_RUNTIME_ENV_CACHE_TTL_SECONDS", "BAD_RUNTIME_ENV_CACHE_TTL_SECONDS")
DEFAULT_TTL_SECONDS = 600.0


def bad_env_ttl() -> float:
    """How long a failed env is remembered, in seconds (minray's variable, then Ray's)."""
    for var in TTL_VARS:
        value = os.environ.get(var)
        if value:
            try:
                return float(value)
            except ValueError:
                raise ValueError(f"{var} must be a number of seconds, got {value!r}") from None
    return DEFAULT_TTL_SECONDS


def _describe(error: BaseException) -> str:
    if isinstance(error, renv.SetupError):
        return str(error)
    return f"{type(error).__name__}: {error}"
