"""The node's event log as a Chrome trace (what `minray.timeline()` returns, as Ray's
`ray.timeline()`): a list of events that Perfetto (ui.perfetto.dev) and chrome://tracing open.

One row ("process") per worker process, named by its pid and what it runs, holding its start
(asked for -> connected) and its tasks and actor calls as spans, with the gets that blocked
inside them nested; a row for the driver's blocked gets and waits; a row per runtime env
prepared (the whole preparation, and each step of each field: download, unpack, install, ...);
rows for the time tasks spent waiting for their arguments, for a CPU or worker, or for their
actor. Spans that overlap within a row (an async actor's calls, many tasks waiting at once)
go to separate lanes ("threads") of that row.
"""

from __future__ import annotations

from collections.abc import Iterable

from minray import task_events as ev

# Rows that are no process get ids above any Linux pid (pid_max is at most 2**22)
PSEUDO_PID = 1 << 22
CATEGORIES = {ev.NORMAL_TASK: "task", ev.ACTOR_TASK: "actor_task",
              ev.ACTOR_CREATION_TASK: "actor_creation"}
# Chrome's reserved colour names, one per kind of span
COLOURS = {"task": "thread_state_running", "actor_task": "rail_response",
           "actor_creation": "rail_load", "worker_start": "thread_state_iowait",
           "env": "startup", "env_step": "generic_work", "wait_args": "thread_state_sleeping",
           "wait_cpu": "thread_state_runnable", "wait_actor": "thread_state_runnable",
           "get": "thread_state_sleeping", "failed": "terrible"}
WAIT_ROWS = (("wait_args", "waiting for arguments"), ("wait_cpu", "waiting for a CPU / worker"),
             ("wait_actor", "waiting for the actor"))


def trace_events(snap: ev.Snapshot) -> list[dict]:
    """The snapshot as Chrome trace events (`ts` and `dur` in microseconds since the epoch)."""
    trace = _Trace(snap.taken)
    trace.process(snap.driver_pid, f"driver (pid {snap.driver_pid})", 0)
    threads: dict[int, int] = {}
    for block in snap.blocks:
        if block.worker_id == "driver":
            tid = threads.setdefault(block.thread, len(threads))
            trace.span(snap.driver_pid, tid, block.kind, "get", block.started, block.ended,
                       objects=block.objects)
    for thread, tid in threads.items():
        trace.thread(snap.driver_pid, tid, "main" if tid == 0 else f"thread {thread}")
    _workers(trace, snap)
    _envs(trace, snap.envs)
    _waits(trace, snap.tasks)
    return trace.events


class _Trace:
    def __init__(self, now: float):
        self.events: list[dict] = []
        self.now = now  # what has not ended yet ends here
        self._pseudo = PSEUDO_PID

    def pseudo_pid(self) -> int:
        self._pseudo += 1
        return self._pseudo

    def process(self, pid: int, name: str, order: int) -> None:
        self.events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                            "args": {"name": name}})
        self.events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
                            "args": {"sort_index": order}})

    def thread(self, pid: int, tid: int, name: str) -> None:
        self.events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                            "args": {"name": name}})

    def span(self, pid: int, tid: int, name: str, cat: str, start: float,
             end: float | None, colour: str | None = None, **args) -> None:
        ts = start * 1e6
        self.events.append({
            "ph": "X", "name": name, "cat": cat, "pid": pid, "tid": tid, "ts": round(ts, 1),
            "dur": round(max((self.now if end is None else end) * 1e6 - ts, 0.0), 1),
            "cname": COLOURS[colour or cat], "args": args})


def _lanes(spans: Iterable[tuple[float, float]]) -> list[int]:
    """A lane per span (given in start order) such that spans in one lane do not overlap."""
    ends: list[float] = []
    lanes = []
    for start, end in spans:
        lane = next((i for i, e in enumerate(ends) if e <= start), len(ends))
        if lane == len(ends):
            ends.append(end)
        else:
            ends[lane] = end
        lanes.append(lane)
    return lanes


def _workers(trace: _Trace, snap: ev.Snapshot) -> None:
    """A row per worker process: its start, its tasks (earlier attempts too), its gets."""
    runs: dict[str, list[tuple[float, float, ev.TaskEvent, ev.Attempt | None]]] = {}
    for task in snap.tasks:
        for attempt in task.earlier:
            runs.setdefault(attempt.worker_id, []).append(
                (attempt.started, attempt.ended or snap.taken, task, attempt))
        if task.started is not None and task.worker_id is not None:
            runs.setdefault(task.worker_id, []).append(
                (task.started, task.ended or snap.taken, task, None))
    blocks: dict[str, list[ev.BlockEvent]] = {}
    for block in snap.blocks:
        blocks.setdefault(block.worker_id, []).append(block)
    for order, worker in enumerate(sorted(snap.workers, key=lambda w: w.asked), start=1):
        pid = worker.pid if worker.pid is not None else trace.pseudo_pid()
        what = f" · actor {worker.actor_name}" if worker.actor_name else ""
        trace.process(pid, f"worker {worker.pid if worker.pid is not None else '?'}{what} · "
                           f"env {worker.env_hash[:8]}", order)
        spans = [(worker.asked, worker.connected or worker.exited or snap.taken, None, None)]
        spans += sorted(runs.get(worker.worker_id, ()), key=lambda s: s[0])
        if worker.actor_id is not None and not worker.concurrent:
            spans = _one_at_a_time(spans)
        lanes = _lanes((start, end) for start, end, _, _ in spans)
        lane_of: dict[str, int] = {}
        for (start, end, task, attempt), lane in zip(spans, lanes, strict=True):
            if task is None:
                trace.span(pid, lane, "worker start", "worker_start", start, end,
                           how="forked" if worker.forked else "exec",
                           worker_id=worker.worker_id)
                continue
            lane_of[task.task_id] = lane
            _task_span(trace, pid, lane, task, attempt, start, end)
        for block in blocks.get(worker.worker_id, ()):
            trace.span(pid, lane_of.get(block.task_id, 0), f"ray.{block.kind}", "get",
                       block.started, block.ended, objects=block.objects,
                       task_id=block.task_id)


def _one_at_a_time(spans: list) -> list:
    """An actor that runs one call at a time: a call sent while another ran started when
    that one ended."""
    out, busy_until = [], 0.0
    for start, end, task, attempt in spans:
        start = max(start, busy_until) if task is not None else start
        end = max(end, start)
        out.append((start, end, task, attempt))
        busy_until = end
    return out


def _task_span(trace: _Trace, pid: int, lane: int, task: ev.TaskEvent,
               attempt: ev.Attempt | None, start: float, end: float) -> None:
    cat = CATEGORIES[task.type]
    if attempt is not None:
        trace.span(pid, lane, task.name, cat, start, end, colour="failed", task_id=task.task_id,
                   state=ev.FAILED, error_type="WORKER_DIED", worker_id=attempt.worker_id)
        return
    failed = task.state == ev.FAILED
    trace.span(pid, lane, task.name, cat, start, end, colour="failed" if failed else None,
               task_id=task.task_id, state=task.state, attempt_number=task.attempt_number,
               error_type=task.error_type, worker_id=task.worker_id, actor_id=task.actor_id)


def _envs(trace: _Trace, envs: list[ev.EnvEvent]) -> None:
    """A row per env preparation: the whole of it, and its steps in a lane below."""
    rows: dict[str, int] = {}
    for env in envs:
        pid = rows.get(env.env_hash)
        if pid is None:
            pid = rows[env.env_hash] = trace.pseudo_pid()
            trace.process(pid, f"runtime env {env.env_hash[:8]}: {env.summary}",
                          10_000 + len(rows))
            trace.thread(pid, 0, "preparation")
            trace.thread(pid, 1, "steps")
        trace.span(pid, 0, "prepare env" if env.error is None else "prepare env (failed)", "env",
                   env.started, env.ended, colour="failed" if env.error else None,
                   env_hash=env.env_hash, error=env.error)
        for step in env.steps:
            trace.span(pid, 1, f"{step.field}: {step.step}", "env_step", step.started,
                       step.ended, detail=step.detail)


def _waits(trace: _Trace, tasks: list[ev.TaskEvent]) -> None:
    """Rows for the time tasks waited: for their arguments, a CPU / worker, their actor."""
    waits: dict[str, list[tuple[float, float, ev.TaskEvent]]] = {c: [] for c, _ in WAIT_ROWS}
    for task in tasks:
        end = task.started or task.ended or trace.now
        if task.type == ev.ACTOR_TASK:
            waits["wait_actor"].append((task.submitted, end, task))
            continue
        if task.waited_for_args:
            waits["wait_args"].append((task.submitted, task.queued or end, task))
        if task.type == ev.NORMAL_TASK and task.queued is not None:
            waits["wait_cpu"].append((task.queued, end, task))
        elif task.type == ev.ACTOR_CREATION_TASK:
            waits["wait_cpu"].append((task.submitted, end, task))
    for order, (cat, title) in enumerate(WAIT_ROWS, start=20_000):
        spans = sorted(waits[cat], key=lambda s: s[0])
        if not spans:
            continue
        pid = trace.pseudo_pid()
        trace.process(pid, title, order)
        for (start, end, task), lane in zip(spans, _lanes((s, e) for s, e, _ in spans),
                                            strict=True):
            trace.span(pid, lane, task.name, cat, start, end, task_id=task.task_id)
