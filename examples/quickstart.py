"""Quickstart: 1000 tasks, an actor, a job's runtime env, and a pip env built once, then reused.

Run it: python examples/quickstart.py
On a Ray cluster: change the import below to `import ray`; nothing else changes.
"""

import minray as ray

import os
import sys
import tempfile
import time

from _make_wheel import make_wheel

# The job's runtime env applies to every task and actor of this script.
# ${VAR} expands against the node's environment when workers start.
ray.init(runtime_env={"env_vars": {"GREETING": "hello", "DATA_DIR": "${HOME}/data"}})


@ray.remote
def square(x):
    return x * x


# 1000 tasks spread over the node's worker processes.
squares = ray.get([square.remote(i) for i in range(1000)])
print("sum of 1000 squares:", sum(squares))


@ray.remote
class Counter:
    """An actor: one worker process that keeps its state between calls."""

    def __init__(self):
        self.n = 0

    def increment(self):
        self.n += 1
        return self.n


counter = Counter.remote()
print("counter after 5 calls:", ray.get([counter.increment.remote() for _ in range(5)])[-1])


@ray.remote
def greet():
    return os.environ["GREETING"], os.environ["DATA_DIR"] == os.environ["HOME"] + "/data"


print("job env (GREETING, DATA_DIR expanded):", ray.get(greet.remote()))

# A pip env: packages installed into a virtualenv for the tasks that ask for it.
# The package is a wheel built here, so no package index is needed.
wheel = make_wheel(tempfile.mkdtemp(), "quick_hello", "1.0", "WORD = 'hi from a pip env'")


@ray.remote(runtime_env={"pip": [wheel]})
def use_package():
    import quick_hello  # installed only in this task's env, not in the driver

    return quick_hello.WORD, sys.prefix


start = time.time()
word, first_env = ray.get(use_package.remote())
print(f"pip env built, first task: {word}  # took {time.time() - start:.2f} s")

# The same env again: its virtualenv is reused, nothing is installed a second time.
start = time.time()
word, second_env = ray.get(use_package.remote())
print(f"same pip env, second task: {word}  # took {time.time() - start:.2f} s")
print("both tasks ran in the same virtualenv:", first_env == second_env)

ray.shutdown()
