"""list_tasks / summarize_tasks (Ray's ray.util.state task calls) on the live session."""


import pytest

import minray
from minray.state_client import NoSession
from minray.util.state_tasks import list_tasks, summarize_tasks
from procs import Gate, wait_for


def states(**filters):
    return sorted(t.state for t in list_tasks(
        filters=[(k, "=", v) for k, v in filters.items()] or None))


def test_states_of_running_queued_and_waiting_tasks(tmp_path):
    minray.init(num_cpus=1)
    gate = Gate(tmp_path)
    held = gate.held(minray)

    @minray.remote
    def plus_one(x):
        return x + 1

    first = held.remote(1)
    second = held.remote(2)  # behind the first: one CPU
    third = plus_one.remote(first)  # its argument does not exist yet
    wait_for(lambda: "RUNNING" in states(), "a task to run")
    assert states() == ["PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT", "RUNNING"]
    running, = list_tasks(filters=[("state", "=", "RUNNING")])
    assert running.task_id == list_tasks()[0].task_id  # the first one submitted
    assert running.worker_pid is not None and running.worker_id and running.node_id
    assert running.type == "NORMAL_TASK" and running.func_or_class_name.endswith("held")
    gate.open()
    assert minray.get([first, second, third]) == [1, 2, 2]
    assert states() == ["FINISHED"] * 3


def test_a_task_blocked_in_get_is_running_in_ray_get(ray, tmp_path):
    gate = Gate(tmp_path)
    held = gate.held(ray)

    @ray.remote
    def outer():
        return ray.get(held.remote(7))

    ref = outer.remote()
    wait_for(lambda: states() == ["RUNNING", "RUNNING_IN_RAY_GET"],
             "outer to block in get while inner runs")
    outer_row, = list_tasks(filters=[("state", "=", "RUNNING_IN_RAY_GET")])
    inner_row, = list_tasks(filters=[("parent_task_id", "=", outer_row.task_id)])
    assert inner_row.state == "RUNNING" and outer_row.func_or_class_name.endswith("outer")
    gate.open()
    assert ray.get(ref) == 7
    assert states() == ["FINISHED", "FINISHED"]


def test_failures_say_ray_error_types(ray):
    @ray.remote
    def boom():
        raise KeyError("no such key")

    @ray.remote(max_retries=0)
    def die():
        import os

        os._exit(3)

    for ref in (boom.remote(), die.remote()):
        with pytest.raises(Exception):  # noqa: B017 - each fails its own way
            ray.get(ref)
    failed = list_tasks(filters=[("state", "=", "FAILED")], detail=True)
    by_name = {row.func_or_class_name.rsplit(".", 1)[-1]: row for row in failed}
    assert by_name["boom"].error_type == "TASK_EXECUTION_EXCEPTION"
    assert "no such key" in by_name["boom"].error_message
    assert by_name["die"].error_type == "WORKER_DIED"
    assert [e["state"] for e in by_name["boom"].events][-1] == "FAILED"


def test_actor_rows(ray):
    @ray.remote
    class Counter:
        def add(self, n):
            return n

    counter = Counter.remote()
    assert ray.get([counter.add.remote(i) for i in range(3)]) == [0, 1, 2]
    creation, = list_tasks(filters=[("type", "=", "ACTOR_CREATION_TASK")])
    assert creation.func_or_class_name.endswith("Counter")
    assert creation.name == f"{creation.func_or_class_name}.__init__"
    calls = list_tasks(filters=[("actor_id", "=", creation.actor_id), ("type", "!=",
                                                                       "actor_creation_task")])
    assert len(calls) == 3 and {c.type for c in calls} == {"ACTOR_TASK"}
    assert {c.worker_pid for c in calls} == {creation.worker_pid}


def test_filters_limit_and_detail(ray):
    @ray.remote
    def f(i):
        return i

    @ray.remote
    def g():
        return 0

    ray.get([f.remote(i) for i in range(5)] + [g.remote()])
    assert len(list_tasks()) == 6
    assert len(list_tasks(limit=2)) == 2
    assert len(list_tasks(filters=[("state", "=", "finished")])) == 6  # case-insensitive
    gs = list_tasks(filters=[("name", "!=", list_tasks()[0].name)])
    assert len(gs) == 1 and gs[0].name.endswith("g")
    row = list_tasks()[0]
    assert row.state == row["state"] == row.get("state") == row.asdict()["state"]
    assert row.start_time_ms is None and row.get("no such column", 1) == 1
    with pytest.raises(KeyError):
        row["no such column"]
    full = list_tasks(detail=True)[0]
    assert full.creation_time_ms <= full.start_time_ms <= full.end_time_ms
    assert full.language == "PYTHON"


@pytest.mark.parametrize("filters, error, words", [
    ([("colour", "=", "red")], ValueError, "list_tasks: cannot filter on 'colour'"),
    ([("state", ">", "RUNNING")], ValueError, "predicate '>'"),
    ([("state", "RUNNING")], ValueError, "(key, predicate, value)"),
    ("state=RUNNING", TypeError, "list of"),
])
def test_bad_filters_are_named(ray, filters, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        list_tasks(filters=filters)


def test_bad_limit(ray):
    with pytest.raises(ValueError, match="limit"):
        list_tasks(limit=0)


def test_summarize_tasks_counts_by_name_and_state(ray):
    @ray.remote
    def ok():
        return 1

    @ray.remote
    def bad():
        raise ValueError("x")

    @ray.remote
    class A:
        def m(self):
            return 1

    a = A.remote()
    ray.get([ok.remote() for _ in range(4)] + [a.m.remote(), a.m.remote()])
    with pytest.raises(Exception):  # noqa: B017
        ray.get(bad.remote())
    summary = summarize_tasks()["cluster"]
    assert (summary["total_tasks"], summary["total_actor_tasks"],
            summary["total_actor_scheduled"]) == (5, 2, 1)
    assert summary["summary_by"] == "func_name"
    by_short = {k.rsplit(".", 1)[-1]: v for k, v in summary["summary"].items()}
    assert by_short["ok"]["state_counts"] == {"FINISHED": 4}
    assert by_short["bad"]["state_counts"] == {"FAILED": 1}
    assert by_short["m"] == {"func_or_class_name": next(k for k in summary["summary"]
                                                        if k.endswith("A.m")),
                             "type": "ACTOR_TASK", "state_counts": {"FINISHED": 2}}
    assert by_short["__init__"]["type"] == "ACTOR_CREATION_TASK"


def test_without_a_session_it_says_so(tmp_path, monkeypatch):
    """As every state call: a process with no session reads the newest running one; there is
    none in a minray folder of its own."""
    minray.shutdown()
    monkeypatch.setenv("MINRAY_TMPDIR", str(tmp_path))
    with pytest.raises(NoSession, match=r"no minray session .* minray.init\(\)"):
        list_tasks()


def test_from_inside_a_task(ray):
    @ray.remote
    def me():
        return [t.state for t in list_tasks() if t.func_or_class_name.endswith("me")]

    assert ray.get(me.remote()) == ["RUNNING"]


def test_reexported_by_the_state_module(ray):
    from minray.util import state

    assert state.list_tasks is list_tasks and state.summarize_tasks is summarize_tasks
