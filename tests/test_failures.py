"""Failures a user meets: dying workers, bad envs, and no process left behind, ever."""

import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

import minray
from minray.exceptions import RuntimeEnvSetupError, WorkerCrashedError
from procs import gone_within, worker_processes


def test_a_task_that_exits_raises_instead_of_hanging(ray):
    @ray.remote
    def die():
        os._exit(7)

    with pytest.raises(WorkerCrashedError, match="exit code 7"):
        ray.get(die.options(max_retries=0).remote(), timeout=30)
    with pytest.raises(WorkerCrashedError, match="retried 3 time"):  # Ray's default: 3 retries
        ray.get(die.remote(), timeout=60)


def test_a_task_is_retried_when_its_worker_dies(ray, tmp_path):
    marker = tmp_path / "attempts"

    @ray.remote(max_retries=2)
    def flaky():
        with open(marker, "a") as f:
            f.write("x")
        if len(marker.read_text()) < 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return "made it"

    assert ray.get(flaky.remote(), timeout=60) == "made it"
    assert marker.read_text() == "xxx"


def test_bad_runtime_env_fails_at_the_call_site_and_the_session_goes_on(ray):
    @ray.remote
    def f():
        return "ok"

    with pytest.raises(ValueError, match=r"unknown field\(s\) \['env_var'\].*env_vars"):
        f.options(runtime_env={"env_var": {"A": "1"}})
    with pytest.raises(TypeError, match="env_vars"):
        f.options(runtime_env={"env_vars": {"A": 1}})
    with pytest.raises(TypeError, match="runtime_env must be a dict"):
        f.options(runtime_env=["pip"])
    with pytest.raises(ValueError, match="setup_timeout_seconds"):
        f.options(runtime_env={"config": {"setup_timeout_seconds": 0}})
    with pytest.raises(ValueError, match="env_vars"):
        minray.remote(runtime_env={"env_vars": {"A=B": "1"}})(lambda: 1)
    assert ray.get(f.remote()) == "ok"


def test_a_failing_env_raises_setup_error_for_tasks_and_actors_and_is_remembered(ray):
    bad = {"py_executable": "no-such-python-here"}

    @ray.remote
    def f():
        return ray.get_runtime_context().get_job_id()

    @ray.remote
    class A:
        def m(self):
            return 1

    with pytest.raises(RuntimeEnvSetupError, match="no-such-python-here"):
        ray.get(f.options(runtime_env=bad).remote(), timeout=30)
    with pytest.raises(minray.exceptions.RayActorError, match="no-such-python-here"):
        ray.get(A.options(runtime_env=bad).remote().m.remote(), timeout=30)
    with pytest.raises(RuntimeEnvSetupError, match="no-such-python-here"):
        ray.get(f.options(runtime_env=bad).remote(), timeout=30)
    job_id = ray.get_runtime_context().get_job_id()
    assert re.fullmatch(r"[0-9a-f]{8}", job_id)  # Ray's format: a 4-byte JobID in hex
    assert ray.get(f.remote()) == job_id  # the session still runs tasks, in the driver's job


def test_a_worker_that_cannot_start_is_a_setup_error(ray, tmp_path):
    wrapper = tmp_path / "broken.sh"
    wrapper.write_text("#!/bin/sh\necho 'wrapper refuses' >&2\nexit 3\n")
    wrapper.chmod(0o755)

    @ray.remote
    def f():
        return 1

    with pytest.raises(RuntimeEnvSetupError, match="exit code 3"):
        ray.get(f.options(runtime_env={"py_executable": str(wrapper)}).remote(), timeout=30)


def _spawned_pids(ray) -> list[int]:
    """Worker pids of tasks, an actor, and a grandchild process started by a task."""

    @ray.remote
    def pid():
        return os.getpid()

    @ray.remote
    def spawn():
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]).pid

    @ray.remote
    class A:
        def pid(self):
            return os.getpid()

    a = A.remote()
    _spawned_pids.actor = a  # an actor lives while a handle to it does
    return [*ray.get([pid.remote() for _ in range(4)]), ray.get(a.pid.remote()),
            ray.get(spawn.remote())]


def test_shutdown_leaves_no_process_behind():
    minray.init(num_cpus=2)
    pids = _spawned_pids(minray)
    assert len(worker_processes(set(pids))) == len(set(pids))
    minray.shutdown()
    assert gone_within(pids, 5) == []


DRIVER = textwrap.dedent("""
    import os, subprocess, sys, time
    import minray as ray
    ray.init(num_cpus=2)

    @ray.remote
    def pid():
        return os.getpid()

    @ray.remote
    def busy():
        time.sleep(600)

    @ray.remote
    class A:
        def pid(self):
            return os.getpid()

    a = A.remote()
    busy.remote()
    print(*ray.get([pid.remote(), a.pid.remote()]), flush=True)
    time.sleep(600)
""")


def test_workers_exit_when_the_driver_is_killed_with_sigkill(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in driver.stdout.readline().split()]
        import psutil

        children = [p.pid for p in psutil.Process(driver.pid).children(recursive=True)]
        assert set(pids) <= set(children) and len(children) >= 3  # incl. the busy worker
    finally:
        driver.kill()
        driver.wait()
    assert gone_within(children, 10) == []
