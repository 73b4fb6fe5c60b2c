"""Tasks and actor methods that yield, as Ray documents them: streaming (the default for a
generator), dynamic, errors part-way, values arriving while the task still runs."""

from __future__ import annotations

import asyncio

import pytest

import minray
from minray.exceptions import RayTaskError
from procs import Gate


def test_a_generator_task_streams_its_values(ray):
    @ray.remote
    def count(n):
        yield from range(n)

    gen = count.remote(4)
    assert isinstance(gen, ray.ObjectRefGenerator)
    assert [ray.get(ref, timeout=60) for ref in gen] == [0, 1, 2, 3]
    assert ray.get(gen.completed(), timeout=60) == 4 and gen.is_finished()


def test_values_arrive_before_the_generator_ends(ray, tmp_path):
    gate = Gate(tmp_path)

    @ray.remote
    def first_then_wait():
        yield "first"
        gate.wait(timeout=120)
        yield "second"

    gen = first_then_wait.remote()
    assert ray.get(next(gen), timeout=60) == "first"  # while the task waits at the gate
    assert not gen.is_finished()
    gate.open()
    assert [ray.get(ref, timeout=60) for ref in gen] == ["second"]


def test_an_error_part_way_is_raised_where_it_happened(ray):
    @ray.remote(num_returns="streaming")
    def fails_after_one():
        yield 1
        raise ValueError("boom")

    seen = []
    with pytest.raises(ValueError, match="boom") as info:
        for ref in fails_after_one.remote():
            seen.append(ray.get(ref, timeout=60))
    assert seen == [1] and isinstance(info.value, RayTaskError)


def test_dynamic_returns_one_ref_to_the_list_of_refs(ray):
    @ray.remote(num_returns="dynamic")
    def tens(n):
        for i in range(n):
            yield i * 10

    refs = ray.get(tens.remote(3), timeout=60)
    assert isinstance(refs, ray.DynamicObjectRefGenerator) and len(refs) == 3
    assert [ray.get(r, timeout=60) for r in refs] == [0, 10, 20]


def test_streaming_needs_a_generator(ray):
    @ray.remote
    def plain():
        return 1

    with pytest.raises(ValueError, match="needs a generator function"):
        plain.options(num_returns="streaming").remote()
    with pytest.raises(ValueError, match="num_returns must be"):
        plain.options(num_returns="lots")


def test_actor_methods_stream_too(ray):
    @ray.remote
    class Source:
        def __init__(self):
            self.sent = 0

        def items(self, n):
            for i in range(n):
                self.sent += 1
                yield i

        def total(self):
            return self.sent

    source = Source.remote()
    assert [ray.get(r, timeout=60) for r in source.items.remote(3)] == [0, 1, 2]
    assert ray.get(source.total.remote(), timeout=60) == 3
    with pytest.raises(ValueError, match="needs a generator method"):
        source.total.options(num_returns="streaming").remote()


def test_a_generator_can_be_iterated_with_async_for(ray):
    @ray.remote
    def letters():
        yield from "abc"

    async def collect():
        return [await ref async for ref in letters.remote()]

    assert asyncio.run(collect()) == ["a", "b", "c"]


def test_a_task_can_consume_another_tasks_stream(ray):
    @ray.remote
    def numbers(n):
        yield from range(n)

    @ray.remote
    def total(n):
        return sum(minray.get(ref) for ref in numbers.remote(n))

    assert ray.get(total.remote(5), timeout=60) == 10
