"""Placement groups and scheduling strategies on one node, as Ray users write them. Every wait
has a timeout, so a failure fails instead of hanging; "not yet" is checked with short waits that
a correct node can never satisfy."""

import os
from pathlib import Path

import pytest

from minray.exceptions import (
    ActorDiedError,
    ActorPlacementGroupRemoved,
    ActorUnschedulableError,
    TaskPlacementGroupRemoved,
    TaskUnschedulableError,
)
from minray.util import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from minray.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)
from procs import Gate, wait_for

T = 60
NOT_YET = 0.5  # how long a "still not ready" check looks


def in_group(pg, index=-1, capture=None):
    return PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index,
                                            placement_group_capture_child_tasks=capture)


def not_ready(ray, ref) -> bool:
    ready, _ = ray.wait([ref], timeout=NOT_YET)
    return not ready


# ---------------------------------------------------------------------------------- creating
def test_a_group_is_created_and_described(ray):
    pg = placement_group([{"CPU": 1}, {"CPU": 0.5}], strategy="SPREAD", name="pair")
    assert ray.get(pg.ready(), timeout=T) == pg
    assert pg.wait(timeout_seconds=T)
    assert pg.bundle_specs == [{"CPU": 1.0}, {"CPU": 0.5}] and pg.bundle_count == 2
    row = placement_group_table(pg)
    node = ray.get_runtime_context().get_node_id()
    assert row == {"placement_group_id": pg.id.hex(), "name": "pair",
                   "bundles": {0: {"CPU": 1.0}, 1: {"CPU": 0.5}},
                   "bundles_to_node_id": {0: node, 1: node}, "strategy": "SPREAD",
                   "state": "CREATED", "stats": {"scheduling_state": "FINISHED"}}
    assert list(placement_group_table()) == [pg.id.hex()]


@pytest.mark.parametrize("strategy", ["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"])
def test_every_strategy_places_its_bundles_on_this_node(ray, strategy):
    bundles = [{"CPU": 1}] if strategy == "STRICT_SPREAD" else [{"CPU": 1}, {"CPU": 1}]
    assert placement_group(bundles, strategy=strategy).wait(T)


@pytest.mark.parametrize("bundles, strategy, why", [
    ([{"CPU": 3}], "PACK", "its bundles need 3 CPU and the node has 2"),
    ([{"CPU": 1}, {"CPU": 1}], "STRICT_SPREAD", "STRICT_SPREAD needs a node for each"),
    ([{"CPU": 1, "unicorn": 1}], "PACK", "its bundles need 1 unicorn and the node has 0"),
])
def test_a_group_this_node_can_never_hold_stays_pending(ray, capfd, bundles, strategy, why):
    pg = placement_group(bundles, strategy=strategy)
    assert why in capfd.readouterr().err  # said at once, as Ray's autoscaler does
    assert not pg.wait(NOT_YET)
    assert not_ready(ray, pg.ready())
    row = placement_group_table(pg)
    assert row["state"] == "PENDING" and row["stats"]["scheduling_state"] == "INFEASIBLE"

    @ray.remote
    def f():
        return 1

    with pytest.raises(ValueError, match="can never be placed"):
        f.options(scheduling_strategy=in_group(pg)).remote()
    assert ray.get(f.remote(), timeout=T) == 1  # the node's CPUs are untouched


@pytest.mark.parametrize("bundles, message", [
    ([], "non-empty list"),
    ({"CPU": 1}, "must be a list"),
    ([{}], "cannot be an empty dictionary"),
    ([{"CPU": 0}], "only 0 values"),
    ([{"CPU": -1}], "non-negative number"),
    ([{"CPU": "1"}], "non-negative number"),
    ([{"CPU": float("nan")}], "non-negative number"),
    (["CPU"], "resource dictionaries"),
])
def test_bad_bundles_are_refused_at_the_call(ray, bundles, message):
    with pytest.raises(ValueError, match=message):
        placement_group(bundles)


def test_bad_arguments_are_refused_at_the_call(ray):
    with pytest.raises(ValueError, match="Invalid placement group strategy"):
        placement_group([{"CPU": 1}], strategy="TIGHT")
    with pytest.raises(ValueError, match="lifetime"):
        placement_group([{"CPU": 1}], lifetime="forever")

    @ray.remote
    def f():
        return 1

    with pytest.raises(ValueError, match="Invalid scheduling_strategy value PACK"):
        f.options(scheduling_strategy="PACK")
    with pytest.raises(TypeError, match="scheduling_strategy must be"):
        f.options(scheduling_strategy=5)
    pg = placement_group([{"CPU": 1}])
    with pytest.raises(ValueError, match="bundle index 1 is invalid"):
        f.options(scheduling_strategy=in_group(pg, 1)).remote()
    with pytest.raises(ValueError, match="needs 2 CPU"):
        f.options(num_cpus=2, scheduling_strategy=in_group(pg)).remote()


def test_work_placed_in_a_group_that_cannot_be_is_refused_inside_tasks_too(ray):
    pg = placement_group([{"CPU": 5}])

    @ray.remote
    def f():
        return 1

    @ray.remote
    class A:
        def ping(self):
            return "pong"

    @ray.remote
    def place_inside(pg):
        task = f.options(scheduling_strategy=in_group(pg)).remote()
        actor = A.options(scheduling_strategy=in_group(pg)).remote()
        errors = []
        for ref in (task, actor.ping.remote()):
            try:
                ray.get(ref, timeout=T)
            except Exception as e:  # noqa: BLE001 - what the test looks at
                errors.append((type(e).__name__, "can never be placed" in str(e)))
        return errors

    assert ray.get(place_inside.remote(pg), timeout=T) == [("RayError", True),
                                                          ("ActorDiedError", True)]


# ---------------------------------------------------------------------------------- CPUs
def test_a_group_holds_its_cpus_until_removed(ray):
    pg = placement_group([{"CPU": 2}])
    assert pg.wait(T)

    @ray.remote
    def f():
        return "ran"

    outside = f.remote()  # the node's 2 CPUs are the group's: it waits
    assert not_ready(ray, outside)
    assert ray.get(f.options(scheduling_strategy=in_group(pg)).remote(), timeout=T) == "ran"
    remove_placement_group(pg)
    assert ray.get(outside, timeout=T) == "ran"


def running_until_the_gate_opens(ray, tmp_path, num_cpus):
    """A task that holds `num_cpus` until the test opens the gate; returned once it runs."""
    gate = Gate(tmp_path)

    @ray.remote(num_cpus=num_cpus)
    def hold():
        Path(tmp_path, "running").touch()
        gate.wait(T)
        return "done"

    busy = hold.remote()
    wait_for(lambda: Path(tmp_path, "running").exists(), "the task to run")
    return busy, gate


def test_a_group_waits_for_cpus_that_tasks_hold(ray, tmp_path):
    busy, gate = running_until_the_gate_opens(ray, tmp_path, num_cpus=1)
    pg = placement_group([{"CPU": 2}])
    assert not pg.wait(NOT_YET)  # one CPU is the running task's
    gate.open()
    assert ray.get(busy, timeout=T) == "done"
    assert pg.wait(T)


def test_tasks_in_bundles_run_side_by_side_and_a_full_bundle_makes_them_wait(ray, tmp_path):
    gate = Gate(tmp_path)

    @ray.remote
    def mark(name):
        Path(tmp_path, name).touch()
        gate.wait(T)
        return name

    pg = placement_group([{"CPU": 1}, {"CPU": 1}])
    first = mark.options(scheduling_strategy=in_group(pg, 0)).remote("first")
    second = mark.options(scheduling_strategy=in_group(pg, 1)).remote("second")
    wait_for(lambda: Path(tmp_path, "first").exists() and Path(tmp_path, "second").exists(),
             "both bundles' tasks to run at once")
    third = mark.options(scheduling_strategy=in_group(pg, 0)).remote("third")
    assert not_ready(ray, third) and not Path(tmp_path, "third").exists()  # bundle 0 is full
    gate.open()
    assert ray.get([first, second, third], timeout=T) == ["first", "second", "third"]


def test_a_task_waiting_in_get_lends_its_bundle_to_its_child(ray):
    pg = placement_group([{"CPU": 1}])

    @ray.remote
    def child():
        return get_current_placement_group()

    @ray.remote
    def parent():
        return ray.get(child.remote(), timeout=T)  # captured into the one-CPU bundle

    found = ray.get(parent.options(scheduling_strategy=in_group(pg, capture=True)).remote(),
                    timeout=T)
    assert found == pg


# ---------------------------------------------------------------------------------- where am I
def test_current_group_and_capture_of_child_tasks(ray):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}])
    assert get_current_placement_group() is None  # the driver is in no group

    @ray.remote(num_cpus=0)
    def current():
        return get_current_placement_group()

    @ray.remote(num_cpus=0)
    def parent():
        return [ray.get(current.remote(), timeout=T),
                ray.get(current.options(scheduling_strategy="DEFAULT").remote(), timeout=T),
                ray.get(current.options(scheduling_strategy=in_group(None)).remote(),
                        timeout=T),
                get_current_placement_group()]

    captured = parent.options(scheduling_strategy=in_group(pg, capture=True)).remote()
    assert ray.get(captured, timeout=T) == [pg, None, None, pg]

    @ray.remote(num_cpus=0)
    def context():
        ctx = ray.get_runtime_context()
        return ctx.get_placement_group_id(), ctx.should_capture_child_tasks_in_placement_group

    assert ray.get(context.options(scheduling_strategy=in_group(pg, capture=True)).remote(),
                   timeout=T) == (pg.id.hex(), True)
    assert ray.get(context.remote(), timeout=T) == (None, False)
    not_captured = parent.options(scheduling_strategy=in_group(pg)).remote()
    assert ray.get(not_captured, timeout=T) == [None, None, None, pg]
    assert ray.get(current.remote(), timeout=T) is None


def test_actors_in_a_group_start_once_it_is_created(ray, tmp_path):
    busy, gate = running_until_the_gate_opens(ray, tmp_path, num_cpus=2)

    @ray.remote
    class Member:
        def group(self):
            return get_current_placement_group()

    pg = placement_group([{"CPU": 1}])
    member = Member.options(scheduling_strategy=in_group(pg)).remote()
    answer = member.group.remote()
    assert not_ready(ray, answer)  # the group waits for the CPUs the task holds
    gate.open()
    assert ray.get(busy, timeout=T) == "done"
    assert ray.get(answer, timeout=T) == pg


def test_an_actor_needs_a_cpu_in_its_bundle_unless_it_says_otherwise(ray):
    @ray.remote
    class Light:
        def ping(self):
            return "pong"

    pg = placement_group([{"CPU": 0.5}])
    with pytest.raises(ValueError, match="an actor needs 1 CPU"):
        Light.options(scheduling_strategy=in_group(pg)).remote()
    light = Light.options(num_cpus=0.5, scheduling_strategy=in_group(pg)).remote()
    assert ray.get(light.ping.remote(), timeout=T) == "pong"


def test_an_actor_holds_its_cpus_of_its_bundle_for_life(ray):
    @ray.remote(num_cpus=1)
    class Holder:
        def ping(self):
            return "pong"

    @ray.remote
    def f():
        return "ran"

    pg = placement_group([{"CPU": 1}])
    holder = Holder.options(scheduling_strategy=in_group(pg)).remote()
    assert ray.get(holder.ping.remote(), timeout=T) == "pong"
    waits = f.options(scheduling_strategy=in_group(pg)).remote()
    assert not_ready(ray, waits)  # the bundle's one CPU is the actor's
    ray.kill(holder)
    assert ray.get(waits, timeout=T) == "ran"


def test_tasks_asking_for_what_no_bundle_has_are_refused(ray):
    @ray.remote
    def f():
        return 1

    pg = placement_group([{"CPU": 1}, {"CPU": 1, "memory": 1e6}])
    with pytest.raises(ValueError, match="more than any bundle holds"):
        f.options(memory=2e6, scheduling_strategy=in_group(pg)).remote()
    with pytest.raises(ValueError, match="more than bundle 0 holds"):
        f.options(memory=1e6, scheduling_strategy=in_group(pg, 0)).remote()
    assert ray.get([f.options(memory=1e6, scheduling_strategy=in_group(pg, 1)).remote(),
                    f.options(memory=1e6, scheduling_strategy=in_group(pg)).remote()],
                   timeout=T) == [1, 1]


# ---------------------------------------------------------------------------------- names
def test_named_groups_are_found_from_the_driver_and_from_tasks(ray):
    pg = placement_group([{"CPU": 1}], name="shared")
    assert get_placement_group("shared") == pg
    assert get_placement_group("shared").bundle_specs == [{"CPU": 1.0}]

    @ray.remote
    def lookup():
        return get_placement_group("shared").id.hex()

    assert ray.get(lookup.remote(), timeout=T) == pg.id.hex()
    with pytest.raises(ValueError, match="already exists"):
        placement_group([{"CPU": 1}], name="shared")
    with pytest.raises(ValueError, match="Failed to look up placement group with name: nope"):
        get_placement_group("nope")
    remove_placement_group(pg)
    with pytest.raises(ValueError, match="Failed to look up"):
        get_placement_group("shared")
    assert placement_group([{"CPU": 1}], name="shared").wait(T)  # the name is free again


def test_groups_made_and_removed_inside_a_task(ray):
    @ray.remote
    def where():
        return os.getpid()

    @ray.remote
    def organise():
        pg = placement_group([{"CPU": 1}])
        if not pg.wait(T):
            return "never ready"
        ran = ray.get(where.options(scheduling_strategy=in_group(pg)).remote(), timeout=T)
        remove_placement_group(pg)
        return placement_group_table(pg)["state"], isinstance(ran, int)

    assert ray.get(organise.remote(), timeout=T) == ("REMOVED", True)


# ---------------------------------------------------------------------------------- removing
def test_removing_a_group_ends_what_runs_and_waits_in_it(ray, tmp_path):
    gate = Gate(tmp_path)

    @ray.remote
    def hold(name):
        Path(tmp_path, name).touch()
        gate.wait(T)
        return name

    @ray.remote
    class Member:
        def ping(self):
            return "pong"

    pg = placement_group([{"CPU": 1}])
    running = hold.options(scheduling_strategy=in_group(pg)).remote("running")
    queued = hold.options(scheduling_strategy=in_group(pg)).remote("queued")
    member = Member.options(scheduling_strategy=in_group(pg)).remote()
    assert ray.get(member.ping.remote(), timeout=T) == "pong"
    wait_for(lambda: Path(tmp_path, "running").exists(), "the first task to run")
    remove_placement_group(pg)
    remove_placement_group(pg)  # twice is harmless
    with pytest.raises(TaskPlacementGroupRemoved):
        ray.get(running, timeout=T)  # killed, not retried
    with pytest.raises(TaskPlacementGroupRemoved):
        ray.get(queued, timeout=T)
    assert not Path(tmp_path, "queued").exists()
    with pytest.raises(ActorPlacementGroupRemoved) as died:
        ray.get(member.ping.remote(), timeout=T)
    assert isinstance(died.value, ActorDiedError)
    with pytest.raises(TaskPlacementGroupRemoved):
        ray.get(pg.ready(), timeout=T)
    with pytest.raises(TaskPlacementGroupRemoved):
        pg.wait(T)
    assert placement_group_table(pg)["state"] == "REMOVED"

    @ray.remote
    def later():
        return 1

    with pytest.raises(TaskPlacementGroupRemoved):
        ray.get(later.options(scheduling_strategy=in_group(pg)).remote(), timeout=T)
    late_member = Member.options(scheduling_strategy=in_group(pg)).remote()
    with pytest.raises(ActorPlacementGroupRemoved):
        ray.get(late_member.ping.remote(), timeout=T)
    assert ray.get(later.options(num_cpus=2).remote(), timeout=T) == 1  # its CPU is back


def test_removing_a_pending_group_fails_its_ready_refs(ray):
    pg = placement_group([{"CPU": 3}])
    ready = pg.ready()
    remove_placement_group(pg)
    with pytest.raises(TaskPlacementGroupRemoved):
        ray.get(ready, timeout=T)


# ---------------------------------------------------------------------------------- strategies
def test_default_spread_and_node_affinity(ray):
    @ray.remote
    def f():
        return "here"

    @ray.remote
    class A:
        def ping(self):
            return "pong"

    node = ray.get_runtime_context().get_node_id()
    assert ray.get([f.options(scheduling_strategy="DEFAULT").remote(),
                    f.options(scheduling_strategy="SPREAD").remote(),
                    f.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                        node, soft=False)).remote(),
                    f.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                        "ab" * 28, soft=True)).remote()], timeout=T) == ["here"] * 4
    with pytest.raises(TaskUnschedulableError, match="soft=False"):
        f.options(scheduling_strategy=NodeAffinitySchedulingStrategy("ab" * 28,
                                                                     soft=False)).remote()
    with pytest.raises(ValueError, match="Invalid node_id 'xyz'"):
        NodeAffinitySchedulingStrategy("xyz", soft=True)
    with pytest.raises(ActorUnschedulableError, match="soft=False"):
        A.options(scheduling_strategy=NodeAffinitySchedulingStrategy("ab" * 28,
                                                                     soft=False)).remote()
    spread = A.options(scheduling_strategy="SPREAD").remote()
    assert ray.get(spread.ping.remote(), timeout=T) == "pong"
