"""Remote functions, objects, get/wait/put, options and the scheduler, as a Ray user sees them."""

import os

import pytest

import minray
from minray.exceptions import GetTimeoutError, RayTaskError
from procs import Gate, gone_within, wait_for, worker_processes


def test_thousand_copies_of_a_function(ray):
    @ray.remote
    def f(x):
        return x * x

    assert ray.get([f.remote(i) for i in range(1000)]) == [i * i for i in range(1000)]


def test_objectref_arguments_are_resolved_before_the_task_runs(ray, tmp_path):
    gate = Gate(tmp_path)
    held = gate.held(ray)

    @ray.remote
    def add(a, b):
        return a + b

    total = add.remote(held.remote(1), b=ray.put(2))
    last = add.remote(total, 10)  # both submitted while `held` cannot have finished
    gate.open()
    assert ray.get(last) == 13


def test_nested_refs_stay_refs(ray):
    @ray.remote
    def kind(items):
        return [type(x).__name__ for x in items], ray.get(items[0])

    ref = ray.put("value")
    assert ray.get(kind.remote([ref])) == (["ObjectRef"], "value")


def test_num_returns(ray):
    @ray.remote(num_returns=2)
    def pair():
        return 1, 2

    a, b = pair.remote()
    assert ray.get([a, b]) == [1, 2]


def test_put_get_and_put_of_a_ref_is_refused(ray):
    ref = ray.put({"a": [1, 2]})
    assert ray.get(ref) == {"a": [1, 2]}
    assert ray.get([ref, ref]) == [{"a": [1, 2]}] * 2
    with pytest.raises(TypeError, match="ObjectRef"):
        ray.put(ref)


def test_get_rejects_what_is_not_a_ref(ray):
    with pytest.raises(ValueError, match="ObjectRef"):
        ray.get(42)
    with pytest.raises(ValueError, match="item 1 of the list is int 5"):
        ray.get([ray.put(1), 5])


def test_get_timeout(ray, tmp_path):
    gate = Gate(tmp_path)
    ref = gate.held(ray).remote("done")
    with pytest.raises(GetTimeoutError) as info:
        ray.get(ref, timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    gate.open()
    assert ray.get(ref, timeout=60) == "done"  # only the get gave up, not the task


def test_wait_splits_ready_and_not_ready_in_order(ray, tmp_path):
    gate = Gate(tmp_path)

    @ray.remote
    def quick():
        return "quick"

    refs = [gate.held(ray).remote("late"), quick.remote(), ray.put("now")]
    ready, not_ready = ray.wait(refs, num_returns=2, timeout=60)
    assert set(ready) == {refs[1], refs[2]} and not_ready == [refs[0]]
    ready, not_ready = ray.wait(refs[:1], timeout=0.1)
    assert ready == [] and not_ready == refs[:1]
    gate.open()


def test_wait_rejects_bad_arguments(ray):
    ref = ray.put(1)
    with pytest.raises(ValueError, match="num_returns"):
        ray.wait([ref], num_returns=2)
    with pytest.raises(ValueError, match="twice"):
        ray.wait([ref, ref])


def test_exceptions_carry_the_remote_traceback_and_the_users_type(ray):
    class Custom(Exception):
        pass

    @ray.remote
    def fails(kind):
        if kind == "value":
            raise ValueError("bad value 17")
        raise Custom("custom")

    with pytest.raises(ValueError, match="bad value 17") as info:
        ray.get(fails.remote("value"))
    assert isinstance(info.value, RayTaskError)
    assert "Traceback" in str(info.value) and "in fails" in str(info.value)
    with pytest.raises(Custom):
        ray.get(fails.remote("custom"))


def test_failed_dependency_fails_the_dependent_task(ray):
    @ray.remote
    def fails():
        raise KeyError("upstream")

    @ray.remote
    def uses(x):
        return x

    with pytest.raises(KeyError, match="upstream"):
        ray.get(uses.remote(fails.remote()))


def test_calling_a_remote_function_directly_is_an_error(ray):
    @ray.remote
    def f():
        return 1

    with pytest.raises(TypeError, match=r"f\.remote"):
        f()


def test_options_are_checked_where_they_are_given(ray):
    @ray.remote
    def f():
        return 1

    with pytest.raises(ValueError, match="num_cpu"):
        f.options(num_cpu=1)
    with pytest.raises(ValueError, match="max_retries"):
        f.options(max_retries="3")
    with pytest.raises(ValueError, match="more than this node has"):
        f.options(num_cpus=64).remote()
    with pytest.raises(ValueError, match="num_cpus"):
        ray.remote(num_cpus=-1)(lambda: 1)
    assert ray.get(f.options(name="renamed").options(num_cpus=1).remote()) == 1


def test_init_twice_and_implicit_init():
    minray.shutdown()
    assert not minray.is_initialized()
    assert minray.get(minray.put(5)) == 5  # the API starts a node when none runs, as Ray does
    assert minray.is_initialized()
    with pytest.raises(RuntimeError, match="already"):
        minray.init()
    minray.init(ignore_reinit_error=True)
    minray.shutdown()
    minray.init(num_cpus=1)
    assert minray.get(minray.put(6)) == 6
    minray.shutdown()


def test_init_rejects_a_cluster_address():
    with pytest.raises(ValueError, match="use Ray itself"):
        minray.init(address="ray://10.0.0.1:10001")
    assert not minray.is_initialized()


def test_runtime_context_in_driver_and_task(ray):
    ctx = ray.get_runtime_context()
    assert ctx.get_task_id() is None and ctx.get_actor_id() is None

    @ray.remote
    def where():
        c = ray.get_runtime_context()
        return c.get_job_id(), c.get_task_id()

    (job_a, task_a), (job_b, task_b) = ray.get([where.remote(), where.remote()])
    assert job_a == job_b == ctx.get_job_id()
    assert isinstance(task_a, str) and isinstance(task_b, str) and task_a != task_b


def test_nested_tasks_and_recursion(ray):
    @ray.remote
    def fib(n):
        if n < 2:
            return n
        return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))

    # 2 CPUs and a tree of blocked parents: a task waiting in get lends out its CPU.
    assert ray.get(fib.remote(7)) == 13


def test_num_cpus_tasks_run_at_once_and_no_more(ray, tmp_path):
    """Each task notes its start and end in one shared log, in the order they happen, and
    cannot end until another task runs beside it (or all have started): so the tasks finish
    only if the node runs two at once, and the log shows how many ever ran together."""
    log = tmp_path / "events"
    log.touch()
    tasks = 6

    def note(event):
        with open(log, "a") as f:  # one short append: whole lines, in the order written
            f.write(event + "\n")

    def running():
        events = log.read_text().split()
        return events.count("start") - events.count("end"), events.count("start")

    @ray.remote
    def task():
        note("start")
        wait_for(lambda: running()[0] >= 2 or running()[1] == tasks,
                 "a second task to run at the same time")
        note("end")

    ray.get([task.remote() for _ in range(tasks)], timeout=120)
    together = most = 0
    for event in log.read_text().split():
        together += 1 if event == "start" else -1
        most = max(most, together)
    assert most == 2


def test_workers_are_reused_within_an_env_and_separate_across_envs(ray):
    @ray.remote
    def pid():
        return os.getpid()

    first = ray.get(pid.remote())
    assert ray.get([pid.remote() for _ in range(20)]).count(first) >= 1
    other = pid.options(runtime_env={"env_vars": {"X": "1"}})
    assert ray.get(other.remote()) not in set(ray.get([pid.remote() for _ in range(4)]))


def test_idle_workers_of_other_envs_are_evicted_when_the_node_is_full():
    minray.init(num_cpus=1)
    try:
        @minray.remote
        def pid():
            return os.getpid()

        pids = [minray.get(pid.options(runtime_env={"env_vars": {"E": str(i)}}).remote())
                for i in range(3)]
        assert len(set(pids)) == 3
        assert gone_within(pids[:-1], 10) == [] and worker_processes(pids) == [pids[-1]]
    finally:
        minray.shutdown()
