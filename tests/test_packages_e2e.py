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

from minray.exceptions import RayActorError, RuntimeEnvSetupError
from test_conda import make_prefix
from wheels import SilentServer, local, make_wheel, processes_mentioning

PKG = "mr_e2e_pkg"


@pytest.fixture
def wheels(tmp_path):
    one, two = tmp_path / "v1", tmp_path / "v2"
    make_wheel(one, PKG, "1.0", "def version(): return 'one'")
    make_wheel(two, PKG, "2.0", "def version(): return 'two'")
    return one, two


def pip_env(wheel_dir, *packages, **extra):
    return {"pip": {"packages": [*packages], "pip_install_options": local(wheel_dir)}, **extra}


def setup_log():
    from minray import core

    return Path(core.current().setup_log)


def test_tasks_and_actors_in_pip_envs_with_conflicting_versions(ray, wheels):
    one, two = wheels

    @ray.remote
    def version():
        import mr_e2e_pkg

        return mr_e2e_pkg.version(), os.environ.get("VIRTUAL_ENV")

    @ray.remote
    class Holder:
        def version(self):
            import mr_e2e_pkg

            return mr_e2e_pkg.version()

    v1 = version.options(runtime_env=pip_env(one, PKG))
    v2 = version.options(runtime_env={"uv": {"packages": [PKG],
                                             "uv_pip_install_options": local(two)}})
    (a, venv_a), (b, venv_b) = ray.get([v1.remote(), v2.remote()])
    assert (a, b) == ("one", "two") and venv_a != venv_b
    holder = Holder.options(runtime_env=pip_env(one, PKG)).remote()
    assert ray.get(holder.version.remote()) == "one"
    assert importlib.util.find_spec(PKG) is None  # never in the driver


def test_a_failed_install_reaches_get_with_its_reason_and_is_not_retried(ray, wheels):
    bad = pip_env(wheels[0], "mr-no-such-package-anywhere")

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
        with pytest.raises(RuntimeEnvSetupError, match="timed out"):
            ray.get(f.options(runtime_env=env).remote(), timeout=60)
        assert time.monotonic() - start < 30
        assert processes_mentioning(index.url) == []


def test_workers_import_minray_in_an_env_that_does_not_have_it(ray, tmp_path, wheels):
    prefix = make_prefix(tmp_path / "conda-env")  # a bare env: no minray, no cloudpickle
    check = subprocess.run([str(prefix / "bin" / "python"), "-c", "import cloudpickle"],
                           capture_output=True)
    assert check.returncode != 0

    @ray.remote(runtime_env={"conda": str(prefix)})
    def where():
        import minray  # noqa: F401 - importable although not installed in this env

        return sys.prefix

    assert ray.get(where.remote(), timeout=60) == str(prefix)


def test_eager_install_builds_the_job_env_at_init(wheels):
    import minray

    minray.init(num_cpus=1, runtime_env=pip_env(wheels[0], PKG))
    log = setup_log()
    deadline = time.time() + 60
    while not (log.exists() and "building new environment" in log.read_text()):
        assert time.time() < deadline, "the job env was not built after init"
        time.sleep(0.05)
    minray.shutdown()


def test_without_eager_install_the_job_env_waits_for_its_first_task(wheels):
    import minray

    minray.init(num_cpus=1, runtime_env=pip_env(
        wheels[0], PKG, config={"eager_install": False}))
    log = setup_log()
    time.sleep(1)
    assert log.read_text() == ""  # created empty at init; nothing was built

    @minray.remote
    def version():
        import mr_e2e_pkg

        return mr_e2e_pkg.version()

    assert minray.get(version.remote(), timeout=60) == "one"
    assert "building new environment" in log.read_text()
    minray.shutdown()


def test_setup_logs_stream_to_the_driver_when_asked(tmp_path, wheels):
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(f"""
        import minray as ray
        env = {pip_env(wheels[0], PKG)!r}

        @ray.remote(runtime_env=env)
        def version():
            import mr_e2e_pkg
            return mr_e2e_pkg.version()

        print(ray.get(version.remote()))
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env={**os.environ,
                                           "MINRAY_RUNTIME_ENV_LOG_TO_DRIVER_ENABLED": "1"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "one"
    assert "(runtime_env)" in run.stderr and "pip install" in run.stderr
