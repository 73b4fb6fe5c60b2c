"""Tasks and actor methods that `yield`, as in Ray: `num_returns="streaming"` (the default for a
generator function) gives an ObjectRefGenerator the caller iterates while values are produced;
`num_returns="dynamic"` gives one ref whose value, once the task ends, lists the refs.

The worker stores each yielded value under `<task id>.y<i>` as it comes (a `Yield` message), and
ends with the task's own return id: the count of values for streaming, the list of refs for
dynamic. An exception in the generator becomes the next value, so iterating raises it where it
happened.
"""

from __future__ import annotations

from minray import core
from minray.objects import ObjectRef, value_of

STREAMING, DYNAMIC = "streaming", "dynamic"


def item_id(task_id: str, index: int) -> str:
    return f"{task_id}.y{index}"


class ObjectRefGenerator:
    """The refs of a streaming task's values, in order, each as soon as it exists."""

    def __init__(self, task_id: str):
        self._task_id = task_id
        self._end = ObjectRef(task_id)  # holds the count once the generator is done
        self._next = 0

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> ObjectRef:
        ref = self._next_ref(timeout=None)
        if ref is None:
            raise StopIteration
        return ref

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> ObjectRef:
        import asyncio  # on use: it costs workers ~10 ms at start

        ref = await asyncio.get_running_loop().run_in_executor(None, self._next_ref, None)
        if ref is None:
            raise StopAsyncIteration
        return ref

    def _next_ref(self, timeout: float | None) -> ObjectRef | None:
        """The next value's ref once it exists; None when the generator is done."""
        oid = item_id(self._task_id, self._next)
        ready = core.current().wait([oid, self._end.id], 1, timeout)
        if oid not in ready:
            count = value_of(core.current().get([self._end.id], None)[0])  # raises its error
            if self._next >= count:
                return None
        self._next += 1
        return ObjectRef(oid)

    def completed(self) -> ObjectRef:
        """A ref that is ready once the generator is done (its value: how many it yielded)."""
        return self._end

    def is_finished(self) -> bool:
        return self._end.id in core.current().wait([self._end.id], 1, 0)

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._task_id})"


class DynamicObjectRefGenerator:
    """The value of a `num_returns="dynamic"` task: its values' refs, to iterate."""

    def __init__(self, refs: list[ObjectRef]):
        self._refs = refs

    def __iter__(self):
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)


def generator_returns(num_returns, target, what: str) -> None:
    """`streaming`/`dynamic` need a generator function, as Ray says at `.remote()`."""
    import inspect

    if not (inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target)):
        raise ValueError(f"{what}: num_returns={num_returns!r} needs a generator function (one "
                         f"that uses yield); this one is not")
