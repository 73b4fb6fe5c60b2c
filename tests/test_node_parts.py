"""Unit tests of the node's parts that start no process: the object store and the scheduler."""

from __future__ import annotations

import pickle

import pytest

from minray import exceptions as exc
from minray.node.scheduler import Scheduler
from minray.node.state import EnvState, Worker, WorkerState
from minray.node.store import ObjectStore
from minray.objects import ObjectRef
from minray.task import TASK, TaskSpec
from runtime_env import LaunchContext, RuntimeEnv


@pytest.fixture
def store():
    s = ObjectStore()
    yield s
    s.close()


def task(tid: str, cpus: float = 1, deps: list[str] | None = None) -> TaskSpec:
    return TaskSpec(task_id=tid, name=f"f{tid}", kind=TASK, args=b"", deps=deps or [],
                    return_ids=[tid], func_id="fn", num_cpus=cpus)


# ------------------------------------------------------------------------ the object store
def test_waiters_fire_once_when_enough_objects_arrive(store):
    fired = []
    store.when_ready(["a", "b", "c"], 2, lambda: fired.append(1))
    store.store("a", (True, b"1"))
    assert fired == []
    store.store("b", (True, b"2"))
    store.store("c", (True, b"3"))
    assert fired == [1]


def test_a_cancelled_wait_is_never_called_and_leaves_no_waiter(store):
    fired = []
    cancel = store.when_all_ready(["a"], lambda: fired.append(1))
    cancel()
    ref = ObjectRef("a")
    del ref  # no ref, no waiter: nobody can ask for "a" any more
    store.collect()
    store.store("a", (True, b"late"))
    assert fired == [] and "a" not in store


def test_a_value_is_freed_when_its_last_ref_goes(store):
    ref = ObjectRef("x")
    store.store("x", (True, b"v"))
    store.collect()
    assert "x" in store
    del ref
    store.collect()
    assert "x" not in store


def test_a_pinned_value_outlives_its_refs_until_the_task_finishes(store):
    ref = ObjectRef("arg")
    store.store("arg", (True, b"v"))
    t = task("t", deps=["arg"])
    store.pin(t.deps)
    del ref
    store.collect()
    assert "arg" in store
    store.complete(t, [(True, b"result")])
    assert "arg" not in store and store["t"] == (True, b"result")


def test_a_ref_that_left_the_driver_in_a_value_keeps_its_object(store):
    ref = ObjectRef("kept")
    store.store("kept", (True, b"v"))
    pickle.dumps([ref])  # a worker may hold this ref now
    del ref
    store.collect()
    assert "kept" in store


def test_failed_dep_is_the_first_failed_argument(store):
    store.store("ok", (True, b"v"))
    store.store("bad", (False, b"e"))
    assert store.failed_dep(task("t", deps=["ok", "bad"])) == (False, b"e")
    assert store.failed_dep(task("u", deps=["ok"])) is None


def test_fail_stores_the_error_for_every_return(store):
    t = TaskSpec(task_id="t", name="f", kind=TASK, args=b"", deps=[], return_ids=["t.0", "t.1"])
    store.fail(t, ValueError("boom"))
    for oid in t.return_ids:
        ok, data = store[oid]
        assert not ok and str(pickle.loads(data)) == "boom"


# ------------------------------------------------------------------------ the scheduler
class Pool:
    """The part of WorkerPool the scheduler uses, recording instead of starting processes."""

    def __init__(self):
        self.workers: list[Worker] = []
        self.started: list[EnvState] = []
        self.sent: list[tuple[str, str]] = []  # (worker id, task id)

    def __iter__(self):
        return iter(self.workers)

    def idle_and_starting(self, env):
        mine = [w for w in self.workers if w.env is env and w.actor is None]
        return ([w for w in mine if w.state is WorkerState.IDLE],
                sum(w.state is WorkerState.STARTING for w in mine))

    def start(self, env, actor=None):
        worker = Worker(f"w{len(self.workers)}", env, proc=None)
        self.workers.append(worker)
        self.started.append(env)
        return worker

    def run(self, worker, t):
        self.sent.append((worker.id, t.task_id))

    def retire(self, worker):
        worker.state = WorkerState.LEAVING


def ready_env(name: str) -> EnvState:
    return EnvState(name, RuntimeEnv(), launch=LaunchContext())


def connect_all(pool: Pool) -> None:
    for w in pool.workers:
        if w.state is WorkerState.STARTING:
            w.state = WorkerState.IDLE


@pytest.fixture
def make(store):
    def make(num_cpus: int = 2):
        pool, failed = Pool(), []
        sched = Scheduler(pool, store, num_cpus,
                          fail_env=lambda env, e: failed.append((env, e)))
        return pool, sched, failed

    return make


def test_tasks_of_an_env_being_prepared_wait_without_starting_workers(make):
    pool, sched, _ = make()
    env = EnvState("h", RuntimeEnv())  # no launch context yet
    sched.enqueue(task("a"), env)
    sched.schedule()
    assert pool.started == [] and len(sched.queues[env]) == 1


def test_workers_start_for_queued_tasks_up_to_the_cpus(make):
    pool, sched, _ = make(num_cpus=2)
    env = ready_env("h")
    for tid in "abc":
        sched.enqueue(task(tid), env)
    sched.schedule()
    assert len(pool.started) == 2
    connect_all(pool)
    sched.schedule()
    assert [t for _, t in pool.sent] == ["a", "b"] and sched.cpus.used == 2
    worker = next(w for w in pool.workers if w.task.task_id == "a")
    assert sched.finished(worker).task_id == "a"
    assert sched.cpus.used == 1 and worker.state is WorkerState.IDLE
    sched.schedule()
    assert [t for _, t in pool.sent] == ["a", "b", "c"] and env not in sched.queues


def test_a_blocked_task_lends_its_cpu_and_takes_it_back(make):
    pool, sched, _ = make(num_cpus=1)
    env = ready_env("h")
    sched.enqueue(task("parent"), env)
    sched.schedule()
    connect_all(pool)
    sched.schedule()
    parent = pool.workers[0]
    sched.enqueue(task("child"), env)
    sched.schedule()
    assert len(pool.started) == 1  # the only CPU is taken
    parent.requests[1] = object()  # the parent waits in get
    sched.blocked(parent)
    sched.schedule()
    assert sched.cpus.used == 0 and len(pool.started) == 2
    del parent.requests[1]
    sched.unblocked(parent)
    assert sched.cpus.used == 1 and parent.cpus == 1


def test_zero_cpu_tasks_run_on_a_full_node(make):
    pool, sched, _ = make(num_cpus=1)
    env = ready_env("h")
    sched.enqueue(task("a"), env)
    sched.enqueue(task("b", cpus=0), env)
    pool.start(env)
    pool.start(env)
    connect_all(pool)
    sched.schedule()
    assert sorted(t for _, t in pool.sent) == ["a", "b"] and sched.cpus.used == 1


def test_a_full_node_evicts_an_idle_worker_of_another_env(make):
    pool, sched, _ = make(num_cpus=1)
    old, new = ready_env("old"), ready_env("new")
    pool.start(old)
    connect_all(pool)
    sched.enqueue(task("a"), new)
    sched.schedule()
    assert pool.workers[0].state is WorkerState.LEAVING and pool.started == [old, new]


def test_a_failed_env_fails_its_queue(make):
    pool, sched, failed = make()
    env = ready_env("h")
    env.error = exc.RuntimeEnvSetupError("no such package")
    sched.enqueue(task("a"), env)
    sched.schedule()
    assert failed == [(env, env.error)] and pool.started == []


def test_the_ledger_counts_each_worker_once(make):
    pool, sched, _ = make(num_cpus=4)
    w = pool.start(ready_env("h"))
    sched.cpus.take(w, 2)
    sched.cpus.take(w, 2)  # taking again replaces, never adds
    assert sched.cpus.used == 2
    sched.cpus.give_back(w)
    sched.cpus.give_back(w)
    assert sched.cpus.used == 0


def test_a_worker_that_cannot_start_for_lack_of_resources_fails_one_task(make, store):
    pool, sched, failed = make()
    env = ready_env("h")
    sched.enqueue(task("a"), env)
    sched.enqueue(task("b"), env)
    sched.start_failed(env, "too many open files", env_broken=False)
    ok, data = store["a"]
    error = pickle.loads(data)
    assert not ok and isinstance(error, exc.WorkerCrashedError)
    assert "too many open files" in str(error)
    assert failed == [] and [t.task_id for t in sched.queues[env]] == ["b"]


def test_a_worker_that_cannot_start_in_a_broken_env_fails_the_env(make):
    pool, sched, failed = make()
    env = ready_env("h")
    sched.enqueue(task("a"), env)
    sched.start_failed(env, "no such interpreter", env_broken=True)
    assert len(failed) == 1 and "no such interpreter" in str(failed[0][1])
