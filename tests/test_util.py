"""ray.util as Ray users write it: ActorPool and queue.Queue. Every wait has a timeout, so a
failure fails instead of hanging."""

import asyncio
import os
import queue as std_queue
import subprocess
import sys

import pytest

from minray.exceptions import ActorDiedError, RayActorError
from minray.util import ActorPool
from minray.util.queue import Empty, Full, Queue
from procs import Gate

T = 60  # seconds any single wait may take before the test fails


def doubler(ray):
    @ray.remote
    class Doubler:
        def double(self, v):
            return 2 * v

        def pid(self, _v=None):
            return os.getpid()

    return Doubler


def gated_worker(ray, gate: Gate, held: str):
    """An actor class whose `work(v)` returns v, but waits for the gate when v is `held`."""

    @ray.remote
    class Worker:
        def work(self, v):
            if v == held:
                gate.wait(T)
            return v

    return Worker


# ---------------------------------------------------------------------------------- ActorPool
def test_map_gives_results_in_order_and_map_unordered_gives_them_all(ray):
    Doubler = doubler(ray)
    pool = ActorPool([Doubler.remote(), Doubler.remote()])
    assert list(pool.map(lambda a, v: a.double.remote(v), range(10))) == [2 * v for v in
                                                                         range(10)]
    assert sorted(pool.map_unordered(lambda a, v: a.double.remote(v), range(10))) == [
        2 * v for v in range(10)]
    assert not pool.has_next()


def test_map_unordered_yields_what_is_ready_first(ray, tmp_path):
    gate = Gate(tmp_path)
    Worker = gated_worker(ray, gate, "slow")

    pool = ActorPool([Worker.remote(), Worker.remote()])
    results = pool.map_unordered(lambda a, v: a.work.remote(v), ["slow", "fast"])
    assert next(results) == "fast"  # the slow one cannot finish before the gate opens
    gate.open()
    assert list(results) == ["slow"]


def test_values_beyond_the_actors_wait_for_a_free_actor(ray):
    Doubler = doubler(ray)
    pool = ActorPool([Doubler.remote(), Doubler.remote()])
    for v in range(7):
        pool.submit(lambda a, v: a.pid.remote(v), v)
    assert not pool.has_free()
    pids = []
    while pool.has_next():
        pids.append(pool.get_next(timeout=T))
    assert len(pids) == 7 and len(set(pids)) == 2  # two actors did all the work
    assert pool.has_free()


def test_submit_get_next_and_the_pool_of_actors(ray):
    Doubler = doubler(ray)
    a, b = Doubler.remote(), Doubler.remote()
    pool = ActorPool([a])
    assert pool.has_free() and not pool.has_next()
    pool.submit(lambda actor, v: actor.double.remote(v), 1)
    assert pool.has_next() and not pool.has_free() and pool.pop_idle() is None
    assert pool.get_next(timeout=T) == 2
    with pytest.raises(StopIteration):
        pool.get_next()
    pool.push(b)
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(b)
    popped = pool.pop_idle()
    assert popped in (a, b)
    assert pool.pop_idle() in (a, b) and pool.pop_idle() is None
    with pytest.raises(TypeError, match="must return the ObjectRef"):
        ActorPool([a]).submit(lambda actor, v: v, 1)


def test_a_pushed_actor_takes_a_waiting_value(ray):
    Doubler = doubler(ray)
    pool = ActorPool([])
    pool.submit(lambda a, v: a.double.remote(v), 21)
    assert not pool.has_next()  # nothing runs: no actor
    pool.push(Doubler.remote())
    assert pool.get_next(timeout=T) == 42


def test_get_next_times_out_and_can_give_up_a_call(ray, tmp_path):
    gate = Gate(tmp_path)
    Worker = gated_worker(ray, gate, "held")

    pool = ActorPool([Worker.remote()])
    pool.submit(lambda a, v: a.work.remote(v), "held")
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0.1)
    assert pool.has_next()  # still there
    with pytest.raises(TimeoutError, match="ignored"):
        pool.get_next(timeout=0.1, ignore_if_timedout=True)
    assert not pool.has_next() and pool.has_free()
    pool.submit(lambda a, v: a.work.remote(v), "next")
    gate.open()  # the actor finishes the held call, then this one
    assert pool.get_next(timeout=T) == "next"


def test_get_next_after_get_next_unordered_is_refused(ray, tmp_path):
    gate = Gate(tmp_path)
    Worker = gated_worker(ray, gate, "held")

    pool = ActorPool([Worker.remote(), Worker.remote()])
    pool.submit(lambda a, v: a.work.remote(v), "held")
    pool.submit(lambda a, v: a.work.remote(v), "free")
    assert pool.get_next_unordered(timeout=T) == "free"  # taken out of order
    with pytest.raises(ValueError, match="get_next_unordered"):
        pool.get_next()
    gate.open()
    assert pool.get_next_unordered(timeout=T) == "held"


def test_an_error_is_raised_and_the_actor_stays_in_the_pool(ray):
    @ray.remote
    class Picky:
        def take(self, v):
            if v < 0:
                raise ValueError(f"negative: {v}")
            return v

    pool = ActorPool([Picky.remote()])
    pool.submit(lambda a, v: a.take.remote(v), -1)
    pool.submit(lambda a, v: a.take.remote(v), 5)
    with pytest.raises(ValueError, match="negative: -1"):
        pool.get_next(timeout=T)
    assert pool.get_next(timeout=T) == 5 and pool.has_free()


def test_a_dead_actor_leaves_the_pool(ray):
    @ray.remote
    class Fragile:
        def work(self, v):
            if v == "die":
                os._exit(1)
            return v

    pool = ActorPool([Fragile.remote(), Fragile.remote()])
    pool.submit(lambda a, v: a.work.remote(v), "die")
    pool.submit(lambda a, v: a.work.remote(v), "ok")
    with pytest.raises(ActorDiedError):
        pool.get_next(timeout=T)
    assert pool.get_next(timeout=T) == "ok"
    survivor = pool.pop_idle()
    assert pool.pop_idle() is None  # the dead one is gone from the pool
    assert ray.get(survivor.work.remote("alive"), timeout=T) == "alive"


# ---------------------------------------------------------------------------------- Queue
def test_queue_put_get_sizes_and_nowait(ray):
    q = Queue(maxsize=3)
    assert q.empty() and not q.full() and len(q) == 0
    q.put(1)
    q.put_nowait(2)
    q.put_nowait_batch([3])
    assert q.full() and q.qsize() == q.size() == 3
    with pytest.raises(Full):
        q.put_nowait(4)
    with pytest.raises(Full, match="Cannot add 2 items"):
        q.put_nowait_batch([4, 5])
    assert q.get() == 1
    assert q.get_nowait_batch(2) == [2, 3]
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty, match="Cannot get 1 items"):
        q.get_nowait_batch(1)
    assert issubclass(Empty, std_queue.Empty) and issubclass(Full, std_queue.Full)


def test_queue_timeouts_and_bad_arguments(ray):
    q = Queue(maxsize=1)
    with pytest.raises(Empty):
        q.get(timeout=0.2)
    with pytest.raises(Empty):
        q.get(block=False)
    q.put("x")
    with pytest.raises(Full):
        q.put("y", timeout=0.2)
    with pytest.raises(Full):
        q.put("y", block=False)
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    with pytest.raises(TypeError, match="Iterable"):
        q.put_nowait_batch(5)
    with pytest.raises(ValueError, match="nonnegative"):
        q.get_nowait_batch(-1)
    with pytest.raises(TypeError, match="maxsize"):
        Queue(maxsize="3")


def test_a_blocked_get_leaves_the_queue_usable_by_others(ray):
    q = Queue()

    @ray.remote
    def consumer(q):
        return q.get(timeout=T)  # waits: the queue is empty

    taken = consumer.remote(q)
    ready, _ = ray.wait([taken], timeout=0.3)
    assert not ready
    assert q.qsize() == 0  # the queue answers while the consumer waits
    q.put("item")
    assert ray.get(taken, timeout=T) == "item"


def test_a_blocked_put_goes_through_once_room_is_made(ray):
    q = Queue(maxsize=1)
    q.put("first")

    @ray.remote
    def producer(q):
        q.put("second", timeout=T)  # waits: the queue is full
        return "put"

    done = producer.remote(q)
    ready, _ = ray.wait([done], timeout=0.3)
    assert not ready
    assert q.get(timeout=T) == "first"
    assert ray.get(done, timeout=T) == "put"
    assert q.get(timeout=T) == "second"


def test_producer_and_consumer_actors_share_a_queue(ray):
    q = Queue(maxsize=2)

    @ray.remote
    class Producer:
        def __init__(self, q):
            self.q = q

        def produce(self, n):
            for i in range(n):
                self.q.put(i, timeout=T)
            return n

    @ray.remote
    class Consumer:
        def consume(self, q, n):
            return [q.get(timeout=T) for _ in range(n)]

    producer, consumer = Producer.remote(q), Consumer.remote()
    got = consumer.consume.remote(q, 20)
    assert ray.get(producer.produce.remote(20), timeout=T) == 20
    assert ray.get(got, timeout=T) == list(range(20))


def test_async_put_and_get(ray):
    q = Queue()

    async def main():
        await q.put_async("a")
        await q.put_async("b", block=False)
        first = await q.get_async(timeout=T)
        second = await q.get_async(block=False)
        with pytest.raises(Empty):
            await q.get_async(timeout=0.1)
        return first, second

    assert asyncio.run(main()) == ("a", "b")


def test_queue_actor_options_and_shutdown(ray):
    q = Queue(actor_options={"name": "jobs"})
    q.put(1)
    found = ray.get_actor("jobs")
    assert ray.get(found.qsize.remote(), timeout=T) == 1
    q.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        q.put(2)
    with pytest.raises(RayActorError):
        ray.get(found.qsize.remote(), timeout=T)
    forced = Queue()
    handle = forced.actor
    forced.shutdown(force=True)
    with pytest.raises(RayActorError):
        ray.get(handle.qsize.remote(), timeout=T)


# ---------------------------------------------------------------------------------- tqdm_ray
def test_tqdm_bars_of_tasks_reach_the_drivers_stderr(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import os\n"
        "import minray as ray\n"
        "from minray.experimental import tqdm_ray\n"
        "ray.init(num_cpus=1)\n"
        "@ray.remote\n"
        "def work(n):\n"
        "    for _ in tqdm_ray.tqdm(range(n), desc='crunch'):\n"
        "        pass\n"
        "    bar = tqdm_ray.tqdm(total=3, desc='by hand', unit='files')\n"
        "    bar.update(2)\n"
        "    bar.update(1)\n"
        "    bar.close()\n"
        "    return os.getpid()\n"
        "print(ray.get(work.remote(50), timeout=60))\n")
    done = subprocess.run([sys.executable, str(driver)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    pid = done.stdout.strip()
    lines = done.stderr.splitlines()
    assert f"crunch: 100%|{'#' * 20}| 50/50 it (pid {pid})" in lines
    assert f"by hand: 100%|{'#' * 20}| 3/3 files (pid {pid})" in lines
    # throttled: the first update and the end, not a line per item
    assert sum(line.startswith("crunch:") for line in lines) < 10


def test_tqdm_counts_like_tqdm():
    from minray.experimental.tqdm_ray import tqdm

    bar = tqdm(total=10, flush_interval_s=3600)
    bar.update(4)
    bar.n += 1
    assert (bar.n, bar.total) == (5, 10)
    with pytest.raises(ValueError, match="No iterable"):
        list(tqdm())
    assert list(tqdm("abc")) == ["a", "b", "c"]
