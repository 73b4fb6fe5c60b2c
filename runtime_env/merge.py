"""How runtime envs combine: a child inherits from its parent, a driver from its job."""

from __future__ import annotations

import os

from runtime_env.spec import RuntimeEnv

OVERRIDE_VARS = ("MINRAY_OVERRIDE_JOB_RUNTIME_ENV", "RAY_OVERRIDE_JOB_RUNTIME_ENV")


def inherit(parent: RuntimeEnv, child: RuntimeEnv) -> RuntimeEnv:
    """The env of a task or actor: the child's fields override the parent's, field by field,
    except `env_vars`, which merge key by key (the child wins on a clash)."""
    if not child:
        return parent
    merged = {**parent, **child}
    if "env_vars" in parent and "env_vars" in child:
        merged["env_vars"] = {**parent["env_vars"], **child["env_vars"]}
    return RuntimeEnv(_validate=False, **merged)


def merge_job(job: RuntimeEnv, driver: RuntimeEnv) -> RuntimeEnv:
    """The env of a driver started by `minray job submit` that also passes one to `init`.

    Fields must not conflict, unless MINRAY_OVERRIDE_JOB_RUNTIME_ENV=1 (or Ray's
    RAY_OVERRIDE_JOB_RUNTIME_ENV=1), when the driver's env is inherited from the job's.
    """
    if any(os.environ.get(v) == "1" for v in OVERRIDE_VARS):
        return inherit(job, driver)
    merged = dict(job)
    for key, value in driver.items():
        if key == "env_vars" and "env_vars" in job:
            clash = {k for k in value if k in job["env_vars"] and job["env_vars"][k] != value[k]}
            if clash:
                raise ValueError(_conflict(f"env_vars {sorted(clash)}"))
            merged["env_vars"] = {**job["env_vars"], **value}
        elif key in job and job[key] != value:
            raise ValueError(_conflict(f"field '{key}'"))
        else:
            merged[key] = value
    return RuntimeEnv(_validate=False, **merged)


def _conflict(what: str) -> str:
    return (f"runtime_env of the job and of init() conflict on {what}; set "
            f"MINRAY_OVERRIDE_JOB_RUNTIME_ENV=1 to let init()'s values win")
