"""The session's runtime envs: one state per env hash, each prepared once, in the background.

Preparing runs `runtime_env.prepare` on a thread of its own (installs can take minutes); the
node learns the outcome through `on_ready` / `on_failed`, called under its lock. A failed env
is remembered for the session, so its later tasks fail at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import runtime_env as renv
from minray import exceptions as exc
from minray.node.state import EnvState


class Envs:
    def __init__(self, lock: threading.RLock, setup_log: str, cache: renv.Cache | None, *,
                 on_ready: Callable[[EnvState], None],
                 on_failed: Callable[[EnvState, exc.RuntimeEnvSetupError], None]):
        self._lock = lock
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
        if prepare and not state.preparing:
            state.preparing = True
            threading.Thread(target=self._prepare, args=(state,), daemon=True,
                             name=f"minray-env-{h[:8]}").start()
        return state

    def for_task(self, parent: EnvState, override: dict | None) -> EnvState:
        """The env of a task or actor: its parent's, with the caller's fields over it."""
        if not override:
            return self.get(parent.spec)  # prepares the job env on first use if not eager
        child = override if isinstance(override, renv.RuntimeEnv) else renv.parse(override)
        return self.get(renv.inherit(parent.spec, child))

    def _prepare(self, state: EnvState) -> None:
        timeout = state.spec.config().timeout
        result: list = []

        def build() -> None:
            try:
                result.append(renv.prepare(state.spec, cache=self.cache,
                                           log_path=self.setup_log, timeout=timeout))
            except BaseException as e:  # noqa: BLE001 - every failure is the user's answer
                result.append(e)

        builder = threading.Thread(target=build, daemon=True)
        builder.start()
        builder.join(None if timeout is None else timeout + 5)
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


def _describe(error: BaseException) -> str:
    if isinstance(error, renv.SetupError):
        return str(error)
    return f"{type(error).__name__}: {error}"
