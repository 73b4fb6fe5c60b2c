"""The object store: values by id, who can still reach them, and who waits for them.

A value is freed when no ObjectRef in the driver names it, no unfinished task takes it as an
argument (a pin), and no ref to it left the driver inside a pickled value (a worker might hold
that one: it is kept for the session). Refs report their birth and death through
`minray.objects.track`; the counts are settled here, under the node's lock.

A large value is a segment in shared memory (minray.values): freeing it gives its file to
`release` (the node's object folder, which recycles it a moment, then removes it). Refs
to those values wake the node when they die (`wake`), so their memory does not wait for the
next submit to be given back.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import cloudpickle

from minray import objects, values
from minray.task import Result, TaskSpec


def error_result(error: BaseException) -> Result:
    return False, cloudpickle.dumps(error)


class ObjectStore:
    def __init__(self, wake: Callable[[], None] | None = None,
                 release: Callable[[values.Data], None] = values.free):
        self.values: dict[str, Result] = {}
        self._release = release  # frees a value's segment
        self._refs: dict[str, int] = {}  # live ObjectRefs in the driver, per object
        self._pins: dict[str, int] = {}  # unfinished tasks that take the object as argument
        self._dropped: set[str] = set()  # results that no one can ask for any more
        self._ref_events: collections.deque = collections.deque()  # (id, +1 or -1)
        self._escaped: set[str] = set()
        self._waiters: dict[str, list[Callable[[str], None]]] = {}
        # set by the node: a finished task no longer keeps alive the actors its args name
        self.release_handles: Callable[[list[str] | None], None] = _ignore
        # set by the node: its event log hears of every task's end (TaskLog.ended)
        self.ended: Callable[[TaskSpec, list[Result], BaseException | None], None] = _ignore3
        self._in_segments: set[str] = set()  # ids whose value is a segment
        objects.track(self._ref_events, self._escaped, self._in_segments, wake)

    def close(self) -> None:
        """Stop tracking refs; the segments go with the node's object folder."""
        objects.track(None, None)

    def __contains__(self, oid: str) -> bool:
        return oid in self.values

    def __getitem__(self, oid: str) -> Result:
        return self.values[oid]

    # ------------------------------------------------------------------ storing
    def store(self, oid: str, result: Result) -> None:
        """Keep a value (unless nobody can ask for it) and wake who waits for it."""
        self.collect()
        if oid in self._dropped:
            self._dropped.discard(oid)
            self._release(result[1])
        else:
            self.values[oid] = result
            if type(result[1]) is values.Segment:
                self._in_segments.add(oid)
        for callback in self._waiters.pop(oid, ()):
            callback(oid)

    def complete(self, task: TaskSpec, results: list[Result],
                 error: BaseException | None = None) -> None:
        """A task is over: store its results and release its arguments. `error`: the
        node's reason when it failed the task itself."""
        self.ended(task, results, error)
        for oid, result in zip(task.return_ids, results, strict=False):
            self.store(oid, result)
        self.unpin(task.deps)
        if task.handles:
            self.release_handles(task.handles)

    def discard(self, results: list[Result]) -> None:
        """Results no one will store (their call had already failed): free their segments."""
        for _ok, data in results:
            self._release(data)

    def fail(self, task: TaskSpec, error: BaseException) -> None:
        """Every result of the task is `error`."""
        self.complete(task, [error_result(error)] * len(task.return_ids), error)

    def failed_dep(self, task: TaskSpec) -> Result | None:
        """The error result of the first argument that failed, if any (all must be stored)."""
        for oid in task.deps:
            if not self.values[oid][0]:
                return self.values[oid]
        return None

    # ------------------------------------------------------------------ waiting
    def when_ready(self, ids: list[str], need: int,
                   callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` once `need` of `ids` are stored (at once if they already are).
        Returns a function that cancels the wait, so a timed-out get leaves nothing behind."""
        unique = list(dict.fromkeys(ids))
        missing = [i for i in unique if i not in self.values]
        count = len(unique) - len(missing)
        if count >= need:
            callback()
            return _nothing

        def arrived(_oid: str) -> None:
            nonlocal count
            count += 1
            if count == need:
                callback()

        for oid in missing:
            self._waiters.setdefault(oid, []).append(arrived)

        def cancel() -> None:
            for oid in missing:
                waiters = self._waiters.get(oid)
                if waiters is not None and arrived in waiters:
                    waiters.remove(arrived)
                    if not waiters:
                        del self._waiters[oid]

        return cancel

    def when_all_ready(self, ids: list[str], callback: Callable[[], None]) -> Callable[[], None]:
        return self.when_ready(ids, len(set(ids)), callback)

    # ------------------------------------------------------------------ for the state API
    def census(self) -> list[tuple[str, Result | None, str]]:
        """Every object that can still be asked for: (id, its result or None while its task
        runs, why it is kept: "ref" a ref in the driver, "arg" an unfinished task's argument,
        "kept" kept for the session (a worker may hold a ref), "" none of these yet)."""
        self.collect()
        ids = dict.fromkeys(self.values)
        ids.update(dict.fromkeys(self._refs))
        return [(oid, self.values.get(oid), "ref" if oid in self._refs
                 else "arg" if oid in self._pins else "kept" if oid in self._escaped else "")
                for oid in ids]

    # ------------------------------------------------------------------ freeing
    def collect(self) -> None:
        """Count the refs born and collected since last time; free what nobody can reach."""
        events = self._ref_events
        while events:
            oid, delta = events.popleft()
            count = self._refs.get(oid, 0) + delta
            if count > 0:
                self._refs[oid] = count
            elif oid in self._refs:
                del self._refs[oid]
                self._free(oid)

    def keep(self, ids: list[str]) -> None:
        """Keep these for the session: a worker holds refs to them, which are not counted."""
        self._escaped.update(ids)

    def pin(self, ids: list[str]) -> None:
        for oid in ids:
            self._pins[oid] = self._pins.get(oid, 0) + 1

    def unpin(self, ids: list[str]) -> None:
        for oid in ids:
            count = self._pins.pop(oid) - 1
            if count:
                self._pins[oid] = count
            elif oid not in self._refs:
                self._free(oid)

    def _free(self, oid: str) -> None:
        if oid in self._refs or oid in self._pins or oid in self._escaped:
            return
        result = self.values.pop(oid, None)
        if result is None:
            if oid not in self._waiters:
                self._dropped.add(oid)  # still being computed: drop the result when it comes
        elif oid in self._in_segments:
            self._in_segments.discard(oid)
            self._release(result[1])


def _nothing() -> None:
    pass


def _ignore(_ids) -> None:
    pass


def _ignore3(_task, _results, _error) -> None:
    pass
