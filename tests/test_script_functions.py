"""Functions defined in a driver script reach workers whole - closures, recursion, defaults,
attributes, decorators, the globals and submodules they use - and a new worker loads them
without importing cloudpickle (minray/functions.py), which is what keeps its start short."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from minray import functions


def _run(script: str, **env) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                         text=True, timeout=120, env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("fork_server", ["1", "0"])
def test_a_new_worker_runs_a_script_function_without_loading_cloudpickle(fork_server):
    """The first worker, exec'd or forked from the job's server before the server loads the
    API for later children."""
    out = _run("""
        import sys
        import minray as ray

        LIMIT = 3

        def count_down(n):
            return [] if n == 0 else [n, *count_down(n - 1)]

        @ray.remote
        def task():
            return count_down(LIMIT), "cloudpickle" in sys.modules

        ray.init(num_cpus=1)
        print(ray.get(task.remote()))
    """, MINRAY_FORK_SERVER=fork_server)
    assert out.strip() == "([3, 2, 1], False)"


def test_closures_defaults_attributes_and_decorators_survive_the_trip():
    out = _run("""
        import functools
        import xml.etree.ElementTree
        import minray as ray

        SCALE = 10

        def twice(fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                return 2 * fn(*args, **kwargs)
            return wrapper

        def make(offset):
            late = []
            def fact(n):
                return 1 if n <= 1 else n * fact(n - 1)
            @twice
            def body(x, y=1, *, z=2) -> int:
                "the body"
                tag = xml.etree.ElementTree.Element("a").tag  # a submodule reached by attribute
                return SCALE * x + y + z + offset + fact(3) + len(tag) + len(late)
            body.note = "kept"
            late.append(1)
            return body

        @ray.remote
        def run(fn):
            inner = fn.__wrapped__
            return (fn(1), fn(1, 0, z=0), fn.__name__, fn.__doc__, fn.note, inner.__defaults__,
                    inner.__kwdefaults__)

        ray.init(num_cpus=1)
        fn = make(100)
        print(ray.get(run.remote(fn)))
        print(ray.get(ray.remote(make(5)).remote(2)))
    """)
    first, second = out.splitlines()
    assert first == "(242, 236, 'body', 'the body', 'kept', (1,), {'z': 2})"
    assert second == str(2 * (10 * 2 + 1 + 2 + 5 + 6 + 1 + 1))


def test_functions_of_one_script_share_its_globals_in_a_worker():
    out = _run("""
        import minray as ray

        counter = 0

        def bump():
            global counter
            counter += 1
            return counter

        def read():
            return counter

        @ray.remote
        class Holder:
            def both(self):
                bump(); bump()
                return read()

        ray.init(num_cpus=1)
        print(ray.get(Holder.remote().both.remote()), counter)
    """)
    assert out.strip() == "2 0"


def test_a_script_class_travels_and_an_async_task_is_refused_at_its_definition():
    out = _run("""
        import minray as ray

        class Point:
            def __init__(self, x):
                self.x = x

        @ray.remote
        def make(x):
            return Point(x)

        ray.init(num_cpus=1)
        print(ray.get(make.remote(4)).x)
        try:
            @ray.remote
            async def later():
                pass
        except ValueError as e:
            print(e)
    """)
    assert out.splitlines() == [
        "4", "'async def' cannot be a remote task (later): only actors' methods may be async. "
             "Run it inside a plain task instead, e.g. return asyncio.run(later(...))"]


def test_a_free_variable_never_bound_fails_in_the_task_as_it_would_locally():
    out = _run("""
        import minray as ray

        def make():
            def use():
                return helper()
            if False:
                helper = None
            return use

        ray.init(num_cpus=1)
        try:
            ray.get(ray.remote(make()).remote())
        except NameError as e:
            print("NameError:", str(e).splitlines()[-1])
    """)
    assert out.startswith("NameError:") and "free variable 'helper'" in out  # as Python says


def test_a_function_from_another_python_version_fails_with_the_reason():
    with pytest.raises(RuntimeError, match=r"cpython-27 driver cannot run in this cpython-\d+ "
                                           r"worker: driver and workers must run the same"):
        functions.make("cpython-27", b"", {}, None)
