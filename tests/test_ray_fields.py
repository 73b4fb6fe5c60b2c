"""Ray's runtime_env fields beyond the packaging ones: worker_process_setup_hook runs in every
worker before any task; image_uri, container and nsight are recognised and answered with what
to do instead; Ray's stricter validation rules hold."""

from __future__ import annotations

import os

import pytest

import minray
from minray.exceptions import ActorDiedError, RuntimeEnvSetupError
from runtime_env import RuntimeEnv, RuntimeEnvConfig


def _mark_worker():
    os.environ["SET_UP_BY_HOOK"] = str(os.getpid())


def _broken_hook():
    raise RuntimeError("the hook could not reach its config")


@minray.remote
def hook_mark():
    return os.environ.get("SET_UP_BY_HOOK"), str(os.getpid())


def test_a_callable_hook_runs_in_each_worker_before_its_tasks():
    minray.init(num_cpus=2, runtime_env={"worker_process_setup_hook": _mark_worker})
    marks = minray.get([hook_mark.remote() for _ in range(4)], timeout=60)
    assert all(mark == pid for mark, pid in marks)  # set in that very worker


def test_a_hook_named_module_function_is_imported_in_the_worker(ray, tmp_path):
    (tmp_path / "myhooks.py").write_text(
        "import os\n\ndef setup():\n    os.environ['SET_UP_BY_HOOK'] = str(os.getpid())\n")
    env = {"working_dir": str(tmp_path), "worker_process_setup_hook": "myhooks.setup"}
    mark, pid = ray.get(hook_mark.options(runtime_env=env).remote(), timeout=60)
    assert mark == pid


def test_a_failing_hook_is_a_runtime_env_setup_error_with_its_reason(ray):
    env = {"worker_process_setup_hook": _broken_hook}
    with pytest.raises(RuntimeEnvSetupError, match="the hook could not reach its config"):
        ray.get(hook_mark.options(runtime_env=env).remote(), timeout=60)

    @ray.remote
    class A:
        def ping(self):
            return 1

    with pytest.raises(RuntimeEnvSetupError) as info:
        ray.get(A.options(runtime_env=env).remote().ping.remote(), timeout=60)
    assert isinstance(info.value, ActorDiedError)
    assert ray.get(hook_mark.remote(), timeout=60)[0] is None  # other envs go on


@pytest.mark.parametrize("hook, error", [
    ("not a name", "'module.function' name"),
    (42, "must be a callable"),
])
def test_a_bad_hook_fails_where_given(hook, error):
    with pytest.raises((TypeError, ValueError), match=error):
        RuntimeEnv(worker_process_setup_hook=hook)


@pytest.mark.parametrize("field, value, advice", [
    ("image_uri", "docker.io/me/img:1", "runs no containers"),
    ("container", {"image": "me/img:1"}, "runs no containers"),
    ("nsight", "default", "py_executable"),
])
def test_rays_container_and_profiler_fields_say_what_to_do_instead(field, value, advice):
    with pytest.raises(ValueError, match=f"field '{field}' is Ray's, but .*{advice}"):
        RuntimeEnv(**{field: value})

    @minray.remote
    def f():
        return 1

    with pytest.raises(ValueError, match="is Ray's"):
        f.options(runtime_env={field: value})


def test_rays_validation_rules():
    assert dict(RuntimeEnv(excludes=[])) == {}  # an empty excludes is dropped
    with pytest.raises(TypeError, match="must be an int"):
        RuntimeEnvConfig(setup_timeout_seconds=1.5)
    assert RuntimeEnvConfig(setup_timeout_seconds=30)["setup_timeout_seconds"] == 30
