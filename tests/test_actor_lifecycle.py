"""Actors' names, namespaces and lifetimes, as a Ray user writes them: get_actor, handles
going out of scope, detached actors, __ray_terminate__, exit_actor, owners, max_task_retries."""

from __future__ import annotations

import gc
import os

import pytest

import minray
from minray.exceptions import ActorDiedError
from procs import Gate, wait_for, worker_processes


@minray.remote
class Counter:
    def __init__(self, start=0):
        self.n = start

    def add(self, k=1):
        self.n += k
        return self.n

    def pid(self):
        return os.getpid()


def _gone(pid: int, what: str) -> None:
    wait_for(lambda: not worker_processes([pid]), what)


# ------------------------------------------------------------------------------ names
def test_a_named_actor_is_found_from_the_driver_a_task_and_an_actor(ray):
    counter = Counter.options(name="hits").remote()
    ray.get(counter.add.remote())

    @ray.remote
    def bump():
        return ray.get(ray.get_actor("hits").add.remote())

    @ray.remote
    class Bumper:
        def bump(self):
            return ray.get(ray.get_actor("hits").add.remote(10))

    assert ray.get(bump.remote(), timeout=60) == 2
    assert ray.get(Bumper.remote().bump.remote(), timeout=60) == 12
    assert ray.get(ray.get_actor("hits").add.remote(), timeout=60) == 13
    assert ray.get_actor("hits") == counter


def test_a_name_is_unique_and_get_if_exists_returns_the_holder(ray):
    first = Counter.options(name="one").remote(5)
    with pytest.raises(ValueError, match="'one' already exists"):
        Counter.options(name="one").remote()
    again = Counter.options(name="one", get_if_exists=True).remote()
    assert again == first
    assert ray.get(again.add.remote(), timeout=60) == 6  # the same actor, not a new one
    with pytest.raises(ValueError, match="needs a name"):
        Counter.options(get_if_exists=True).remote()


def test_get_actor_of_a_missing_or_dead_actor_is_a_value_error(ray):
    with pytest.raises(ValueError, match="no live actor named 'ghost'"):
        ray.get_actor("ghost")
    actor = Counter.options(name="short").remote()
    ray.get(actor.add.remote(), timeout=60)
    ray.kill(actor)
    with pytest.raises(ValueError, match="'short'"):
        ray.get_actor("short")
    reborn = Counter.options(name="short").remote(100)  # a dead actor's name is free
    assert ray.get(reborn.add.remote(), timeout=60) == 101


def test_names_live_in_namespaces():
    minray.init(num_cpus=2, namespace="team-a")
    assert minray.get_runtime_context().namespace == "team-a"
    mine = Counter.options(name="c").remote(1)
    theirs = Counter.options(name="c", namespace="team-b").remote(100)  # no clash
    assert minray.get(minray.get_actor("c").add.remote(), timeout=60) == 2
    assert minray.get(minray.get_actor("c", namespace="team-b").add.remote(), timeout=60) == 101
    with pytest.raises(ValueError, match="namespace 'team-c'"):
        minray.get_actor("c", namespace="team-c")

    @minray.remote
    def where():
        return minray.get_runtime_context().namespace, minray.get(
            minray.get_actor("c").add.remote())

    assert minray.get(where.remote(), timeout=60) == ("team-a", 3)
    del mine, theirs


def test_without_a_namespace_each_job_has_its_own():
    minray.init(num_cpus=1)
    first = minray.get_runtime_context().namespace
    minray.shutdown()
    minray.init(num_cpus=1)
    assert minray.get_runtime_context().namespace != first


@pytest.mark.parametrize("options, error", [
    ({"name": ""}, "name must be a non-empty string"),
    ({"namespace": 3}, "namespace must be a non-empty string"),
    ({"lifetime": "forever"}, "lifetime must be 'detached', 'non_detached' or None"),
])
def test_bad_naming_options_fail_where_given(ray, options, error):
    with pytest.raises(ValueError, match=error):
        Counter.options(**options)


# ------------------------------------------------------------------------------ lifetime
def test_an_actor_whose_last_handle_is_dropped_stops_cleanly(ray, tmp_path):
    marker = tmp_path / "shut-down"

    @ray.remote
    class Tidy:
        def __init__(self):
            import atexit

            atexit.register(lambda: (marker.parent / "atexit").touch())

        def pid(self):
            return os.getpid()

        def __ray_shutdown__(self):
            marker.touch()

    actor = Tidy.remote()
    pid = ray.get(actor.pid.remote(), timeout=60)
    del actor
    gc.collect()
    _gone(pid, "the actor's process to end once its handle was dropped")
    assert marker.exists() and (tmp_path / "atexit").exists()


def test_actors_created_in_a_loop_do_not_pile_up(ray):
    pids = [ray.get(Counter.remote().pid.remote(), timeout=60) for _ in range(8)]
    wait_for(lambda: not worker_processes(pids), "every dropped actor's process to end")


def test_a_call_made_on_a_temporary_handle_still_runs(ray):
    assert ray.get(Counter.remote(41).add.remote(), timeout=60) == 42


def test_a_handle_passed_to_a_task_keeps_the_actor_alive_until_the_task_ends(ray, tmp_path):
    gate = Gate(tmp_path)

    @ray.remote
    def use_later(counter):
        gate.wait()
        return ray.get(counter.add.remote())

    counter = Counter.remote(1)
    pid = ray.get(counter.pid.remote(), timeout=60)
    ref = use_later.remote(counter)
    del counter
    gc.collect()
    gate.open()
    assert ray.get(ref, timeout=60) == 2  # the task's handle kept it
    _gone(pid, "the actor to end once the task holding its last handle ended")


def test_a_handle_kept_by_an_actor_keeps_its_actor_alive(ray):
    @ray.remote
    class Holder:
        def __init__(self, counter):
            self.counter = counter

        def bump(self):
            return ray.get(self.counter.add.remote())

        def drop(self):
            self.counter = None

    counter = Counter.remote()
    pid = ray.get(counter.pid.remote(), timeout=60)
    holder = Holder.remote(counter)
    del counter
    gc.collect()
    assert ray.get(holder.bump.remote(), timeout=60) == 1
    assert worker_processes([pid]) == [pid]
    ray.get(holder.drop.remote(), timeout=60)
    _gone(pid, "the actor to end once the actor holding its last handle dropped it")


def test_a_detached_actor_outlives_its_handles_until_shutdown(ray):
    actor = Counter.options(name="keeper", lifetime="detached").remote()
    pid = ray.get(actor.pid.remote(), timeout=60)
    del actor
    gc.collect()
    assert ray.get(ray.get_actor("keeper").add.remote(), timeout=60) == 1
    assert worker_processes([pid]) == [pid]
    ray.shutdown()
    _gone(pid, "the detached actor to end with the node")


def test_a_handle_stored_in_an_object_keeps_the_actor(ray):
    counter = Counter.remote()
    box = ray.put({"counter": counter})
    del counter
    gc.collect()
    assert ray.get(ray.get(box)["counter"].add.remote(), timeout=60) == 1


# ------------------------------------------------------------------------------ owners
@minray.remote
class Parent:
    def __init__(self, detached=False):
        options = {"lifetime": "detached", "name": "orphan"} if detached else {}
        self.child = Counter.options(**options).remote()

    def child_pid(self):
        return minray.get(self.child.pid.remote())

    def pid(self):
        return os.getpid()


def test_an_actor_dies_with_the_actor_that_created_it(ray):
    parent = Parent.remote()
    child_pid = ray.get(parent.child_pid.remote(), timeout=60)
    ray.kill(parent)
    _gone(child_pid, "the child actor to end when its creator was killed")


def test_a_detached_child_outlives_its_creator(ray):
    parent = Parent.remote(detached=True)
    child_pid = ray.get(parent.child_pid.remote(), timeout=60)
    ray.kill(parent)
    assert ray.get(ray.get_actor("orphan").add.remote(), timeout=60) == 1
    assert worker_processes([child_pid]) == [child_pid]


def test_an_actor_made_by_a_task_ends_with_the_tasks_last_handle(ray):
    @ray.remote
    def make_and_forget():
        return ray.get(Counter.remote().pid.remote())

    pid = ray.get(make_and_forget.remote(), timeout=60)
    _gone(pid, "the actor a finished task created and dropped to end")


# ------------------------------------------------------------------------------ ending on purpose
@minray.remote(max_restarts=2)
class Quitter:
    def __init__(self, folder):
        import atexit

        self.folder = folder
        atexit.register(lambda: open(os.path.join(folder, f"atexit-{os.getpid()}"), "w").close())

    def pid(self):
        return os.getpid()

    def slow_add(self, x):
        return x + 1

    def quit(self):
        minray.actor.exit_actor()


def test_ray_terminate_runs_the_calls_queued_before_it(ray, tmp_path):
    actor = Quitter.remote(str(tmp_path))
    pid = ray.get(actor.pid.remote(), timeout=60)
    before = [actor.slow_add.remote(i) for i in range(5)]
    end = actor.__ray_terminate__.remote()
    assert ray.get(before, timeout=60) == [1, 2, 3, 4, 5]
    with pytest.raises(ActorDiedError, match="__ray_terminate__"):
        ray.get(end, timeout=60)
    with pytest.raises(ActorDiedError):  # not restarted, despite max_restarts
        ray.get(actor.pid.remote(), timeout=60)
    _gone(pid, "the terminated actor's process to end")
    assert (tmp_path / f"atexit-{pid}").exists()


def test_exit_actor_ends_the_actor_for_good(ray, tmp_path):
    actor = Quitter.remote(str(tmp_path))
    pid = ray.get(actor.pid.remote(), timeout=60)
    with pytest.raises(ActorDiedError, match="exit_actor"):
        ray.get(actor.quit.remote(), timeout=60)
    with pytest.raises(ActorDiedError, match="exit_actor"):
        ray.get(actor.pid.remote(), timeout=60)
    _gone(pid, "the actor's process to end after exit_actor()")
    assert (tmp_path / f"atexit-{pid}").exists()


def test_exit_actor_outside_an_actor_is_a_type_error(ray):
    with pytest.raises(TypeError, match="inside an actor"):
        ray.actor.exit_actor()

    @ray.remote
    def task():
        ray.actor.exit_actor()

    with pytest.raises(TypeError, match="inside an actor"):
        ray.get(task.remote(), timeout=60)


# ------------------------------------------------------------------------------ retries
@minray.remote
class Fragile:
    """Its process dies the first time `crash_once` runs (a marker file remembers)."""

    def __init__(self, marker):
        self.marker = marker

    def crash_once(self):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return "survived"


def test_max_task_retries_reruns_a_call_on_the_restarted_actor(ray, tmp_path):
    actor = Fragile.options(max_restarts=1, max_task_retries=1).remote(str(tmp_path / "m"))
    assert ray.get(actor.crash_once.remote(), timeout=60) == "survived"


def test_without_max_task_retries_the_call_fails_and_the_actor_restarts(ray, tmp_path):
    actor = Fragile.options(max_restarts=1).remote(str(tmp_path / "m"))
    with pytest.raises(ActorDiedError, match="died"):
        ray.get(actor.crash_once.remote(), timeout=60)
    assert ray.get(actor.crash_once.remote(), timeout=60) == "survived"
