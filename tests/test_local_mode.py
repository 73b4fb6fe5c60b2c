"""`init(local_mode=True)`: tasks and actors run in the driver's own process, through the same
public API; errors, runtime_env and refused fields as a user meets them."""

from __future__ import annotations

import os
import sys

import pytest

import minray


@pytest.fixture
def local():
    with pytest.warns(UserWarning, match="for debugging only"):
        minray.init(local_mode=True, num_cpus=2)
    yield minray
    minray.shutdown()


def test_init_warns_that_local_mode_is_for_debugging_only():
    with pytest.warns(UserWarning, match="local_mode=True is for debugging only") as caught:
        minray.init(local_mode=True)
    assert caught[0].filename == __file__  # it points at the user's init() call


def test_tasks_run_in_the_drivers_process_one_at_a_time(local):

    @local.remote
    def where(i):
        return os.getpid(), i

    refs = [where.remote(i) for i in range(3)]
    order = local.get(refs)
    assert order == [(os.getpid(), 0), (os.getpid(), 1), (os.getpid(), 2)]
    ready, not_ready = local.wait(refs, num_returns=3)
    assert len(ready) == 3 and not_ready == []


def test_get_put_nested_tasks_and_ref_arguments(local):
    @local.remote
    def add(a, b):
        return a + b

    @local.remote
    def outer(x):
        return local.get(add.remote(x, 1)) * 10

    stored = local.put(4)
    assert local.get(add.remote(stored, add.remote(1, 2))) == 7
    assert local.get(outer.remote(2)) == 30


def test_actors_keep_their_state_and_async_methods_run(local):
    @local.remote
    class Counter:
        def __init__(self, start):
            self.n = start
            self.pid = os.getpid()

        def inc(self):
            self.n += 1
            return self.n, self.pid

        async def add(self, k):
            self.n += k
            return self.n

        def count_to(self, k):
            yield from range(k)

    c = Counter.remote(10)
    assert local.get([c.inc.remote(), c.inc.remote()]) == [(11, os.getpid()), (12, os.getpid())]
    assert local.get(c.add.remote(5)) == 17
    assert [local.get(r) for r in c.count_to.remote(3)] == [0, 1, 2]

    named = Counter.options(name="counter").remote(0)
    assert local.get(local.get_actor("counter").inc.remote())[0] == 1
    local.kill(named)
    with pytest.raises(minray.exceptions.ActorDiedError):
        local.get(named.inc.remote())


def test_errors_surface_at_get_as_the_tasks_own_type(local):
    @local.remote
    def fails():
        raise KeyError("missing")

    @local.remote
    def uses(value):
        return value

    ref = fails.remote()  # no raise at .remote(): only get raises, as on the node
    with pytest.raises(KeyError) as caught:
        local.get(ref)
    assert isinstance(caught.value, minray.exceptions.RayTaskError)
    assert "missing" in str(caught.value)
    with pytest.raises(KeyError):  # an argument that failed fails the task using it
        local.get(uses.remote(ref))

    @local.remote
    class Broken:
        def __init__(self):
            raise ValueError("no")

        def m(self):
            return 1

    with pytest.raises(minray.exceptions.ActorDiedError, match="constructor failed"):
        local.get(Broken.remote().m.remote())


def test_env_vars_apply_for_the_call_and_are_restored(local, monkeypatch):
    monkeypatch.setenv("LOCAL_MODE_KEPT", "driver")
    monkeypatch.delenv("LOCAL_MODE_NEW", raising=False)

    @local.remote(runtime_env={"env_vars": {"LOCAL_MODE_KEPT": "task", "LOCAL_MODE_NEW": "1"}})
    def read():
        return os.environ["LOCAL_MODE_KEPT"], os.environ["LOCAL_MODE_NEW"]

    assert local.get(read.remote()) == ("task", "1")
    assert os.environ["LOCAL_MODE_KEPT"] == "driver"
    assert "LOCAL_MODE_NEW" not in os.environ


def test_py_modules_are_importable_during_the_call_only(local, tmp_path):
    module = tmp_path / "local_mode_helper_mod"
    module.mkdir()
    (module / "__init__.py").write_text("VALUE = 'from py_modules'\n")

    @local.remote(runtime_env={"py_modules": [str(module)]})
    def load():
        import local_mode_helper_mod

        return local_mode_helper_mod.VALUE

    path_before = list(sys.path)
    assert local.get(load.remote()) == "from py_modules"
    assert sys.path == path_before
    sys.modules.pop("local_mode_helper_mod", None)


def test_fields_needing_another_interpreter_are_refused_at_the_call(local):
    @local.remote
    def f():
        return 1

    with pytest.raises(ValueError, match=r"\['pip'\] need a worker on another interpreter"):
        f.options(runtime_env={"pip": ["requests"]}).remote()


def test_init_refuses_a_job_env_needing_another_interpreter():
    with pytest.raises(ValueError, match="py_executable"), pytest.warns(UserWarning):
        minray.init(local_mode=True, runtime_env={"py_executable": sys.executable})
    assert not minray.is_initialized()


def test_the_state_api_says_it_has_nothing_to_show():
    from minray.util import state

    with pytest.warns(UserWarning):
        minray.init(local_mode=True)
    try:
        with pytest.raises(state.RayStateApiException, match="not available in local mode"):
            state.list_actors()
        with pytest.raises(state.RayStateApiException, match="not available in local mode"):
            minray.timeline()
    finally:
        minray.shutdown()
