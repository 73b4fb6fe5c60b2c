"""A runtime env per actor: each actor lives in its own worker process, with its own env.

Two instances of one actor class get different settings through `.options(runtime_env=...)`;
whatever an actor starts (tasks it calls) inherits that actor's env.
"""

import minray as ray

import os


@ray.remote
def region_of_a_helper_task():
    return os.environ.get("REGION")


@ray.remote
class Service:
    def __init__(self):
        self.region = os.environ.get("REGION")  # read once, when the actor starts

    def whoami(self):
        return self.region, os.getpid()

    def ask_a_task(self):
        return ray.get(region_of_a_helper_task.remote())  # inherits the actor's env


europe = Service.options(runtime_env={"env_vars": {"REGION": "eu-west"}}).remote()
america = Service.options(runtime_env={"env_vars": {"REGION": "us-east"}}).remote()
(eu_region, eu_pid), (us_region, us_pid) = ray.get([europe.whoami.remote(),
                                                    america.whoami.remote()])
print("first actor's REGION:", eu_region)
print("second actor's REGION:", us_region)
print("each actor has a process of its own:", len({eu_pid, us_pid, os.getpid()}) == 3)
print("a task started by the first actor sees:", ray.get(europe.ask_a_task.remote()))
print("a task started by the driver sees:", ray.get(region_of_a_helper_task.remote()))

ray.shutdown()
