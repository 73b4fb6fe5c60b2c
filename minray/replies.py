"""One reader for a worker whose calls wait for objects at the same time.

A plain worker runs one call at a time, and that call reads the socket itself while it waits in
`get`. Once calls run concurrently (a concurrent actor, or an `await ref` in a plain task) one
thread reads everything instead: each Reply goes to the request that waits for it, by req_id,
and other messages (Run, Exit) go to `on_work`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from minray.protocol import Cancel, Channel, Exit, Get, Message, Reply, Wait

# A request is any message with a `req_id` that the node answers with one Reply (Get, Wait).


class _Answer:
    """Where a blocking request's payload lands."""

    __slots__ = ("event", "payload")

    def __init__(self):
        self.event = threading.Event()
        self.payload: list | None = None

    def put(self, payload: list) -> None:
        self.payload = payload
        self.event.set()


class Router:
    def __init__(self, channel: Channel, send: Callable[[Message], None],
                 on_work: Callable[[Message], None]):
        self._channel = channel
        self._send = send
        self._on_work = on_work
        self._lock = threading.Lock()
        self._waiting: dict[int, Callable[[list], None]] = {}

    def start(self) -> None:
        threading.Thread(target=self._read, name="minray-reader", daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                msg = self._channel.recv()
                if type(msg) is Reply:
                    with self._lock:
                        deliver = self._waiting.pop(msg.req_id, None)
                    if deliver is not None:  # None: the late answer to a cancelled request
                        deliver(msg.payload)
                else:
                    self._on_work(msg)
        except (EOFError, OSError):  # the node is gone: leave as a plain worker would
            self._on_work(Exit())

    def request(self, request: Message, timeout: float | None) -> list | None:
        """Send a request and block this thread for its answer. One that times out is
        cancelled (None), except a Wait: the node answers it with what is ready then."""
        answer = _Answer()
        with self._lock:
            self._waiting[request.req_id] = answer.put
        self._send(request)
        if answer.event.wait(timeout):
            return answer.payload
        if isinstance(request, Wait):  # the node answers the Cancel (or already answered)
            self._send(Cancel(request.req_id))
            answer.event.wait()
            return answer.payload
        with self._lock:
            waiting = self._waiting.pop(request.req_id, None)
        if waiting is None:  # answered just now: the reader is delivering it
            answer.event.wait()
            return answer.payload
        self._send(Cancel(request.req_id))
        return None

    def watch(self, request: Get, on_reply: Callable[[list], None]) -> Callable[[], None]:
        """Send a Get; `on_reply(results)` runs on the reader thread when it is answered.
        Returns a function that cancels it (nothing happens if it was answered already)."""
        with self._lock:
            self._waiting[request.req_id] = on_reply
        self._send(request)

        def cancel() -> None:
            with self._lock:
                waiting = self._waiting.pop(request.req_id, None)
            if waiting is not None:
                self._send(Cancel(request.req_id))

        return cancel
