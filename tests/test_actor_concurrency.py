"""Async actors, threaded actors, max_concurrency and concurrency groups, written as a Ray user
writes them. Overlap is proven with barriers and events that deadlock unless calls really run at
the same time (each with a timeout, so a failure fails instead of hanging), never with timing."""

import asyncio
import os
import threading

import pytest

from minray.exceptions import ActorDiedError, GetTimeoutError
from procs import Gate, gone_within, wait_for


def test_async_actor_runs_many_calls_at_once_on_one_loop(ray):
    @ray.remote
    class Meeting:
        def __init__(self, expected):
            self.expected = expected
            self.arrived = 0
            self.all_here = asyncio.Event()
            self.init_thread = threading.get_ident()
            self.init_had_loop = _has_running_loop()

        async def meet(self):
            self.arrived += 1
            if self.arrived == self.expected:
                self.all_here.set()
            await asyncio.wait_for(self.all_here.wait(), 60)  # only if all 50 run at once
            return self.arrived

        def where(self):  # a sync method of an async actor runs on the loop's thread
            return threading.get_ident(), _has_running_loop(), self.init_thread, \
                self.init_had_loop

        async def where_async(self):
            return threading.get_ident()

    m = Meeting.remote(50)
    assert ray.get([m.meet.remote() for _ in range(50)], timeout=90) == [50] * 50
    thread, sync_on_loop, init_thread, init_on_loop = ray.get(m.where.remote())
    assert sync_on_loop and init_on_loop
    assert thread == init_thread == ray.get(m.where_async.remote())


def _has_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_max_concurrency_limits_an_async_actor_and_a_group_stays_responsive(ray):
    @ray.remote(concurrency_groups={"control": 1})
    class Limited:
        def __init__(self):
            self.lock = threading.Lock()
            self.running = self.peak = 0
            self.tickets = threading.Semaphore(0)

        async def hold(self):
            with self.lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
            got = await asyncio.to_thread(self.tickets.acquire, timeout=60)
            with self.lock:
                self.running -= 1
            return got

        @ray.method(concurrency_group="control")
        def running_now(self):
            return self.running

        @ray.method(concurrency_group="control")
        def release(self, n):
            for _ in range(n):
                self.tickets.release()

        @ray.method(concurrency_group="control")
        def peak_(self):
            return self.peak

    a = Limited.options(max_concurrency=3).remote()
    held = [a.hold.remote() for _ in range(8)]
    # the default group is full and blocked; the control group still answers
    wait_for(lambda: ray.get(a.running_now.remote(), timeout=60) == 3, "3 calls running")
    ray.get(a.release.remote(8))
    assert ray.get(held, timeout=60) == [True] * 8
    assert ray.get(a.peak_.remote()) == 3  # 8 were waiting, never more than 3 ran


def test_threaded_actor_runs_calls_on_threads_sharing_state(ray):
    @ray.remote
    class Counter:
        def __init__(self, parties):
            self.barrier = threading.Barrier(parties, timeout=60)
            self.lock = threading.Lock()
            self.count = 0

        def add(self, times):
            self.barrier.wait()  # breaks (an error) unless all parties run at once
            for _ in range(times):
                with self.lock:
                    self.count += 1
            return threading.get_ident(), ray.get_runtime_context().get_task_id()

        def total(self):
            return self.count

    c = Counter.options(max_concurrency=4).remote(4)
    seen = ray.get([c.add.remote(500) for _ in range(4)], timeout=90)
    assert len({thread for thread, _ in seen}) == 4
    task_ids = [task for _, task in seen]
    assert None not in task_ids and len(set(task_ids)) == 4  # each call sees its own id
    assert ray.get(c.total.remote()) == 2000


def test_max_concurrency_limits_a_threaded_actor(ray):
    @ray.remote(max_concurrency=2, concurrency_groups={"control": 1})
    class Limited:
        def __init__(self):
            self.lock = threading.Lock()
            self.running = self.peak = 0
            self.tickets = threading.Semaphore(0)

        def hold(self):
            with self.lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
            got = self.tickets.acquire(timeout=60)
            with self.lock:
                self.running -= 1
            return got

        @ray.method(concurrency_group="control")
        def state(self):
            return self.running, self.peak

        @ray.method(concurrency_group="control")
        def release(self, n):
            for _ in range(n):
                self.tickets.release()

    a = Limited.remote()
    held = [a.hold.remote() for _ in range(6)]
    wait_for(lambda: ray.get(a.state.remote(), timeout=60)[0] == 2, "2 calls running")
    ray.get(a.release.remote(6))
    assert ray.get(held, timeout=60) == [True] * 6
    assert ray.get(a.state.remote()) == (0, 2)


def test_a_blocked_group_does_not_block_another(ray):
    @ray.remote(concurrency_groups={"io": 1})
    class Service:
        def __init__(self):
            self.lock = threading.Lock()
            self.in_io = self.peak_io = 0
            self.gate = threading.Event()

        @ray.method(concurrency_group="io")
        def fetch(self):  # a sync method: it blocks its group's thread (and loop)
            with self.lock:
                self.in_io += 1
                self.peak_io = max(self.peak_io, self.in_io)
            opened = self.gate.wait(60)
            with self.lock:
                self.in_io -= 1
            return opened

        async def ping(self):
            return "pong"

        def state(self):
            return self.in_io, self.peak_io

        def open(self):
            self.gate.set()

    s = Service.remote()
    first = s.fetch.remote()
    wait_for(lambda: ray.get(s.state.remote(), timeout=60)[0] == 1, "the io call to start")
    assert ray.get(s.ping.remote(), timeout=60) == "pong"  # the default group runs on
    # a default-group method sent to "io" at call time waits there behind the blocked call
    second = s.fetch.remote()
    moved = s.ping.options(concurrency_group="io").remote()
    assert ray.wait([moved], timeout=0.5)[0] == []
    ray.get(s.open.remote())
    assert ray.get([first, second, moved], timeout=60) == [True, True, "pong"]
    assert ray.get(s.state.remote()) == (0, 1)


def test_unknown_groups_and_bad_options_fail_at_the_call_site(ray):
    @ray.remote(concurrency_groups={"io": 2})
    class A:
        async def f(self):
            return 1

    a = A.remote()
    with pytest.raises(ValueError, match=r"'nope' is not a group of actor .*A; its "
                                         r"concurrency_groups are \['io'\]"):
        a.f.options(concurrency_group="nope")
    assert ray.get(a.f.options(concurrency_group="io").remote()) == 1

    @ray.remote
    class B:
        @ray.method(concurrency_group="io")
        def g(self):
            return 1

    with pytest.raises(ValueError, match=r"B.g is in concurrency_group 'io', which the "
                                         r"actor does not define; its concurrency_groups are "
                                         r"\[\]"):
        B.remote()
    assert ray.get(B.options(concurrency_groups={"io": 1}).remote().g.remote()) == 1

    for bad in (0, -1, "3", True, 1.5):
        with pytest.raises(ValueError, match="max_concurrency must be an int >= 1"):
            A.options(max_concurrency=bad)
    for bad, message in (({"io": 0}, r"concurrency_groups\['io'\] must be an int >= 1"),
                         ({"": 1}, "non-empty strings"), ({1: 1}, "non-empty strings")):
        with pytest.raises(ValueError, match=message):
            A.options(concurrency_groups=bad)
    with pytest.raises(TypeError, match="concurrency_groups must be a dict"):
        A.options(concurrency_groups=["io"])
    with pytest.raises(ValueError, match="unknown method option"):
        ray.method(concurrency_groups="io")
    with pytest.raises(ValueError, match="concurrency_group must be a group's name"):
        ray.method(concurrency_group=3)


def test_errors_in_async_and_threaded_calls_reach_the_caller(ray):
    @ray.remote
    class Flaky:
        async def fail(self, what):
            await asyncio.sleep(0)
            raise ValueError(f"bad {what}")

        def fail_sync(self):
            raise KeyError("sync")

        async def ok(self):
            return "ok"

    f = Flaky.remote()
    with pytest.raises(ValueError, match="bad input"):
        ray.get(f.fail.remote("input"))
    with pytest.raises(KeyError, match="sync"):
        ray.get(f.fail_sync.remote())
    assert ray.get(f.ok.remote()) == "ok"  # the actor lives on

    @ray.remote(max_concurrency=2)
    class Threaded:
        def fail(self):
            raise RuntimeError("in a thread")

    with pytest.raises(RuntimeError, match="in a thread"):
        ray.get(Threaded.remote().fail.remote())


def test_async_methods_await_refs_gather_and_time_out(ray, tmp_path):
    gate = Gate(tmp_path)
    held = gate.held(ray)

    @ray.remote
    def square(x):
        return x * x

    @ray.remote
    def broken():
        raise ZeroDivisionError("nope")

    @ray.remote
    class Fetcher:
        async def one(self):
            return await square.remote(7)

        async def many(self, n):
            return sum(await asyncio.gather(*[square.remote(i) for i in range(n)]))

        async def patient(self, refs, timeout):
            try:
                return await asyncio.wait_for(refs[0], timeout)
            except asyncio.TimeoutError:
                return "timed out"

        async def failing(self):
            try:
                await broken.remote()
            except ZeroDivisionError as e:
                return f"caught {e}"

    f = Fetcher.remote()
    assert ray.get(f.one.remote()) == 49
    assert ray.get(f.many.remote(20)) == sum(i * i for i in range(20))
    assert "caught" in ray.get(f.failing.remote())
    gated = held.remote("late")
    assert ray.get(f.patient.remote([gated], 0.2)) == "timed out"
    gate.open()
    assert ray.get(f.patient.remote([gated], 60)) == "late"


def test_async_actor_starts_tasks_and_calls_other_actors(ray):
    @ray.remote
    def double(x):
        return 2 * x

    @ray.remote
    class Store:
        def __init__(self):
            self.items = {}

        async def put(self, k, v):
            self.items[k] = v

        async def get(self, k):
            return self.items[k]

    @ray.remote
    class Coordinator:
        def __init__(self):
            self.store = Store.remote()

        async def run(self, x):
            doubled = await double.remote(x)
            await self.store.put.remote(x, doubled)
            return await self.store.get.remote(x), ray.get(double.remote(doubled))

    c = Coordinator.remote()
    assert ray.get([c.run.remote(i) for i in range(5)]) == [(2 * i, 4 * i) for i in range(5)]


def test_async_actor_restarts_and_runs_concurrently_again(ray):
    @ray.remote(max_restarts=1)
    class Phoenix:
        def __init__(self):
            self.arrived = 0
            self.all_here = asyncio.Event()

        async def meet(self, expected):
            self.arrived += 1
            if self.arrived == expected:
                self.all_here.set()
            await asyncio.wait_for(self.all_here.wait(), 60)
            return ray.get_runtime_context().was_current_actor_reconstructed

        async def crash(self):
            os._exit(1)

    p = Phoenix.remote()
    assert ray.get([p.meet.remote(5) for _ in range(5)], timeout=90) == [False] * 5
    with pytest.raises(ActorDiedError):
        ray.get(p.crash.remote())
    # a new instance: its count starts again, and its calls overlap again
    assert ray.get([p.meet.remote(5) for _ in range(5)], timeout=90) == [True] * 5


def test_kill_fails_every_call_in_flight(ray, tmp_path):
    gate = Gate(tmp_path)
    held = gate.held(ray)

    @ray.remote
    class Waiter:
        def __init__(self):
            self.waiting = 0

        async def wait_for_gate(self, refs):
            self.waiting += 1
            return await refs[0]

        async def state(self):
            return self.waiting, os.getpid()

    w = Waiter.remote()
    gated = held.remote("never")
    calls = [w.wait_for_gate.remote([gated]) for _ in range(5)]
    wait_for(lambda: ray.get(w.state.remote(), timeout=60)[0] == 5, "5 calls waiting")
    pid = ray.get(w.state.remote())[1]
    ray.kill(w)
    for call in calls:
        with pytest.raises(ActorDiedError, match="killed"):
            ray.get(call, timeout=60)
    assert gone_within([pid], 10) == []
    gate.open()


def test_threaded_calls_wait_for_objects_at_the_same_time(ray, tmp_path):
    first, later = Gate(tmp_path / "first"), Gate(tmp_path / "later")
    for gate in (first, later):
        gate.path.parent.mkdir()

    @ray.remote(max_concurrency=3)
    class Reader:
        def __init__(self):
            self.barrier = threading.Barrier(3, timeout=60)

        def read(self, refs, i):
            self.barrier.wait()
            try:  # a get and a wait that time out while the other calls are blocked in get
                ray.get(refs[1], timeout=0.1)
                timed_out = False
            except GetTimeoutError:
                timed_out = True
            ready, _ = ray.wait([refs[1]], timeout=0.1)
            return ray.get(refs[0]) + i, timed_out, ready

    r = Reader.remote()
    refs = [first.held(ray).remote(10), later.held(ray).remote(0)]
    calls = [r.read.remote(refs, i) for i in range(3)]
    with pytest.raises(GetTimeoutError):
        ray.get(calls, timeout=0.5)
    first.open()
    assert ray.get(calls, timeout=60) == [(10 + i, True, []) for i in range(3)]
    later.open()


def test_await_refs_in_the_driver_and_in_a_plain_task(ray, tmp_path):
    gate = Gate(tmp_path)
    held = gate.held(ray)

    @ray.remote
    def square(x):
        return x * x

    @ray.remote
    def broken():
        raise ValueError("from a task")

    @ray.remote
    def gathers(n):
        async def main():
            return sum(await asyncio.gather(*[square.remote(i) for i in range(n)]))

        return asyncio.run(main())  # Ray's way to run async code in a task

    async def driver():
        total = sum(await asyncio.gather(*[square.remote(i) for i in range(100)]))
        with pytest.raises(ValueError, match="from a task"):
            await broken.remote()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(held.remote(1), 0.2)
        return total, await gathers.remote(10)

    assert asyncio.run(driver()) == (sum(i * i for i in range(100)), 285)
    # the worker that awaited in a task goes on running tasks
    assert ray.get([gathers.remote(5) for _ in range(4)] + [square.remote(3)]) == [30] * 4 + [9]
    gate.open()
