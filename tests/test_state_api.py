"""`minray.util.state` on a live session: actors through their life, workers, objects, the
node, Ray's filters and limits, from the driver and from inside a task."""

from __future__ import annotations

import os
import socket

import pytest

from minray.util import state
from procs import Gate, wait_for


@pytest.fixture
def gates(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return Gate(tmp_path / "a"), Gate(tmp_path / "b")


def _actor(name: str):
    found = state.list_actors(filters=[("name", "=", name)], detail=True)
    assert len(found) == 1, found
    return found[0]


def test_an_actor_through_its_life(ray, gates):
    args_gate, init_gate = gates

    @ray.remote
    class Slow:
        def __init__(self, value, gate):
            gate.wait()
            self.value = value

        def pid(self):
            return os.getpid()

    arg = args_gate.held(ray).remote(7)
    actor = Slow.options(name="slow").remote(arg, init_gate)
    row = _actor("slow")
    assert (row.state, row["state"], row.get("state")) == ("DEPENDENCIES_UNREADY",) * 3
    assert row.class_name == "test_an_actor_through_its_life.<locals>.Slow"  # as Ray's
    assert row.ray_namespace and row.death_cause is None

    args_gate.open()  # its argument exists: the constructor runs and waits at the next gate
    wait_for(lambda: _actor("slow").state == "PENDING_CREATION", "PENDING_CREATION")
    init_gate.open()
    pid = ray.get(actor.pid.remote())
    row = _actor("slow")
    assert (row.state, row.pid, row.num_restarts) == ("ALIVE", pid, 0)
    assert row.actor_id == state.get_actor(row.actor_id).actor_id

    ray.kill(actor)
    wait_for(lambda: state.get_actor(row.actor_id).state == "DEAD", "the actor to be DEAD")
    dead = state.get_actor(row.actor_id)
    message = dead.death_cause["actor_died_error_context"]["error_message"]
    assert "killed by kill()" in message, dead.death_cause
    assert state.list_actors(filters=[("state", "=", "ALIVE")]) == []
    assert [a.name for a in state.list_actors(filters=[("state", "!=", "ALIVE")])] == ["slow"]


def test_detail_fields_only_with_detail(ray):
    @ray.remote
    class Plain:
        def ping(self):
            return "pong"

    handle = Plain.remote()
    ray.get(handle.ping.remote())
    brief, = state.list_actors()
    assert brief.state == "ALIVE" and brief.name == ""
    assert brief.required_resources is None and brief.is_detached is None
    full, = state.list_actors(detail=True)
    assert full.is_detached is False and full.serialized_runtime_env is not None


def test_filters_and_limits(ray):
    @ray.remote
    class Counter:
        def ping(self):
            return 1

    handles = [Counter.options(name=f"c{i}").remote() for i in range(3)]
    ray.get([h.ping.remote() for h in handles])
    assert len(state.list_actors()) == 3
    assert len(state.list_actors(limit=2)) == 2
    assert [a.name for a in state.list_actors(filters=[("name", "=", "c1")])] == ["c1"]
    assert len(state.list_actors(filters=[("name", "!=", "c1"), ("state", "=", "ALIVE")])) == 2
    pid = state.list_actors(filters=[("name", "=", "c2")])[0].pid
    assert [a.name for a in state.list_actors(filters=[("pid", "=", str(pid))])] == ["c2"]


def test_bad_queries_are_refused_at_the_call(ray):
    with pytest.raises(ValueError, match="cannot filter on 'color'.*class_name"):
        state.list_actors(filters=[("color", "=", "red")])
    with pytest.raises(ValueError, match="predicate '>'"):
        state.list_actors(filters=[("pid", ">", 3)])
    with pytest.raises(ValueError, match="tuple"):
        state.list_workers(filters=["is_alive=True"])
    with pytest.raises(ValueError, match="limit must be a positive int"):
        state.list_objects(limit=0)
    with pytest.raises(ValueError, match="remote cluster"):
        state.list_actors(address="10.1.2.3:6379")
    assert state.get_actor("ffffffffffffffffffffffffffffffff") is None


def test_workers_alive_and_ended(ray):
    @ray.remote
    class Pid:
        def pid(self):
            return os.getpid()

    actor = Pid.remote()
    pid = ray.get(actor.pid.remote())
    workers = state.list_workers()
    driver, = [w for w in workers if w.worker_type == "DRIVER"]
    assert driver.pid == os.getpid() and driver.is_alive
    assert pid in [w.pid for w in workers if w.worker_type == "WORKER" and w.is_alive]

    ray.kill(actor)
    wait_for(lambda: state.list_workers(filters=[("is_alive", "=", "false")]),
             "the killed actor's worker to be listed as ended")
    ended, = state.list_workers(filters=[("is_alive", "=", "false")], detail=True)
    assert (ended.pid, ended.exit_type) == (pid, "INTENDED_USER_EXIT")
    assert "SIGKILL" in ended.exit_detail
    assert pid not in [w.pid for w in state.list_workers(filters=[("is_alive", "=", True)])]


def test_objects(ray, gates):
    gate, _ = gates
    stored = ray.put(b"x" * 1000)
    running = gate.held(ray).remote(1)
    wait_for(lambda: state.list_objects(filters=[("task_status", "=", "RUNNING")]),
             "the held task's result to be listed as running")
    by_id = {o.object_id: o for o in state.list_objects()}
    put_row, run_row = by_id[stored.hex()], by_id[running.hex()]
    assert (put_row.reference_type, put_row.task_status) == ("LOCAL_REFERENCE", "FINISHED")
    assert put_row.object_size > 1000
    assert (run_row.task_status, run_row.object_size) == ("RUNNING", -1)
    assert len(state.list_objects(limit=1)) == 1

    gate.open()
    assert ray.get(running) == 1
    del stored  # no ref left: the value is freed and no longer listed
    wait_for(lambda: put_row.object_id not in {o.object_id for o in state.list_objects()},
             "the dropped object to leave the list")


def test_nodes(ray):
    node, = state.list_nodes()
    assert node.state == "ALIVE" and node.is_head_node
    assert node.node_id == ray.get_runtime_context().get_node_id()
    assert node.resources_total["CPU"] == 2


def test_from_inside_a_task(ray):
    @ray.remote
    class Named:
        def ping(self):
            return 1

    keep = Named.options(name="seen").remote()
    ray.get(keep.ping.remote())

    @ray.remote
    def look():
        from minray.util import state as inner

        actors = [(a.name, a.state) for a in inner.list_actors(filters=[("name", "=", "seen")])]
        mine = inner.list_workers(filters=[("pid", "=", os.getpid())])
        return actors, [w.worker_type for w in mine]

    assert ray.get(look.remote()) == ([("seen", "ALIVE")], ["WORKER"])


def test_an_observer_reads_and_may_do_nothing_else(ray):
    from minray import core
    from minray.node import session
    from minray.protocol import Channel, Observe, Put

    @ray.remote
    class Named:
        def ping(self):
            return 1

    keep = Named.options(name="watched").remote()
    ray.get(keep.ping.remote())
    folder = str(core.current().session_dir)  # through the socket, as another process would
    assert [a.name for a in state.list_actors(address=folder)] == ["watched"]

    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(session.find_socket(core.current().session_dir))
        channel = Channel(sock)
        channel.send(Observe())
        channel.send(Put("x1", b"not an observer's to store"))
        with pytest.raises(EOFError):
            channel.recv(timeout=30)
    assert ray.get(keep.ping.remote()) == 1  # the node and its actor go on
    assert [a.state for a in state.list_actors(address=folder)] == ["ALIVE"]
