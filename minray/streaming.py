"""The worker's side of generator tasks (minray/generators.py is the caller's): each value is
sent as a `Yield` as soon as it is produced, an exception becomes the next value, and the task's
own result is the count (streaming) or the list of refs (dynamic)."""

from __future__ import annotations

from collections.abc import Callable

from minray.generators import DYNAMIC, DynamicObjectRefGenerator, item_id
from minray.objects import ObjectRef
from minray.protocol import Message, Yield
from minray.results import dump_error, dumps, task_error
from minray.task import Result, TaskSpec

Send = Callable[[Message], None]


def stream(task: TaskSpec, values, send: Send) -> list[Result]:
    """Iterate a generator, sending each value as it comes."""
    count = 0
    try:
        for value in values:
            _send_value(task, count, value, send)
            count += 1
    except Exception as e:  # noqa: BLE001 - the caller meets it where it happened
        _send_error(task, count, e, send)
        count += 1
    return _end(task, count)


async def stream_async(task: TaskSpec, values, send: Send) -> list[Result]:
    """The same for an async generator (an async actor's method)."""
    count = 0
    try:
        async for value in values:
            _send_value(task, count, value, send)
            count += 1
    except Exception as e:  # noqa: BLE001 - the caller meets it where it happened
        _send_error(task, count, e, send)
        count += 1
    return _end(task, count)


def _send_value(task: TaskSpec, index: int, value, send: Send) -> None:
    send(Yield(item_id(task.task_id, index), (True, dumps(value))))


def _send_error(task: TaskSpec, index: int, error: Exception, send: Send) -> None:
    send(Yield(item_id(task.task_id, index), dump_error(task_error(task.name, error))))


def _end(task: TaskSpec, count: int) -> list[Result]:
    if task.generator == DYNAMIC:
        refs = [ObjectRef(item_id(task.task_id, i)) for i in range(count)]
        return [(True, dumps(DynamicObjectRefGenerator(refs)))]
    return [(True, dumps(count))]
