"""Object lifetime: values are freed when no ref can reach them, kept while one can."""

import gc

import psutil


def _rss_mib() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def test_results_nobody_holds_are_freed(ray):
    @ray.remote
    def blob(i):
        return bytes([i % 256]) * (4 * 2**20)  # 4 MiB each

    assert len(ray.get(blob.remote(0))) == 4 * 2**20  # warm up the worker and the allocator
    before = _rss_mib()
    for i in range(100):  # 400 MiB in total, one at a time
        assert ray.get(blob.remote(i))[:1] == bytes([i % 256])
    for i in range(100):  # and as fire-and-forget tasks whose refs are dropped at once
        blob.remote(i)
    ray.get(blob.remote(0))
    assert _rss_mib() - before < 120


def test_values_that_can_still_be_reached_are_kept(ray):
    @ray.remote
    def make(i):
        return [i] * 1000

    @ray.remote
    def first(x):
        return x[0]

    @ray.remote
    def unwrap(box):
        return ray.get(box[0])[0]

    held = make.remote(1)
    passed = first.remote(make.remote(2))  # the argument's only ref is gone: the task pins it
    boxed = unwrap.remote([make.remote(3)])  # a ref inside a value may live on in a worker
    gc.collect()
    assert ray.get(passed) == 2 and ray.get(boxed) == 3
    assert ray.get(held)[0] == 1
    put_ref = ray.put("kept")
    gc.collect()
    assert ray.get(put_ref) == "kept"
