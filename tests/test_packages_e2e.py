"""Package envs as a minray user meets them: tasks and actors in pip/uv/conda envs, failures
that reach `get`, timeouts, eager install and setup logs."""

import importlib.util
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from minray import core
from minray.exceptions import RayActorError, RuntimeEnvSetupError
from procs import processes_mentioning, wait_for
from wheels import DEMO, SilentServer, local, make_prefix


def pip_env(wheel_dir, *packages, **extra):
    return {"pip": {"packages": [*packages], "pip_install_options": local(wheel_dir)}, **extra}


def setup_log():
    return Path(core.current().setup_log)


def test_tasks_and_actors_in_pip_envs_with_conflicting_versions(ray, two_versions):
    one, two = two_versions

    @ray.remote
    def value():
        import mr_demo_pkg

        return mr_demo_pkg.VALUE, os.environ.get("VIRTUAL_ENV")

    @ray.remote
    class Holder:
        def value(self):
            import mr_demo_pkg

            return mr_demo_pkg.VALUE

    v1 = value.options(runtime_env=pip_env(one, DEMO))
    v2 = value.options(runtime_env={"uv": {"packages": [DEMO],
                                           "uv_pip_install_options": local(two)}})
    (a, venv_a), (b, venv_b) = ray.get([v1.remote(), v2.remote()])
    assert (a, b) == ("one", "two") and venv_a != venv_b
    holder = Holder.options(runtime_env=pip_env(one, DEMO)).remote()
    assert ray.get(holder.value.remote()) == "one"
    assert importlib.util.find_spec(DEMO) is None  # never in the driver


def test_a_failed_install_reaches_get_with_its_reason_and_is_not_retried(ray, wheel_dir):
    bad = pip_env(wheel_dir, "mr-no-such-package-anywhere")

    @ray.remote
    def f():
        return 1

    @ray.remote
    class A:
        def m(self):
            return 1

    with pytest.raises(RuntimeEnvSetupError) as info:
        ray.get(f.options(runtime_env=bad).remote(), timeout=60)
    message = str(info.value)
    assert "field 'pip'" in message and "mr-no-such-package-anywhere" in message
    assert "command:" in message and "install" in message
    log = setup_log()
    assert f"full setup log: {log}" in message and "mr-no-such-package-anywhere" in log.read_text()
    with pytest.raises(RayActorError, match="mr-no-such-package-anywhere"):
        ray.get(A.options(runtime_env=bad).remote().m.remote(), timeout=60)
    with pytest.raises(RuntimeEnvSetupError):
        ray.get(f.options(runtime_env=bad).remote(), timeout=60)
    installs = [line for line in log.read_text().splitlines()
                if "$ " in line and " install " in line]
    assert len(installs) == 1  # the known-bad env failed at once the second and third time
    assert ray.get(f.remote()) == 1


def test_setup_timeout_stops_a_hung_install_and_says_so(ray):
    @ray.remote
    def f():
        return 1

    with SilentServer() as index:
        env = {"pip": {"packages": ["anything"],
                       "pip_install_options": ["--index-url", index.url]},
               "config": {"setup_timeout_seconds": 2}}
        start = time.monotonic()
        with pytest.raises(RuntimeEnvSetupError, match="timed out.*setup_timeout_seconds"):
            ray.get(f.options(runtime_env=env).remote(), timeout=60)
        assert time.monotonic() - start < 30
        assert processes_mentioning(index.url) == []


def test_workers_import_minray_in_an_env_that_does_not_have_it(ray, tmp_path):
    prefix = make_prefix(tmp_path / "conda-env")  # a bare env: no minray, no cloudpickle
    check = subprocess.run([str(prefix / "bin" / "python"), "-c", "import cloudpickle"],
                           capture_output=True)
    assert check.returncode != 0

    @ray.remote(runtime_env={"conda": str(prefix)})
    def where():
        import minray  # noqa: F401 - importable although not installed in this env

        return sys.prefix

    assert ray.get(where.remote(), timeout=60) == str(prefix)


def test_eager_install_builds_the_job_env_at_init(wheel_dir):
    import minray

    minray.init(num_cpus=1, runtime_env=pip_env(wheel_dir, DEMO))
    log = setup_log()
    wait_for(lambda: log.exists() and "building new environment" in log.read_text(),
             "the job env to be built after init (no task was submitted)")
    minray.shutdown()


def test_without_eager_install_the_job_env_waits_for_its_first_task(wheel_dir):
    import minray

    minray.init(num_cpus=1, runtime_env=pip_env(
        wheel_dir, DEMO, config={"eager_install": False}))
    log = setup_log()
    # init starts an eager build before it returns; nothing was started, nothing was built
    assert not core.current().job_env.preparing and log.read_text() == ""

    @minray.remote
    def value():
        import mr_demo_pkg

        return mr_demo_pkg.VALUE

    assert minray.get(value.remote(), timeout=60) == "one"
    assert "building new environment" in log.read_text()
    minray.shutdown()


def test_setup_logs_stream_to_the_driver_when_asked(tmp_path, wheel_dir):
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(f"""
        import minray as ray
        env = {pip_env(wheel_dir, DEMO)!r}

        @ray.remote(runtime_env=env)
        def value():
            import mr_demo_pkg
            return mr_demo_pkg.VALUE

        print(ray.get(value.remote()))
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env={**os.environ,
                                           "MINRAY_RUNTIME_ENV_LOG_TO_DRIVER_ENABLED": "1"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "one"
    assert "(runtime_env)" in run.stderr and "pip install" in run.stderr
