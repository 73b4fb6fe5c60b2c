"""When an env cannot be set up: catch `RuntimeEnvSetupError` for a task and for an actor.

A runtime env that cannot be built (here: a package that exists nowhere) does not hang or
crash the driver: `get` raises `RuntimeEnvSetupError`, whose message holds the installer's
error, and the rest of the job goes on.
"""

import minray as ray

# `--no-index` keeps pip from searching an index: the install fails at once, offline.
broken_env = {"pip": {"packages": ["no-such-package-anywhere"],
                      "pip_install_options": ["--no-index"]}}


@ray.remote
def task():
    return "ran"


@ray.remote
class Actor:
    def ping(self):
        return "answered"


try:
    ray.get(task.options(runtime_env=broken_env).remote())
except ray.exceptions.RuntimeEnvSetupError as error:
    print("task: caught RuntimeEnvSetupError")
    print("task: the message names the package:", "no-such-package-anywhere" in str(error))

actor = Actor.options(runtime_env=broken_env).remote()
try:
    ray.get(actor.ping.remote())
except ray.exceptions.RuntimeEnvSetupError as error:
    print("actor: caught RuntimeEnvSetupError")
    print("actor: the message names the package:", "no-such-package-anywhere" in str(error))

# The rest of the job goes on: the same task and actor without the broken env work.
print("the same task without the broken env:", ray.get(task.remote()))
print("the same actor without the broken env:", ray.get(Actor.remote().ping.remote()))

ray.shutdown()
