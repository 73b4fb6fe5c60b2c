"""minray.timeline(): the session's events in Chrome trace format, and the bounded event log
behind it."""

import itertools
import json

import pytest

import minray
from procs import Gate, wait_for
from wheels import DEMO, local


def spans(events, cat=None):
    return [e for e in events if e["ph"] == "X" and (cat is None or e["cat"] == cat)]


def row_names(events):
    """pid -> the name its metadata event gives the row."""
    return {e["pid"]: e["args"]["name"] for e in events
            if e["ph"] == "M" and e["name"] == "process_name"}


def test_every_task_is_a_span_on_the_row_of_the_process_that_ran_it(ray, tmp_path):
    @ray.remote
    def pid(i):
        import os

        return os.getpid()

    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def add(self):
            import os

            self.n += 1
            return os.getpid()

    counter = Counter.remote()
    task_pids = ray.get([pid.remote(i) for i in range(6)])
    actor_pids = ray.get([counter.add.remote() for _ in range(3)])
    path = tmp_path / "trace.json"
    assert ray.timeline(str(path)) is None
    events = json.loads(path.read_text())  # valid JSON, a list of events
    assert isinstance(events, list)
    for event in events:
        assert {"ph", "pid", "tid", "name"} <= event.keys()
        if event["ph"] == "X":
            assert {"ts", "dur", "cat", "args"} <= event.keys() and event["dur"] >= 0
    names = row_names(events)
    tasks = spans(events, "task")
    assert sorted(e["pid"] for e in tasks) == sorted(task_pids)
    calls = spans(events, "actor_task")
    assert [e["pid"] for e in calls] == actor_pids
    assert all(e["name"].endswith("Counter.add") for e in calls)
    creation, = spans(events, "actor_creation")
    assert creation["pid"] == actor_pids[0] and "Counter · env" in names[actor_pids[0]]
    # a sequential actor's calls follow each other on one lane
    assert len({e["tid"] for e in calls}) == 1
    ordered = sorted(calls, key=lambda e: e["ts"])
    assert all(a["ts"] + a["dur"] <= b["ts"] + 0.5 for a, b in itertools.pairwise(ordered))
    for p in {*task_pids, *actor_pids}:
        assert names[p].startswith(f"worker {p}")
        start, = [e for e in spans(events, "worker_start") if e["pid"] == p]
        assert start["args"]["how"] in ("forked", "exec")
    assert all(e["args"]["state"] == "FINISHED" for e in tasks + calls)
    assert isinstance(ray.timeline(), list)  # without a filename: the events


def test_tasks_queued_behind_one_cpu_show_their_wait(tmp_path):
    minray.init(num_cpus=1)
    gate = Gate(tmp_path)
    held = gate.held(minray)
    refs = [held.remote(i) for i in range(3)]
    wait_for(lambda: any(e["cat"] == "task" for e in spans(minray.timeline())),
             "the first task to run")
    running = [e for e in spans(minray.timeline(), "task")]
    assert len(running) == 1 and running[0]["args"]["state"] == "RUNNING"
    gate.open()
    assert minray.get(refs) == [0, 1, 2]
    events = minray.timeline()
    waits = spans(events, "wait_cpu")
    assert len(waits) == 3 and row_names(events)[waits[0]["pid"]] == "waiting for a CPU / worker"
    runs = {e["args"]["task_id"]: e for e in spans(events, "task")}
    for wait in waits:  # each wait ends where its task starts
        run = runs[wait["args"]["task_id"]]
        assert wait["ts"] + wait["dur"] == pytest.approx(run["ts"], abs=2)
    # the second and third waited for the first to finish
    assert sorted(w["dur"] for w in waits)[-1] >= min(r["dur"] for r in runs.values())


def test_a_get_that_blocks_is_a_span_in_the_driver_and_inside_the_task(ray, tmp_path):
    gate = Gate(tmp_path)
    held = gate.held(ray)

    @ray.remote
    def outer():
        return ray.get(held.remote(5))

    ref = outer.remote()
    wait_for(lambda: any(e["args"].get("state") == "RUNNING" and e["name"].endswith("held")
                         for e in spans(ray.timeline(), "task")), "the inner task to run")
    gate.open()
    assert ray.get(ref) == 5
    events = ray.timeline()
    import os

    driver_gets = [e for e in spans(events, "get") if e["pid"] == os.getpid()]
    assert driver_gets and driver_gets[-1]["args"]["objects"] == 1
    outer_span, = [e for e in spans(events, "task") if e["name"].endswith("outer")]
    inner_get, = [e for e in spans(events, "get") if e["pid"] == outer_span["pid"]]
    assert inner_get["name"] == "ray.get" and inner_get["tid"] == outer_span["tid"]
    assert outer_span["ts"] <= inner_get["ts"]
    assert inner_get["ts"] + inner_get["dur"] <= outer_span["ts"] + outer_span["dur"] + 1


def test_env_preparation_shows_each_field_and_step(ray, wheel_dir, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "data.txt").write_text("hello")
    env = {"working_dir": str(project),
           "pip": {"packages": [DEMO], "pip_install_options": local(wheel_dir)}}

    @ray.remote(runtime_env=env)
    def read():
        import mr_demo_pkg  # noqa: F401 - installed by the env

        return open("data.txt").read()

    assert ray.get(read.remote()) == "hello"
    events = ray.timeline()
    names = row_names(events)
    prepared = [e for e in spans(events, "env") if "pip" in names[e["pid"]]]
    assert len(prepared) == 1 and "working_dir" in names[prepared[0]["pid"]]
    steps = [e for e in spans(events, "env_step") if e["pid"] == prepared[0]["pid"]]
    fields = {e["name"].split(":")[0] for e in steps}
    assert {"pip"} <= fields
    assert any(e["name"] == "pip: install" for e in steps)
    whole = prepared[0]
    for step in steps:  # inside the preparation
        assert whole["ts"] <= step["ts"] and step["ts"] + step["dur"] <= whole["ts"] + whole[
            "dur"] + 1
    run, = [e for e in spans(events, "task") if e["name"].endswith("read")]
    assert run["ts"] >= whole["ts"] + whole["dur"] - 1  # it ran once its env was ready


def test_timeline_from_inside_a_task(ray):
    @ray.remote
    def inner():
        return [e["name"] for e in ray.timeline() if e["ph"] == "X"]

    assert any(name.endswith("inner") for name in ray.get(inner.remote()))


def test_a_bad_filename_is_refused_at_the_call(ray):
    with pytest.raises(TypeError, match="timeline"):
        ray.timeline(3)


def test_the_log_keeps_the_last_finished_tasks_only(monkeypatch):
    monkeypatch.setenv("MINRAY_TASK_EVENTS_MAX_NUM_TASK", "5")
    minray.init(num_cpus=1)

    @minray.remote
    def f(i):
        return i

    assert minray.get([f.remote(i) for i in range(12)]) == list(range(12))
    from minray.util.state_tasks import snapshot

    snap = snapshot()
    assert len(snap.tasks) == 5 and snap.dropped == 7
    assert all(t.name.endswith("f") for t in snap.tasks)
    assert len(spans(minray.timeline(), "task")) == 5


def test_a_bad_log_limit_is_named(monkeypatch):
    monkeypatch.setenv("MINRAY_TASK_EVENTS_MAX_NUM_TASK", "many")
    with pytest.raises(ValueError, match="MINRAY_TASK_EVENTS_MAX_NUM_TASK"):
        minray.init(num_cpus=1)
