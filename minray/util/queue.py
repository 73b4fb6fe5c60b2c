"""`Queue`: a first-in, first-out queue kept by an actor, as Ray's `ray.util.queue.Queue`.

The queue object holds only its actor's handle, so it can be passed to tasks and actors and used
there like in the driver. Items live in an `asyncio.Queue` inside an async actor, and a blocking
`put`/`get` waits there, as in Ray: the actor runs up to 1000 calls at once, so a waiting getter
holds up no other caller, and an item reaches a waiting getter as soon as it is put.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterable
from typing import Any

from minray import api


class Empty(queue.Empty):
    """The queue has no item (or not enough) to get."""


class Full(queue.Full):
    """The queue has no room for the item(s)."""


class _QueueActor:
    """The queue's state; `put` and `get` wait on the actor's event loop."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.queue: asyncio.Queue = asyncio.Queue(maxsize)

    async def qsize(self) -> int:
        return self.queue.qsize()

    async def empty(self) -> bool:
        return self.queue.empty()

    async def full(self) -> bool:
        return self.queue.full()

    async def put(self, item: Any, timeout: float | None) -> bool:
        """True once the item went in; False if `timeout` passed first without room."""
        try:
            if timeout == 0:  # wait_for(..., 0) gives up before the put even starts
                self.queue.put_nowait(item)
            else:
                await asyncio.wait_for(self.queue.put(item), timeout)
        except (asyncio.TimeoutError, asyncio.QueueFull):
            return False
        return True

    async def get(self, timeout: float | None) -> tuple[bool, Any]:
        """(True, the first item) once there is one; (False, None) if `timeout` passed."""
        try:
            if timeout == 0:
                return True, self.queue.get_nowait()
            return True, await asyncio.wait_for(self.queue.get(), timeout)
        except (asyncio.TimeoutError, asyncio.QueueEmpty):
            return False, None

    async def put_nowait_batch(self, items: list) -> str | None:
        """Put all the items, or none of them and say why."""
        if self.maxsize > 0 and len(items) + self.queue.qsize() > self.maxsize:
            return (f"Cannot add {len(items)} items to queue of size {self.queue.qsize()} and "
                    f"maxsize {self.maxsize}.")
        for item in items:
            self.queue.put_nowait(item)
        return None

    async def get_nowait_batch(self, num_items: int) -> tuple[bool, Any]:
        """(True, the first num_items items), or (False, why) if there are fewer."""
        if num_items > self.queue.qsize():
            return False, f"Cannot get {num_items} items from queue of size {self.queue.qsize()}."
        return True, [self.queue.get_nowait() for _ in range(num_items)]


_actor_class = None


def _queue_actor_class():
    global _actor_class
    if _actor_class is None:
        _actor_class = api.remote(_QueueActor)
    return _actor_class


class Queue:
    """A FIFO queue shared by the driver, tasks and actors. `maxsize` 0 means unbounded;
    `actor_options` go to the queue actor's `.options()` (e.g. a `runtime_env`)."""

    def __init__(self, maxsize: int = 0, actor_options: dict | None = None):
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int (0: unbounded), got {maxsize!r}")
        if actor_options is not None and not isinstance(actor_options, dict):
            raise TypeError(f"actor_options must be a dict of actor options, got "
                            f"{type(actor_options).__name__}")
        self.maxsize = maxsize
        self.actor = _queue_actor_class().options(**(actor_options or {})).remote(maxsize)

    def _handle(self):
        if self.actor is None:
            raise RuntimeError("this Queue was shut down")
        return self.actor

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """How many items the queue holds."""
        return api.get(self._handle().qsize.remote())

    def qsize(self) -> int:
        return self.size()

    def empty(self) -> bool:
        return api.get(self._handle().empty.remote())

    def full(self) -> bool:
        return api.get(self._handle().full.remote())

    # ------------------------------------------------------------------ put
    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add an item. A full queue raises Full at once (`block=False`) or once `timeout`
        seconds pass without room (None: wait for as long as it takes)."""
        if not api.get(self._handle().put.remote(item, _wait_for(block, timeout))):
            raise Full

    def put_nowait(self, item: Any) -> None:
        """Add an item; Full if there is no room."""
        self.put(item, block=False)

    def put_nowait_batch(self, items: Iterable) -> None:
        """Add all the items in order, or none (Full) if they do not all fit."""
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        why = api.get(self._handle().put_nowait_batch.remote(list(items)))
        if why is not None:
            raise Full(why)

    async def put_async(self, item: Any, block: bool = True,
                        timeout: float | None = None) -> None:
        """`put` for async code: waits without blocking the event loop."""
        if not await self._handle().put.remote(item, _wait_for(block, timeout)):
            raise Full

    # ------------------------------------------------------------------ get
    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Take the first item. An empty queue raises Empty at once (`block=False`) or once
        `timeout` seconds pass without an item (None: wait for as long as it takes)."""
        got, item = api.get(self._handle().get.remote(_wait_for(block, timeout)))
        if not got:
            raise Empty
        return item

    def get_nowait(self) -> Any:
        """Take the first item; Empty if there is none."""
        return self.get(block=False)

    def get_nowait_batch(self, num_items: int) -> list:
        """Take the first `num_items` items, or none (Empty) if there are fewer."""
        if isinstance(num_items, bool) or not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        got, items = api.get(self._handle().get_nowait_batch.remote(num_items))
        if not got:
            raise Empty(items)
        return items

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """`get` for async code: waits without blocking the event loop."""
        got, item = await self._handle().get.remote(_wait_for(block, timeout))
        if not got:
            raise Empty
        return item

    # ------------------------------------------------------------------ the end
    def shutdown(self, force: bool = False, grace_period_s: float = 5) -> None:
        """End the queue's actor: after the calls already made (`force=False`, killed if that
        takes over `grace_period_s`), or at once. The items are gone."""
        if self.actor is not None:
            if force:
                api.kill(self.actor, no_restart=True)
            else:
                done = self.actor.__ray_terminate__.remote()
                _, not_done = api.wait([done], timeout=grace_period_s)
                if not_done:
                    api.kill(self.actor, no_restart=True)
        self.actor = None


def _wait_for(block: bool, timeout: float | None) -> float | None:
    """How long the actor may wait: 0 without `block`, `timeout` (None: no limit) with it."""
    if not block:
        return 0
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout < 0):
        raise ValueError("'timeout' must be a non-negative number")
    return timeout
