"""ObjectRef: the handle of a value that a task will produce, or that `put` stored."""

from __future__ import annotations


class ObjectRef:
    __slots__ = ("id", "__weakref__")

    def __init__(self, id: str):
        self.id = id

    def __reduce__(self):
        return ObjectRef, (self.id,)

    def __repr__(self) -> str:
        return f"ObjectRef({self.id})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ObjectRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def hex(self) -> str:
        return self.id

    def __await__(self):
        import asyncio

        from minray import api

        return asyncio.get_running_loop().run_in_executor(None, api.get, self).__await__()
