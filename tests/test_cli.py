"""The minray command: job submit with a runtime env, and the env cache commands."""

import json
import subprocess
import sys
import textwrap

import runtime_env as renv
from cache_helpers import published_by_an_exited_process

DRIVER = textwrap.dedent("""
    import os
    import minray as ray
    ray.init(runtime_env={"env_vars": {"FROM_INIT": "init"}})

    @ray.remote
    def read():
        return os.environ.get("FROM_JOB"), os.environ.get("FROM_INIT")

    print("driver sees", os.environ.get("FROM_JOB"))
    print("task sees", *ray.get(read.remote()))
""")


def minray_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "minray.cli", *args], capture_output=True,
                          text=True, timeout=120, **kwargs)


def submit_driver(tmp_path, job_env: dict):
    """`minray job submit` of DRIVER with this job runtime_env."""
    script = tmp_path / "job.py"
    script.write_text(DRIVER)
    return minray_cli("job", "submit", "--runtime-env-json", json.dumps(job_env), "--",
                      sys.executable, str(script))


def test_job_submit_runs_the_entrypoint_in_the_job_env(tmp_path):
    out = submit_driver(tmp_path, {"env_vars": {"FROM_JOB": "job"}})
    assert out.returncode == 0, out.stderr
    assert "driver sees job" in out.stdout and "task sees job init" in out.stdout


def test_job_and_init_envs_that_conflict_are_an_error(tmp_path):
    out = submit_driver(tmp_path, {"env_vars": {"FROM_INIT": "job's value"}})
    assert out.returncode == 1 and "MINRAY_OVERRIDE_JOB_RUNTIME_ENV" in out.stdout  # the job's
    assert "failed: the entrypoint exited with code 1" in out.stderr  # minray's own line


def test_job_submit_rejects_a_bad_env_before_running_anything(tmp_path):
    marker = tmp_path / "ran"
    out = minray_cli("job", "submit", "--runtime-env-json", '{"env_var": {}}', "--",
                     sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    assert out.returncode == 2 and "unknown field" in out.stderr and not marker.exists()


def test_env_list_explain_and_gc(isolated_cache):
    assert "no cached environments" in minray_cli("env", "list").stdout
    published_by_an_exited_process(isolated_cache.root, "working_dir", "abc123")
    listing = minray_cli("env", "list").stdout
    assert "working_dir" in listing and "abc123" in listing and "4.0 KiB" in listing
    explained = minray_cli("env", "explain", '{"env_vars": {"A": "1"}}').stdout
    assert f'env {renv.parse({"env_vars": {"A": "1"}}).env_hash()[:12]} ' in explained
    gc = minray_cli("env", "gc", "--max-size-gb", "0").stdout
    assert "1 entry removed" in gc
    assert not isolated_cache.path("working_dir", "abc123").exists()
    assert isolated_cache.entries() == []
