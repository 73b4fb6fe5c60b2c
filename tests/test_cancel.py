"""cancel() as Ray documents it: queued, waiting, running and forced tasks, children, actor
calls. Every task that must not finish waits at a gate, so nothing depends on timing."""

from __future__ import annotations

import os

import pytest

import minray
from minray.exceptions import TaskCancelledError, WorkerCrashedError
from procs import Gate, wait_for


@pytest.fixture
def one_cpu():
    minray.init(num_cpus=1)
    yield minray
    minray.shutdown()


def _runner(ray, folder):
    """A task that notes it started, waits at the gate, and notes an interrupt."""
    gate = Gate(folder)

    @ray.remote
    def work(name):
        try:  # "started" inside the try: an interrupt after it is always seen
            open(os.path.join(folder, f"{name}.started"), "w").close()
            gate.wait(timeout=120)
        except KeyboardInterrupt:
            open(os.path.join(folder, f"{name}.interrupted"), "w").close()
            raise
        open(os.path.join(folder, f"{name}.done"), "w").close()
        return os.getpid()

    return work, gate


def test_a_queued_task_never_runs(one_cpu, tmp_path):
    ray = one_cpu
    work, gate = _runner(ray, tmp_path)
    first, second = work.remote("first"), work.remote("second")
    wait_for((tmp_path / "first.started").exists, "the first task to start")
    ray.cancel(second)
    with pytest.raises(TaskCancelledError, match="cancelled"):
        ray.get(second, timeout=60)
    gate.open()
    ray.get(first, timeout=60)
    ray.get(work.remote("third"), timeout=60)  # the node went on past where second was
    assert not (tmp_path / "second.started").exists()


def test_a_running_task_gets_keyboard_interrupt_and_its_worker_goes_on(one_cpu, tmp_path):
    ray = one_cpu
    work, gate = _runner(ray, tmp_path)
    ref = work.remote("a")
    wait_for((tmp_path / "a.started").exists, "the task to start")
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=60)
    assert (tmp_path / "a.interrupted").exists()
    gate.open()

    @ray.remote
    def pid():
        return os.getpid()

    ray.get(pid.remote(), timeout=60)  # the worker survived and takes work


def test_force_kills_the_worker_and_does_not_retry(one_cpu, tmp_path):
    ray = one_cpu

    @ray.remote(max_retries=3)
    def counted():
        with open(tmp_path / "runs", "a") as f:
            f.write("x")
        open(tmp_path / "counted", "w").close()  # after the write: the test reads it next
        Gate(tmp_path).wait(timeout=120)

    ref = counted.remote()
    wait_for((tmp_path / "counted").exists, "the task to start")
    ray.cancel(ref, force=True)
    with pytest.raises(WorkerCrashedError, match="cancelled"):
        ray.get(ref, timeout=60)
    assert (tmp_path / "runs").read_text() == "x"  # never retried


def test_a_task_waiting_for_its_arguments_never_runs(ray, tmp_path):
    work, gate = _runner(ray, tmp_path)
    upstream = work.remote("upstream")
    downstream = work.remote(upstream)  # its name is upstream's pid: it waits for it
    ray.cancel(downstream)
    with pytest.raises(TaskCancelledError):
        ray.get(downstream, timeout=60)
    gate.open()
    pid = ray.get(upstream, timeout=60)
    assert not (tmp_path / f"{pid}.started").exists()


def test_recursive_cancel_reaches_the_tasks_a_task_started(ray, tmp_path):
    work, gate = _runner(ray, tmp_path)

    @ray.remote
    def parent(child_name):
        return ray.get(work.remote(child_name))

    ref = parent.remote("child")
    wait_for((tmp_path / "child.started").exists, "the child task to start")
    ray.cancel(ref)  # recursive=True by default
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=60)
    wait_for((tmp_path / "child.interrupted").exists, "the child to be interrupted too")
    gate.open()


def test_non_recursive_cancel_leaves_the_children(ray, tmp_path):
    work, gate = _runner(ray, tmp_path)

    @ray.remote
    def parent():
        return ray.get(work.remote("kid"))

    ref = parent.remote()
    wait_for((tmp_path / "kid.started").exists, "the child task to start")
    ray.cancel(ref, recursive=False)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=60)
    gate.open()
    wait_for((tmp_path / "kid.done").exists, "the child to go on to its end")
    assert not (tmp_path / "kid.interrupted").exists()


def test_actor_calls_queued_are_dropped_and_running_ones_see_is_canceled(ray, tmp_path):
    gate = Gate(tmp_path)

    @ray.remote
    class Worker:
        def patient(self):
            open(tmp_path / "patient.started", "w").close()
            ctx = ray.get_runtime_context()
            wait_for(lambda: ctx.is_canceled() or gate.path.exists(), "a cancel", 120)
            return "stopped early" if ctx.is_canceled() else "finished"

        def later(self):
            open(tmp_path / "later.ran", "w").close()
            return "ran"

    actor = Worker.remote()
    running, queued = actor.patient.remote(), actor.later.remote()
    wait_for((tmp_path / "patient.started").exists, "the first call to start")
    ray.cancel(queued)
    ray.cancel(running)
    for ref in (running, queued):
        with pytest.raises(TaskCancelledError):
            ray.get(ref, timeout=60)
    assert not (tmp_path / "later.ran").exists()
    assert ray.get(actor.later.remote(), timeout=60) == "ran"  # the actor goes on
    with pytest.raises(ValueError, match="not supported for actor calls"):
        ray.cancel(actor.patient.remote(), force=True)
    gate.open()


def test_cancel_of_a_finished_task_changes_nothing(ray):
    @ray.remote
    def one():
        return 1

    ref = one.remote()
    assert ray.get(ref, timeout=60) == 1
    ray.cancel(ref)
    assert ray.get(ref, timeout=60) == 1
    with pytest.raises(TypeError, match="ObjectRef"):
        ray.cancel("not a ref")
    with pytest.raises(RuntimeError, match="inside a task"):
        ray.get_runtime_context().is_canceled()


def test_a_task_can_cancel_another(ray, tmp_path):
    work, gate = _runner(ray, tmp_path)

    @ray.remote
    def canceller(refs):
        ray.cancel(refs[0])
        try:
            ray.get(refs[0])
        except TaskCancelledError:
            return "cancelled"

    victim = work.remote("victim")
    wait_for((tmp_path / "victim.started").exists, "the victim to start")
    assert ray.get(canceller.remote([victim]), timeout=60) == "cancelled"
    gate.open()


def test_a_running_async_actor_call_is_cancelled_like_an_asyncio_task(ray, tmp_path):
    @ray.remote
    class Waiter:
        async def wait_long(self):
            import asyncio

            open(tmp_path / "waiting", "w").close()
            try:
                await asyncio.sleep(300)
            except asyncio.CancelledError:
                open(tmp_path / "cancelled", "w").close()
                raise

        async def ping(self):
            return "pong"

    actor = Waiter.remote()
    ref = actor.wait_long.remote()
    wait_for((tmp_path / "waiting").exists, "the async call to start")
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=60)
    assert (tmp_path / "cancelled").exists()
    assert ray.get(actor.ping.remote(), timeout=60) == "pong"
