"""Actors that run several calls at once, as Ray's async and threaded actors do.

An async actor (any `async def` method) runs its calls on an event loop, a threaded actor
(`max_concurrency` > 1) on a thread pool. Each concurrency group has a loop or pool of its own,
sized by its limit; methods without a group share the default one (`max_concurrency`). Sync
methods of an async actor run on their group's loop thread, as in Ray: they block it while they
run. The worker's reader thread (minray/replies.py) hands each call to `submit`.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor

from minray import exceptions as exc
from minray.protocol import Done, Run
from minray.results import dump_error, dump_results, load_args, task_error
from minray.streaming import stream, stream_async
from minray.task import Concurrency, Result
from minray.worker import TERMINATE, WorkerCore

# The call a thread or asyncio task runs, for get_runtime_context().get_task_id()
_current_task: contextvars.ContextVar[str | None] = contextvars.ContextVar("minray_task",
                                                                         default=None)


class ConcurrentCalls:
    def __init__(self, worker: WorkerCore, concurrency: Concurrency):
        self._worker = worker
        self._method_groups = concurrency.method_groups
        group = _LoopGroup if concurrency.is_async else _ThreadGroup
        self._default = group("default", concurrency.max_concurrency, self)
        self._groups = {name: group(name, size, self) for name, size in
                        concurrency.groups.items()}
        self.instance = None

    @staticmethod
    def current_task_id() -> str | None:
        return _current_task.get()

    def construct(self, cls: type, args: list, kwargs: dict):
        """Create the actor's instance. An async actor's `__init__` runs on its default loop,
        as in Ray, so it can start asyncio tasks there."""
        self.instance = self._default.construct(lambda: cls(*args, **kwargs))
        return self.instance

    def cancel(self, task_id: str) -> None:
        """cancel() of a running call: an async call's asyncio task is cancelled, as in Ray
        (a threaded call is not interrupted: it sees is_canceled())."""
        for group in (self._default, *self._groups.values()):
            group.cancel(task_id)

    def submit(self, msg: Run) -> None:
        task = msg.task
        name = task.concurrency_group or self._method_groups.get(task.method)
        group = self._default if name is None else self._groups.get(name)
        if group is None:  # callers check names; a handle that does not know them may not
            try:
                raise ValueError(f"actor has no concurrency group {name!r}; its groups are "
                                 f"{sorted(self._groups)}")
            except ValueError as e:
                self._worker.send(Done(task.task_id, self._error(msg, e)))
            return
        group.submit(msg)

    # ------------------------------------------------------------------ one call
    def run(self, msg: Run) -> None:
        """A call on a thread: run it, send its results."""
        task = msg.task
        token = _current_task.set(task.task_id)
        try:
            method, args, kwargs = self._call(msg)
            results = self._results(msg, method(*args, **kwargs))
        except (Exception, GeneratorExit) as e:  # noqa: BLE001 - every error goes back
            results = self._error(msg, e)
        except exc.ActorExit as e:  # exit_actor() or __ray_terminate__: end on purpose
            self._worker.end_actor(task, str(e))
        except BaseException:  # SystemExit and the like end the worker, as in a plain actor
            self._worker.leave()
        finally:
            _current_task.reset(token)
        self._worker.send(Done(task.task_id, results))

    async def run_async(self, msg: Run) -> None:
        """A call on an event loop: a coroutine is awaited, a sync method just runs."""
        task = msg.task
        _current_task.set(task.task_id)  # this asyncio task's own context
        try:
            method, args, kwargs = self._call(msg)
            value = method(*args, **kwargs)
            if inspect.isawaitable(value):
                value = await value
            if msg.task.generator is not None and inspect.isasyncgen(value):
                results = await stream_async(msg.task, value, self._worker.send)
            else:
                results = self._results(msg, value)
        except (Exception, GeneratorExit, asyncio.CancelledError) as e:  # noqa: BLE001
            results = self._error(msg, e)
        except exc.ActorExit as e:
            self._worker.end_actor(task, str(e))
        except BaseException:
            self._worker.leave()
        self._worker.send(Done(task.task_id, results))

    def _call(self, msg: Run) -> tuple:
        """The bound method and its arguments."""
        if msg.task.method == TERMINATE:
            raise exc.ActorExit(f"its {TERMINATE} was called")
        if self._worker.is_cancelled():  # cancelled before it started
            raise exc.TaskCancelledError(f"task {msg.task.name} was cancelled")
        args, kwargs = load_args(msg.task.args, msg.deps)
        return getattr(self.instance, msg.task.method), args, kwargs

    def _results(self, msg: Run, value) -> list[Result]:
        if msg.task.generator is not None:
            return stream(msg.task, value, self._worker.send)
        return dump_results(value, len(msg.task.return_ids), msg.task.name)

    @staticmethod
    def _error(msg: Run, error: BaseException) -> list[Result]:
        return [dump_error(task_error(msg.task.name, error))] * max(len(msg.task.return_ids), 1)


class _ThreadGroup:
    """A threaded actor's group: up to `size` calls at once, each on a thread of its pool."""

    def __init__(self, name: str, size: int, calls: ConcurrentCalls):
        self._pool = ThreadPoolExecutor(size, thread_name_prefix=f"minray-{name}")
        self._calls = calls

    def construct(self, make):
        return make()

    def submit(self, msg: Run) -> None:
        self._pool.submit(self._calls.run, msg)

    def cancel(self, task_id: str) -> None:
        pass  # a thread cannot be interrupted; the call sees is_canceled()


class _LoopGroup:
    """An async actor's group: an event loop on a thread of its own, `size` calls at once."""

    def __init__(self, name: str, size: int, calls: ConcurrentCalls):
        self._calls = calls
        self._loop = asyncio.new_event_loop()
        self._slots = asyncio.Semaphore(size)  # bound to the loop on first use (3.10+)
        self._running: dict[str, asyncio.Task] = {}  # by call id; asyncio keeps weak refs
        threading.Thread(target=self._loop.run_forever, name=f"minray-{name}",
                         daemon=True).start()

    def construct(self, make):
        async def on_loop():
            return make()

        return asyncio.run_coroutine_threadsafe(on_loop(), self._loop).result()

    def submit(self, msg: Run) -> None:
        self._loop.call_soon_threadsafe(self._start, msg)

    def _start(self, msg: Run) -> None:
        call_id = msg.task.task_id
        task = self._loop.create_task(self._run(msg))
        self._running[call_id] = task
        task.add_done_callback(lambda _: self._running.pop(call_id, None))

    def cancel(self, task_id: str) -> None:
        def on_loop() -> None:
            task = self._running.get(task_id)
            if task is not None:
                task.cancel()

        self._loop.call_soon_threadsafe(on_loop)

    async def _run(self, msg: Run) -> None:
        async with self._slots:
            await self._calls.run_async(msg)
