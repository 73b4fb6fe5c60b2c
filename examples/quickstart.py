"""Quickstart: 1000 copies of a task, an actor, and a runtime env.

Runs on real Ray too: change the import to `import ray`.
"""

import os

import minray as ray

# ${VAR} expands against the node's environment when workers start.
ray.init(runtime_env={"env_vars": {"GREETING": "hello", "DATA_DIR": "${HOME}/data"}})


@ray.remote
def f(x):
    return x * x


# 1000 copies of f run across the node's worker processes.
squares = ray.get([f.remote(i) for i in range(1000)])
print("sum of 1000 squares:", sum(squares))


@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def increment(self):
        self.n += 1
        return self.n


counter = Counter.remote()
print("counter:", ray.get([counter.increment.remote() for _ in range(5)])[-1])


@ray.remote
def greet():
    return os.environ["GREETING"], os.environ["DATA_DIR"], os.environ.get("LANGUAGE_OF_TASK")


# Each task or actor may add to the job's runtime env; env_vars merge key by key.
print("job env:", ray.get(greet.remote()))
print("task env:", ray.get(greet.options(
    runtime_env={"env_vars": {"LANGUAGE_OF_TASK": "fr"}}).remote()))

ray.shutdown()
