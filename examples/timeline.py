"""See what ran where and when: the timeline of a few tasks in three runtime envs.

`ray.timeline("timeline.json")` writes the session's events in Chrome trace format: open the
file in https://ui.perfetto.dev or chrome://tracing. Here the trace also shows each env's
preparation (per field: venv, install, ...), worker starts, the time tasks waited for a CPU,
and blocked gets; the command line's `timeline timeline.json --html timeline.html` draws it as
a page for a slide, which this script does too (Ray has no such command: skipped there).
"""

import minray as ray

import importlib
import json
import os
import tempfile
import time

from _make_wheel import make_wheel

wheels = tempfile.mkdtemp()
greeter = make_wheel(wheels, "greeter", "1.0", "def hello():\n    return 'hello from pip'")

ray.init(num_cpus=2)


@ray.remote
def step(i):
    time.sleep(0.1)
    return os.environ.get("STAGE", "plain")


@ray.remote(runtime_env={"pip": [greeter]})
def greet():
    import greeter

    time.sleep(0.1)
    return greeter.hello()


@ray.remote
def pipeline():
    """A task that waits for others: its blocked get shows inside its span."""
    stages = step.options(runtime_env={"env_vars": {"STAGE": "etl"}})
    return ray.get([stages.remote(i) for i in range(3)])


plain = [step.remote(i) for i in range(4)]  # 4 tasks, 2 CPUs: two of them wait for a CPU
print("plain tasks:", ray.get(plain))
print("tasks in an env_vars env, from a task:", ray.get(pipeline.remote()))
print("a task in a pip env:", ray.get(greet.remote()))

ray.timeline("timeline.json")
with open("timeline.json") as f:
    events = json.load(f)
print("the trace is a list of events:", isinstance(events, list))
print("trace written to timeline.json: open it in https://ui.perfetto.dev or chrome://tracing")

try:  # the command line's module draws the trace; Ray has none, so this part is skipped
    cli = importlib.import_module(f"{ray.__name__}.cli")
except ImportError:
    cli = None
if cli is not None:
    cli.main(["timeline", "timeline.json", "--html", "timeline.html"])

ray.shutdown()
