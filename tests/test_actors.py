"""Actors: state, call order, handles passed around, kill, death, restarts, runtime envs."""

import os

import pytest

from minray.exceptions import ActorDiedError, RayActorError
from procs import Gate, gone_within


def test_actor_keeps_state_and_runs_calls_in_order(ray):
    @ray.remote
    class Log:
        def __init__(self, first):
            self.items = [first]

        def add(self, x):
            self.items.append(x)
            return len(self.items)

        def items_(self):
            return self.items

    log = Log.remote(ray.put("start"))
    refs = [log.add.remote(i) for i in range(200)]
    assert ray.get(refs) == list(range(2, 202))
    assert ray.get(log.items_.remote()) == ["start", *range(200)]


def test_call_order_holds_when_an_earlier_call_waits_for_an_argument(ray, tmp_path):
    gate = Gate(tmp_path)
    held = gate.held(ray)

    @ray.remote
    class Seq:
        def __init__(self):
            self.seen = []

        def see(self, x):
            self.seen.append(x)
            return list(self.seen)

    s = Seq.remote()
    first = s.see.remote(held.remote("a"))
    second = s.see.remote("b")  # submitted while the first call's argument cannot be ready
    gate.open()
    assert ray.get(second) == ["a", "b"] and ray.get(first) == ["a"]


def test_handles_can_be_passed_to_tasks_and_actors_created_in_tasks(ray):
    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def inc(self):
            self.n += 1
            return self.n

    @ray.remote
    def bump(counter, times):
        return ray.get([counter.inc.remote() for _ in range(times)])[-1]

    @ray.remote
    def make_and_use():
        c = Counter.remote()
        return ray.get(bump.remote(c, 3))

    c = Counter.remote()
    assert ray.get(bump.remote(c, 5)) == 5
    assert ray.get(c.inc.remote()) == 6
    assert ray.get(make_and_use.remote()) == 3


def test_actor_context(ray):
    @ray.remote
    class Who:
        def ids(self):
            ctx = ray.get_runtime_context()
            return ctx.get_actor_id(), ctx.get_task_id()

    actor_id, task_id = ray.get(Who.remote().ids.remote())
    assert actor_id and task_id and actor_id != task_id


def test_unknown_method_and_direct_calls(ray):
    @ray.remote
    class A:
        def m(self):
            return 1

    a = A.remote()
    with pytest.raises(AttributeError, match="no method 'nope'"):
        a.nope.remote()
    with pytest.raises(TypeError, match="remote"):
        A()
    with pytest.raises(TypeError, match="remote"):
        a.m()


def test_kill_fails_pending_and_later_calls(ray):
    @ray.remote
    class A:
        def pid(self):
            return os.getpid()

    a = A.remote()
    pid = ray.get(a.pid.remote())
    ray.kill(a)
    with pytest.raises(ActorDiedError, match="killed"):
        ray.get(a.pid.remote())
    assert gone_within([pid], 5) == []
    with pytest.raises(ValueError, match="actor handle"):
        ray.kill("not an actor")


def test_constructor_error_surfaces_on_method_calls(ray):
    @ray.remote
    class Broken:
        def __init__(self):
            raise RuntimeError("cannot connect to db")

        def m(self):
            return 1

    b = Broken.remote()
    with pytest.raises(RayActorError, match="cannot connect to db"):
        ray.get(b.m.remote())


def test_actor_death_without_and_with_restarts(ray):
    @ray.remote
    class Fragile:
        def __init__(self):
            self.n = 0

        def inc(self):
            self.n += 1
            return self.n

        def crash(self):
            os._exit(1)

        def restarted(self):
            return ray.get_runtime_context().was_current_actor_reconstructed

    once = Fragile.remote()
    with pytest.raises(ActorDiedError, match="died"):
        ray.get(once.crash.remote())
    with pytest.raises(ActorDiedError):
        ray.get(once.inc.remote())

    phoenix = Fragile.options(max_restarts=1).remote()
    assert ray.get(phoenix.inc.remote()) == 1
    assert ray.get(phoenix.restarted.remote()) is False
    with pytest.raises(ActorDiedError):
        ray.get(phoenix.crash.remote())
    assert ray.get(phoenix.inc.remote()) == 1  # a new instance after the restart
    assert ray.get(phoenix.restarted.remote()) is True
    with pytest.raises(ActorDiedError):
        ray.get(phoenix.crash.remote())
    with pytest.raises(ActorDiedError):
        ray.get(phoenix.inc.remote())  # no restarts left


def test_actor_with_its_own_runtime_env(ray):
    @ray.remote(runtime_env={"env_vars": {"ROLE": "actor"}})
    class Env:
        def role(self):
            return os.environ.get("ROLE"), ray.get_runtime_context().runtime_env["env_vars"]

    assert ray.get(Env.remote().role.remote()) == ("actor", {"ROLE": "actor"})
    other = Env.options(runtime_env={"env_vars": {"ROLE": "other"}}).remote()
    assert ray.get(other.role.remote())[0] == "other"
