"""The task half of Ray's state API (`ray.util.state.list_tasks`, `summarize_tasks`), read
from the node's event log of the running session.

Rows are `TaskState` dataclasses with Ray's field names, which also answer `row["state"]`,
`row.get("state")` and `row.asdict()`, as Ray's do: user code written for Ray uses both
attribute and key access. As in Ray, the `detail=True` columns (times, error message, events)
are None unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from minray import task_events as ev
from minray.protocol import StateQuery
from minray.util.state_filters import Row, check_filters, passes


@dataclass
class TaskState(Row):
    task_id: str
    attempt_number: int
    name: str
    state: str
    job_id: str
    actor_id: str | None
    type: str
    func_or_class_name: str
    parent_task_id: str | None
    node_id: str | None
    worker_id: str | None
    worker_pid: int | None
    error_type: str | None
    # detail=True only
    language: str | None = None
    required_resources: dict | None = None
    runtime_env_info: dict | None = None
    placement_group_id: str | None = None
    events: list[dict] | None = None
    profiling_data: dict | None = None
    creation_time_ms: int | None = None
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    task_log_info: dict | None = None
    error_message: str | None = None
    is_debugger_paused: bool | None = None
    call_site: str | None = None
    label_selector: dict | None = None


FILTERABLE = ("task_id", "attempt_number", "name", "state", "job_id", "actor_id", "type",
              "func_or_class_name", "parent_task_id", "node_id", "worker_id", "worker_pid",
              "error_type", "language", "placement_group_id", "is_debugger_paused")


def list_tasks(address: str | None = None, filters: list[tuple[str, str, object]] | None = None,
               limit: int = 100, timeout: int = 30, detail: bool = False,
               raise_on_missing_output: bool = True, _explain: bool = False) -> list[TaskState]:
    """The session's tasks, actor creations and actor calls (the last 100,000 finished ones
    and every unfinished one), oldest first, at most `limit`. `filters`: (column, "=" or "!=",
    value) tuples, all of which must hold (minray/util/state_filters.py)."""
    checks = check_filters(filters, FILTERABLE, "list_tasks")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"list_tasks(limit=...) must be a positive whole number, got {limit!r}")
    snap = snapshot(address, timeout)
    rows = []
    for task in sorted(snap.tasks, key=lambda t: t.submitted):
        row = _row(task, snap, detail)
        if passes(row.get, checks):
            rows.append(row)
            if len(rows) == limit:
                break
    return rows


def summarize_tasks(address: str | None = None, timeout: int = 30,
                    raise_on_missing_output: bool = True, _explain: bool = False) -> dict:
    """Counts per task name and state, as Ray's `summarize_tasks()`:
    {"cluster": {"summary": {name: {"func_or_class_name", "type", "state_counts"}},
    "total_tasks", "total_actor_tasks", "total_actor_scheduled", "summary_by"}}."""
    snap = snapshot(address, timeout)
    summary: dict[str, dict] = {}
    totals = {ev.NORMAL_TASK: 0, ev.ACTOR_TASK: 0, ev.ACTOR_CREATION_TASK: 0}
    for task in snap.tasks:
        row = _row(task, snap, detail=False)
        key = row.name or row.func_or_class_name
        entry = summary.setdefault(key, {"func_or_class_name": key, "type": row.type,
                                         "state_counts": {}})
        entry["state_counts"][row.state] = entry["state_counts"].get(row.state, 0) + 1
        totals[row.type] += 1
    return {"cluster": {"summary": summary, "total_tasks": totals[ev.NORMAL_TASK],
                        "total_actor_tasks": totals[ev.ACTOR_TASK],
                        "total_actor_scheduled": totals[ev.ACTOR_CREATION_TASK],
                        "summary_by": "func_name"}}


def snapshot(address: str | None = None, timeout: float = 30) -> ev.Snapshot:
    """The node's event log now, asked as every state query is (minray.util.state.ask): from
    this process's session, or from a process without one, the newest running session's."""
    from minray.util.state import ask  # it re-exports this module's calls

    return ask(StateQuery(0, "task_events", [], 1, False), address, timeout)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _row(task: ev.TaskEvent, snap: ev.Snapshot, detail: bool) -> TaskState:
    name = func = task.name
    if task.type == ev.ACTOR_CREATION_TASK:  # Ray names the creation after the constructor
        name = f"{task.name}.__init__"
    row = TaskState(task_id=task.task_id, attempt_number=task.attempt_number, name=name,
                    state=task.state, job_id=snap.job_id, actor_id=task.actor_id,
                    type=task.type, func_or_class_name=func,
                    parent_task_id=task.parent_task_id,
                    node_id=snap.node_id if task.worker_id is not None else None,
                    worker_id=task.worker_id, worker_pid=task.pid,
                    error_type=task.error_type)
    if detail:
        row.language = "PYTHON"
        row.creation_time_ms = _ms(task.submitted)
        row.start_time_ms = _ms(task.started)
        row.end_time_ms = _ms(task.ended)
        row.error_message = task.error_message
        row.runtime_env_info = None if task.env_hash is None else {"env_hash": task.env_hash}
        row.events = _events(task)
    return row


def _events(task: ev.TaskEvent) -> list[dict]:
    """The task's state changes, as Ray's `events` column: [{"state", "created_ms"}]."""
    changes = [(ev.PENDING_ARGS_AVAIL if task.waited_for_args else
                ev.PENDING_NODE_ASSIGNMENT, task.submitted)]
    if task.waited_for_args and task.queued is not None:
        changes.append((ev.PENDING_NODE_ASSIGNMENT, task.queued))
    if task.started is not None:
        changes.append((ev.RUNNING, task.started))
    if task.ended is not None:
        changes.append((task.state, task.ended))
    return [{"state": state, "created_ms": _ms(at)} for state, at in changes]
