"""Large values through shared memory: intact in both directions, read in place (read-only) where
Ray does, stored once, freed when the last ref goes, nothing left in the object folder after
shutdown or a kill -9 of the driver, and a clear error when there is no room."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

import minray
from minray import values
from minray.exceptions import ObjectStoreFullError
from minray.node import shm
from procs import Gate, wait_for

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import it

BIG = 3 * values.THRESHOLD  # travels as a segment
SMALL = values.THRESHOLD // 4  # travels inside the messages


def blob(n: int = BIG) -> bytes:
    return os.urandom(1024) * (n // 1024)


def files(folder: str | Path) -> list[str]:
    """The segments of live values (freed ones wait a moment in the pool, see pooled, or
    while still mapped somewhere, in shm.HELD)."""
    return sorted(n for n in os.listdir(folder) if n not in (values.POOL, shm.HELD))


def pooled(folder: str | Path) -> list[str]:
    return sorted(os.listdir(Path(folder) / values.POOL))


@pytest.fixture
def node():
    info = minray.init(num_cpus=2)
    yield info["object_store_dir"]
    minray.shutdown()


@minray.remote
def echo(x):
    return x


@minray.remote
def describe(x):
    """What the task received: type, size, and whether it may write to it."""
    if isinstance(x, np.ndarray):
        writable = x.flags.writeable
    elif isinstance(x, memoryview):
        writable = not x.readonly
    else:
        writable = isinstance(x, bytearray)
    return type(x).__name__, len(x), writable


def test_bytes_like_values_come_back_intact_with_their_type(node):
    data = blob()
    for value, kind in [(data, bytes), (bytearray(data), bytearray)]:
        back = minray.get(echo.remote(value))
        assert type(back) is kind and back == data
    # a memoryview travels as its bytes, as cloudpickle (and so Ray) sends it
    assert minray.get(echo.remote(memoryview(data))) == data
    assert minray.get(echo.remote(memoryview(b"abc"))) == b"abc"
    assert minray.get(minray.put(memoryview(data)[::2])) == data[::2]


def test_a_task_sees_bytes_read_only_and_a_bytearray_as_its_own(node):
    data = blob()
    assert minray.get(describe.remote(data)) == ("bytes", BIG, False)
    assert minray.get(describe.remote(bytearray(data))) == ("bytearray", BIG, True)
    assert minray.get(describe.remote(memoryview(data))) == ("bytes", BIG, False)


def test_values_read_into_huge_pages_are_ordinary_objects(node):
    data = os.urandom(values._HUGE_MIN + 4097)  # read into huge pages; not whole pages
    back = minray.get(echo.remote(data))
    assert type(back) is bytes and back == data and hash(back) == hash(data)
    assert sys.getrefcount(back) == 2  # nothing else holds it: it is freed when let go
    assert minray.get(describe.remote(data)) == ("bytes", len(data), False)
    mine = minray.get(echo.remote(bytearray(data)))
    assert type(mine) is bytearray and mine == data
    mine += b"more"  # the caller's own, resizable
    assert mine[:len(data)] == data and mine[-4:] == b"more"


def test_large_values_are_read_without_ctypes_too(monkeypatch, tmp_path):
    """A Python built without ctypes reads large values the plain way."""
    monkeypatch.setitem(sys.modules, "ctypes", None)  # import ctypes raises ImportError
    monkeypatch.delitem(sys.modules, "minray.hugepages", raising=False)
    data = os.urandom(values._HUGE_MIN + 1)
    for value in (data, bytearray(data)):
        segment = values.dumps(value, str(tmp_path))
        back = values.loads(segment)
        assert type(back) is type(value) and back == data
        values.free(segment)


def test_numpy_arrays_are_read_in_place_read_only_in_tasks_and_in_the_driver(node):
    array = np.arange(BIG // 8, dtype=np.float64).reshape(-1, 64)
    assert minray.get(describe.remote(array)) == ("ndarray", len(array), False)
    back = minray.get(echo.remote(array))
    assert back.dtype == array.dtype and back.shape == array.shape
    assert np.array_equal(back, array)
    assert not back.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        back[0, 0] = 1.0
    fortran = np.asfortranarray(array)
    assert np.array_equal(minray.get(echo.remote(fortran)), fortran)
    small = np.arange(10)
    assert np.array_equal(minray.get(echo.remote(small)), small)


def test_containers_of_arrays_and_several_returns(node):
    a, b = np.ones(BIG // 8), np.zeros(BIG // 8, dtype=np.int32)
    back = minray.get(echo.remote({"a": a, "b": [b, "text"]}))
    assert np.array_equal(back["a"], a) and np.array_equal(back["b"][0], b)
    assert back["b"][1] == "text"

    @minray.remote(num_returns=2)
    def two(x):
        return x, bytes(reversed(x))

    data = blob()
    first, second = minray.get(two.remote(data))
    assert first == data and second == data[::-1]


def test_put_stores_a_large_value_once_however_many_tasks_read_it(node):
    data = blob()
    ref = minray.put(data)
    assert len(files(node)) == 1
    assert minray.get([describe.remote(ref) for _ in range(10)]) == [("bytes", BIG, False)] * 10
    assert len(files(node)) == 1  # the tasks read the one segment, none copied it
    assert minray.get(ref) == data
    del ref
    wait_for(lambda: not files(node), "the put value's segment to be freed")


def test_results_and_arguments_are_freed_when_their_refs_go(node):
    data = blob()
    ref = echo.remote(data)
    assert minray.get(ref) == data
    wait_for(lambda: len(files(node)) == 1, "the argument's segment to be freed")
    del ref
    wait_for(lambda: not files(node), "the result's segment to be freed")
    refs = [echo.remote(np.full(BIG // 8, i)) for i in range(4)]
    arrays = minray.get(refs)
    del refs
    wait_for(lambda: not files(node), "the segments of four results to be freed")
    assert [int(a[0]) for a in arrays] == [0, 1, 2, 3]  # still readable: they stay mapped


def test_freed_memory_is_reused_by_the_next_value_then_given_back(node):
    first = minray.put(blob())
    del first
    wait_for(lambda: len(pooled(node)) == 1 and not files(node), "the value to go to the pool")
    second = minray.put(blob(BIG // 2))  # writes into the freed file's pages
    assert len(files(node)) == 1 and pooled(node) == []
    assert minray.get(second) == minray.get(second)
    del second
    wait_for(lambda: not pooled(node) and not files(node),
             "the pool to give the memory back (after a few seconds)")


def test_an_array_read_in_place_keeps_its_contents_after_its_ref_goes(node):
    """Its file is not reused while it is mapped: new values go elsewhere."""
    ref = minray.put(np.full(BIG // 8, 7.0))
    array = minray.get(ref)
    del ref
    wait_for(lambda: not files(node), "the value to be freed")
    assert pooled(node) == []  # mapped: removed, not offered for reuse
    others = [minray.put(np.full(BIG // 8, float(i))) for i in range(3)]
    assert (array == 7.0).all()

    @minray.remote
    class Keeper:
        def keep(self, x):
            self.x = x

        def total(self):
            return float(self.x.sum())

    keeper = Keeper.remote()
    ref = minray.put(np.ones(BIG // 8))
    minray.get(keeper.keep.remote(ref))
    del ref, others
    wait_for(lambda: not files(node), "the values to be freed")
    more = [minray.put(np.zeros(BIG // 8)) for _ in range(3)]
    assert minray.get(keeper.total.remote()) == BIG // 8
    assert len(more) == 3


def test_a_value_reuses_a_freed_file_only_if_it_is_not_much_larger(node):
    """A freed file more than twice a new value's size is left in the pool (the value would
    hold its surplus memory); one that fits is written into, and keeps its length."""
    big = minray.put(blob(4 * BIG))
    del big
    wait_for(lambda: pooled(node), "the large file in the pool")
    small = minray.put(blob(BIG))
    assert [os.path.getsize(Path(node) / n) for n in files(node)] == [BIG]
    del small
    wait_for(lambda: any(n.startswith(f"{BIG}.") for n in pooled(node)), "its file pooled")
    data = blob(BIG * 3 // 4)
    again = minray.put(data)  # written into the freed BIG file, which keeps its length
    assert [os.path.getsize(Path(node) / n) for n in files(node)] == [BIG]
    assert minray.get(again) == data  # read by its own size, not the file's


def test_a_mapped_value_waits_while_read_in_place_then_is_pooled(node):
    """Freed while an array still reads it, its file is kept aside (never rewritten under the
    reader); once the array is dropped, the file joins the pool for the next value."""
    array = minray.get(echo.remote(np.full(BIG // 8, 3.0)))
    wait_for(lambda: not files(node), "the argument and the result to be freed")
    held = os.listdir(Path(node) / shm.HELD)
    assert len(held) == 1, "the result's file waits while the array maps it"
    inode = os.stat(Path(node) / shm.HELD / held[0]).st_ino
    others = [minray.put(np.full(BIG // 8, float(i))) for i in range(3)]
    assert (array == 3.0).all()
    del array
    wait_for(lambda: inode in pooled_inodes(node), "the result's file in the pool")
    assert os.listdir(Path(node) / shm.HELD) == []
    assert len(others) == 3


def pooled_inodes(folder: str) -> set[int]:
    inodes = set()
    for name in pooled(folder):
        try:
            inodes.add(os.stat(Path(folder) / values.POOL / name).st_ino)
        except FileNotFoundError:  # expired meanwhile
            pass
    return inodes


def test_small_values_never_touch_the_folder(node):
    data = blob(SMALL)
    ref = minray.put(data)
    assert minray.get(echo.remote(ref)) == data
    assert minray.get([echo.remote(data) for _ in range(20)]) == [data] * 20
    assert files(node) == []


def test_actors_and_nested_tasks_pass_large_values(node, tmp_path):
    @minray.remote
    class Keeper:
        def keep(self, x):
            self.x = x
            return len(x)

        def give(self):
            return self.x

    @minray.remote
    def outer(x):
        return minray.get(echo.remote(x[::-1]))

    data = blob()
    keeper = Keeper.remote()
    assert minray.get(keeper.keep.remote(data)) == BIG
    assert minray.get(keeper.give.remote()) == data
    assert minray.get(outer.remote(data)) == data[::-1]


def test_a_tasks_own_refs_stay_valid_after_its_child_task_took_them(node):
    """Refs a task makes are not counted by the node: passing one to a child task must not
    free it when the child is done."""

    @minray.remote
    def parent(n):
        mine = minray.put(b"m" * n)
        made = echo.remote(mine)
        assert minray.get(made) == b"m" * n
        again = echo.remote(made)
        return minray.get([mine, made, again], timeout=30) == [b"m" * n] * 3

    assert minray.get(parent.remote(10))
    assert minray.get(parent.remote(BIG))


def test_a_large_argument_a_task_passes_on_is_freed_with_its_child(node):
    @minray.remote
    def parent():
        return minray.get(describe.remote(blob()))

    assert minray.get(parent.remote()) == ("bytes", BIG, False)
    wait_for(lambda: not files(node), "the child's argument to be freed")


def test_an_argument_outlives_its_ref_until_its_task_is_done(node, tmp_path):
    """The driver drops its only ref while the task is queued; the task's worker dies and the
    retry reads the value again: the task's pin kept it."""
    gate = Gate(tmp_path)
    crashed = tmp_path / "crashed"

    @minray.remote(max_retries=1)
    def crash_once(x):
        gate.wait()
        if not crashed.exists():
            crashed.touch()
            os._exit(1)
        return len(x)

    ref = minray.put(blob())
    result = crash_once.remote(ref)
    del ref
    gate.open()
    assert minray.get(result) == BIG
    assert crashed.exists()
    wait_for(lambda: not files(node), "the argument to be freed once its task is done")


def test_shutdown_leaves_nothing_in_the_object_folder(node):
    ref = minray.put(blob())
    kept = echo.remote([ref])  # an escaped ref: kept for the session
    minray.get(kept)
    assert files(node)
    minray.shutdown()
    assert not Path(node).exists()
    assert not Path(f"{node}.lock").exists()


def _driver(tmp_path: Path, body: str) -> subprocess.Popen:
    code = textwrap.dedent("""
        import os, sys, time
        import minray
        info = minray.init(num_cpus=1)
        print(info["object_store_dir"], flush=True)
        big = os.urandom(1024) * (3 * 1024 * 1024 // 1024)
        """) + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=tmp_path, start_new_session=True)


def test_a_driver_killed_with_sigkill_leaves_nothing(tmp_path):
    driver = _driver(tmp_path, """
        ref = minray.put(big)
        out = minray.remote(lambda x: x).remote(big)
        minray.get(out)
        print("ready", flush=True)
        time.sleep(600)
        """)
    try:
        folder = Path(driver.stdout.readline().strip())
        assert driver.stdout.readline().strip() == "ready"
        assert len(files(folder)) == 2
        os.killpg(driver.pid, signal.SIGKILL)  # its workers see it go and exit
        driver.wait()
        wait_for(lambda: not folder.exists() and not Path(f"{folder}.lock").exists(),
                 "the reaper to remove the dead driver's object folder")
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()


def test_a_new_session_sweeps_folders_whose_driver_is_gone(tmp_path):
    from minray.node import shm

    top = shm.root()
    top.mkdir(parents=True, exist_ok=True)
    dead = top / "session_test_dead_driver"
    dead.mkdir()
    (dead / "segment").write_bytes(b"x" * 100)
    Path(f"{dead}.lock").touch()  # a lock nobody holds: its driver is gone
    live = _driver(tmp_path, """
        print("ready", flush=True)
        time.sleep(600)
        """)
    try:
        live_folder = Path(live.stdout.readline().strip())
        assert live.stdout.readline().strip() == "ready"
        info = minray.init(num_cpus=1)
        assert not dead.exists() and not Path(f"{dead}.lock").exists()
        assert live_folder.exists()  # its driver holds the lock
        assert Path(info["object_store_dir"]).exists()
    finally:
        minray.shutdown()
        live.kill()
        live.wait()


@pytest.fixture
def small_store(tmp_path, monkeypatch):
    """A node whose object folder is on an 8 MB tmpfs (needs root; skipped elsewhere)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    monkeypatch.setenv("MINRAY_OBJECT_STORE_DIR", str(mount))
    try:
        yield minray.init(num_cpus=1)["object_store_dir"]
    finally:
        minray.shutdown()
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_value_larger_than_the_free_space_is_a_clear_error(small_store):
    with pytest.raises(ObjectStoreFullError, match=r"cannot store a value of 10\.5 MB.*free"):
        minray.put(blob(10 * 1024 * 1024))
    with pytest.raises(ObjectStoreFullError, match="MINRAY_OBJECT_STORE_DIR"):
        echo.remote(blob(10 * 1024 * 1024))

    @minray.remote
    def make(n):
        return b"x" * n

    with pytest.raises(ObjectStoreFullError, match="cannot store a value"):
        minray.get(make.remote(10 * 1024 * 1024))
    assert files(small_store) == [] and pooled(small_store) == []  # nothing half-written
    assert minray.get(make.remote(BIG)) == b"x" * BIG  # the node goes on


def test_a_value_that_does_not_fit_beside_the_stored_ones_fails_alone(small_store):
    """Two values that each fit, but not together: the second fails, the first stays; once
    the first is freed, its room (pooled or not) takes a value again."""
    first = minray.put(blob(5 * 1024 * 1024))
    with pytest.raises(ObjectStoreFullError):
        minray.put(blob(5 * 1024 * 1024))
    assert len(files(small_store)) == 1
    del first
    # the I/O thread unlinks it: its name goes first, its pages a moment later
    wait_for(lambda: free_bytes(small_store) > 6 * 1024 * 1024, "the first value's room back")
    data = blob(5 * 1024 * 1024)
    assert minray.get(minray.put(data)) == data


def free_bytes(folder: str) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def test_a_full_store_gives_the_pool_up_for_a_new_value(small_store):
    """Freed files held for reuse never stand in the way of a value that needs their room."""
    ref = minray.put(blob(2 * 1024 * 1024))  # the pool holds up to a quarter of the 8 MB
    del ref
    wait_for(lambda: len(pooled(small_store)) == 1, "the freed file in the pool")
    data = blob(7 * 1024 * 1024)  # fits only without the pooled file
    assert minray.get(minray.put(data)) == data
