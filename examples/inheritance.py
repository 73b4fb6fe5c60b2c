"""Inheritance: a job's runtime env flows to its tasks, and a task's env to its nested tasks.

A child's env overrides its parent's field by field, except `env_vars`, which merge key by
key: the child keeps the parent's variables and adds or replaces its own.
"""

import minray as ray

import os

ray.init(runtime_env={"env_vars": {"LEVEL": "job", "OWNER": "job"}})


@ray.remote
def describe():
    return {name: os.environ.get(name) for name in ["LEVEL", "OWNER", "STEP"]}


@ray.remote
def parent():
    # Nested tasks start from this task's env, not from the job's.
    inherited = ray.get(describe.remote())
    overridden = ray.get(describe.options(
        runtime_env={"env_vars": {"STEP": "nested"}}).remote())
    return inherited, overridden


print("task with the job's env:", ray.get(describe.remote()))

own_env = {"env_vars": {"LEVEL": "task", "STEP": "parent"}}
inherited, overridden = ray.get(parent.options(runtime_env=own_env).remote())
print("nested task, inheriting its parent's env:", inherited)
print("nested task, with an env of its own:", overridden)

ray.shutdown()
