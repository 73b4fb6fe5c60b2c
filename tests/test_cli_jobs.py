"""`minray job` through the real command, and `JobSubmissionClient`: jobs that outlive the
shell that submitted them, logs that follow, stop and Ctrl-C that leave no process behind."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from auth_index import GatedIndex
from cache_helpers import minray_cli, process_env
from minray.job_submission import JobStatus, JobSubmissionClient
from procs import alive, processes_mentioning, wait_for
from runtime_env.processes import marked
from wheels import DEMO, demo_wheel

# A job that prints, starts a child and a detached daemon, and waits for the test's gate file.
HELD_JOB = textwrap.dedent("""
    import os, subprocess, sys, time
    gate = sys.argv[1]
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                     start_new_session=True)  # detached: not in the job's process tree
    print("job started", os.environ.get("FROM_ENV"), flush=True)
    while not os.path.exists(gate):
        time.sleep(0.01)
    print("job done", flush=True)
""")


@pytest.fixture
def held_job(tmp_path):
    script = tmp_path / "held.py"
    script.write_text(HELD_JOB)
    return script, tmp_path / "gate"


def job_processes(job_id: str) -> list:
    """The job's processes, as psutil processes (for procs.alive)."""
    found = []
    for p in marked("MINRAY_JOB_SUBMISSION_ID", job_id, exact=True):
        try:
            found.append(psutil.Process(p.pid))
        except psutil.NoSuchProcess:
            pass
    return found


def submitted_id(stderr: str) -> str:
    return stderr.split("minray: job ", 1)[1].split()[0]


def test_submit_waits_and_exits_with_the_entrypoints_code(tmp_path):
    out = minray_cli("job", "submit", "--runtime-env-json", '{"env_vars": {"X": "41"}}', "--",
                     sys.executable, "-c", "import os, sys; print(int(os.environ['X']) + 1); "
                                           "sys.exit(3)")
    assert out.returncode == 3 and out.stdout == "42\n"
    job_id = submitted_id(out.stderr)
    assert "minray: logs: " in out.stderr and job_id in out.stderr
    assert f"job {job_id} failed: the entrypoint exited with code 3" in out.stderr
    status = minray_cli("job", "status", job_id, "--json")
    assert json.loads(status.stdout)["status"] == "FAILED"


def test_no_wait_job_outlives_the_cli_and_its_logs_follow_it(held_job, tmp_path):
    script, gate = held_job
    env = tmp_path / "re.yaml"
    env.write_text("env_vars:\n  FROM_ENV: from-yaml\n")
    out = minray_cli("job", "submit", "--no-wait", "--runtime-env", str(env),
                     "--submission-id", "held-1", "--", "python", str(script), str(gate))
    assert out.returncode == 0 and "minray job logs --follow held-1" in out.stderr
    assert out.stdout == "held-1\n"  # the id alone, for a script to capture
    wait_for(lambda: "job started" in minray_cli("job", "logs", "held-1").stdout,
             "the job to start, with its CLI gone")
    assert json.loads(minray_cli("job", "status", "held-1", "--json").stdout)["status"] == \
        "RUNNING"
    assert "held-1" in minray_cli("job", "list").stdout
    follow = subprocess.Popen([sys.executable, "-m", "minray.cli", "job", "logs", "--follow",
                               "held-1"], env=process_env(), stdout=subprocess.PIPE, text=True)
    assert follow.stdout.readline() == "job started from-yaml\n"
    gate.touch()
    rest, _ = follow.communicate(timeout=120)
    assert follow.returncode == 0 and rest == "job done\n"
    assert minray_cli("job", "status", "held-1").stdout.startswith("job held-1: SUCCEEDED")
    again = minray_cli("job", "submit", "--no-wait", "--submission-id", "held-1", "--", "true")
    assert again.returncode == 2 and "already exists" in again.stderr
    for p in job_processes("held-1"):  # the job's daemons outlive a job that ended by itself
        p.kill()


def test_stop_ends_the_jobs_whole_tree_and_what_it_detached(held_job):
    script, gate = held_job
    minray_cli("job", "submit", "--no-wait", "--submission-id", "to-stop", "--",
               sys.executable, str(script), str(gate))
    wait_for(lambda: len(job_processes("to-stop")) >= 4, "the job, its child and its daemon")
    procs = job_processes("to-stop")
    follow = subprocess.Popen([sys.executable, "-m", "minray.cli", "job", "logs", "--follow",
                               "to-stop"], env=process_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert follow.stdout.readline() == "job started None\n"
    follow.send_signal(signal.SIGINT)  # Ctrl-C stops following, not the job
    _, said = follow.communicate(timeout=60)
    assert follow.returncode == 130 and said == ("minray: stopped following; job to-stop runs "
                                                 "on (minray job stop to-stop stops it)\n")
    assert alive(procs) == procs
    out = minray_cli("job", "stop", "to-stop")
    assert out.returncode == 0 and out.stdout.strip() == "job to-stop: STOPPED"
    wait_for(lambda: not alive(procs), "every process of the job to end")
    assert job_processes("to-stop") == []
    assert "had already ended" in minray_cli("job", "stop", "to-stop").stdout


def test_ctrl_c_stops_the_job_once_and_exits_130(held_job):
    script, gate = held_job
    cli = subprocess.Popen([sys.executable, "-m", "minray.cli", "job", "submit",
                            "--submission-id", "interrupted", "--", sys.executable, str(script),
                            str(gate)], env=process_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    assert cli.stdout.readline().startswith("job started")
    procs = job_processes("interrupted")
    cli.send_signal(signal.SIGINT)
    said = [cli.stderr.readline() for _ in range(3)]
    assert said[2] == "minray: stopping job interrupted ...\n"
    cli.send_signal(signal.SIGINT)  # pressed again while the job stops: no second stop
    out, err = cli.communicate(timeout=120)
    err = "".join(said) + err
    assert cli.returncode == 130 and "Traceback" not in err
    assert err.count("stopping job interrupted") == 1
    assert err.strip().endswith("minray: job interrupted stopped")
    wait_for(lambda: not alive(procs), "every process of the job to end")


def test_ctrl_c_while_the_env_builds_leaves_no_installer_and_no_job(tmp_path):
    wheels = tmp_path / "wheels"
    demo_wheel(wheels, "1.0", "never installed")
    index = GatedIndex(wheels)  # the install waits here until the test is done
    try:
        spec = {"pip": {"packages": [DEMO], "pip_install_options": ["--no-index",
                                                                    "--find-links", index.url]}}
        cli = subprocess.Popen([sys.executable, "-m", "minray.cli", "job", "submit",
                                "--runtime-env-json", json.dumps(spec), "--submission-id",
                                "never-started", "--", "true"],
                               env={**process_env(), "MINRAY_PROGRESS_AFTER_SECONDS": "0"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: index.requests, "the installer to ask the index")
        installers = processes_mentioning(index.url)
        assert installers
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=120)
    finally:
        index.close()
    assert cli.returncode == 130 and "Traceback" not in err
    assert err.startswith("minray: preparing env ")  # submit shows the env's progress
    assert "(pip: 1 package) interrupted after " in err
    assert err.strip().splitlines()[-1] == ("minray: interrupted while preparing the runtime "
                                            "env; no job was started")
    wait_for(lambda: not alive(installers), "the installer to be killed")
    assert "no job with submission id 'never-started'" in minray_cli(
        "job", "status", "never-started").stderr


@pytest.fixture
def gated(tmp_path):
    """A runtime env whose pip install waits at an index until the test opens its gate."""
    wheels = tmp_path / "wheels"
    demo_wheel(wheels, "1.0", "from the gated index")
    index = GatedIndex(wheels)
    spec = {"pip": {"packages": [DEMO], "pip_install_options": ["--no-index", "--find-links",
                                                                index.url]}}
    yield index, json.dumps(spec)
    index.close()


def submit_no_wait(spec: str, submission_id: str, *entrypoint: str) -> None:
    """`job submit --no-wait`, progress shown at once (the job's supervisor inherits that)."""
    out = subprocess.run([sys.executable, "-m", "minray.cli", "job", "submit", "--no-wait",
                          "--runtime-env-json", spec, "--submission-id", submission_id, "--",
                          *entrypoint], capture_output=True, text=True, timeout=120,
                         env={**process_env(), "MINRAY_PROGRESS_AFTER_SECONDS": "0"})
    assert out.returncode == 0, out.stderr


def status_of(job_id: str) -> str:
    return json.loads(minray_cli("job", "status", job_id, "--json").stdout)["status"]


def test_a_no_wait_job_prepares_its_env_with_progress_in_its_log(gated):
    index, spec = gated
    submit_no_wait(spec, "slow-env", "python", "-c", f"import {DEMO}; print({DEMO}.VALUE)")
    wait_for(lambda: index.requests, "the job's installer to ask the index")
    assert status_of("slow-env") == "PENDING"
    logged = minray_cli("job", "logs", "slow-env").stdout
    assert logged.startswith("minray: preparing env ") and "(pip: 1 package); log: " in logged
    listing = minray_cli("job", "list").stdout.splitlines()
    row = next(line for line in listing if line.startswith("slow-env "))
    assert row[listing[0].index("STATUS"):].startswith("PENDING ")  # the columns line up
    index.gate.set()
    follow = minray_cli("job", "logs", "--follow", "slow-env")
    assert follow.returncode == 0
    assert follow.stdout.endswith("(pip: 1 package) ready in " + follow.stdout.split(
        "ready in ")[1].split("\n")[0] + "\nfrom the gated index\n")
    assert status_of("slow-env") == "SUCCEEDED"


def test_stop_no_wait_while_the_env_builds_leaves_no_installer(gated):
    index, spec = gated
    submit_no_wait(spec, "stop-in-setup", "true")
    wait_for(lambda: index.requests, "the job's installer to ask the index")
    installers = processes_mentioning(index.url)
    assert installers
    out = minray_cli("job", "stop", "--no-wait", "stop-in-setup")
    assert out.returncode == 0 and out.stdout == "job stop-in-setup: stop requested\n"
    wait_for(lambda: status_of("stop-in-setup") == "STOPPED", "the job to stop")
    wait_for(lambda: not alive(installers), "the installer to be killed")
    assert "stopped on request" in minray_cli("job", "status", "stop-in-setup").stdout
    logged = minray_cli("job", "logs", "stop-in-setup").stdout  # a stop, not a failed env
    assert "(pip: 1 package) interrupted after " in logged and "failed" not in logged


@pytest.mark.parametrize("entrypoint, says", [
    (["no-such-command", "--flag"], "entrypoint command 'no-such-command' not found"),
    (["./missing.sh"], "entrypoint program './missing.sh' does not exist"),
])
def test_an_entrypoint_that_does_not_exist_is_one_line(entrypoint, says):
    out = minray_cli("job", "submit", "--", *entrypoint)
    assert out.returncode == 127 and out.stderr.startswith(f"minray: {says}")
    assert len(out.stderr.strip().splitlines()) == 1 and out.stdout == ""


@pytest.mark.parametrize("args, says", [
    (["--address", "ray://10.1.2.3:10001"], "use Ray itself"),
    (["--address", "http://head.example:8265"], "use Ray itself"),
    (["--entrypoint-num-cpus", "4096"], "more than this machine's"),
    (["--entrypoint-num-gpus", "1"], "CPUs only"),
    (["--runtime-env-json", '{"pip": "requests"}'], "give a list: {'pip': ['requests']}"),
])
def test_submit_refuses_what_cannot_run_here(tmp_path, args, says):
    marker = tmp_path / "ran"
    out = minray_cli("job", "submit", *args, "--", "touch", str(marker))
    assert out.returncode == 2 and says in out.stderr and not marker.exists()


def test_submit_takes_rays_flags_for_the_local_node(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "data.txt").write_text("from the working dir")
    out = minray_cli("job", "submit", "--address", "http://127.0.0.1:8265",
                     "--working-dir", str(project), "--entrypoint-num-cpus", "1",
                     "--submission-id", "flags", "--", "cat data.txt && echo ' ok'")
    assert out.returncode == 0 and out.stdout == "from the working dir ok\n"
    info = json.loads(minray_cli("job", "status", "flags", "--json").stdout)
    assert info["entrypoint_num_cpus"] == 1.0
    assert info["runtime_env"]["working_dir"].startswith("minray-pkg://working_dir/")


def test_job_submission_client_runs_a_job_as_on_a_cluster(tmp_path):
    client = JobSubmissionClient("http://127.0.0.1:8265")
    gate = tmp_path / "gate"
    job_id = client.submit_job(
        entrypoint=f"python -c \"import os, time\nprint(os.environ['WHO'], flush=True)\n"
                   f"while not os.path.exists({str(gate)!r}): time.sleep(0.01)\"",
        runtime_env={"env_vars": {"WHO": "client"}}, metadata={"owner": "ci"})
    wait_for(lambda: client.get_job_status(job_id) == JobStatus.RUNNING, "the job to run")

    async def tail() -> str:
        seen = ""
        async for lines in client.tail_job_logs(job_id):
            seen += lines
            if "client" in seen:
                gate.touch()
        return seen

    assert asyncio.run(tail()) == "client\n"
    info = client.get_job_info(job_id)
    assert info.status is JobStatus.SUCCEEDED and info.status.is_terminal()
    assert info.metadata == {"owner": "ci"} and info.driver_exit_code == 0
    assert info.end_time >= info.start_time > 0
    assert client.get_job_logs(job_id) == "client\n"
    assert job_id in [j.submission_id for j in client.list_jobs()]
    assert client.stop_job(job_id) is False  # it had ended
    assert client.delete_job(job_id) is True
    with pytest.raises(RuntimeError, match="no job with submission id"):
        client.get_job_status(job_id)


def test_client_stop_and_a_remote_address():
    with pytest.raises(ValueError, match="use Ray itself"):
        JobSubmissionClient("ray://10.0.0.5:10001")
    client = JobSubmissionClient()
    job_id = client.submit_job(entrypoint="sleep 600")
    wait_for(lambda: client.get_job_status(job_id) == JobStatus.RUNNING, "the job to run")
    assert client.stop_job(job_id) is True
    wait_for(lambda: client.get_job_status(job_id) == JobStatus.STOPPED, "the job to stop")
    assert job_processes(job_id) == []


def test_a_job_whose_env_fails_says_why(tmp_path):
    client = JobSubmissionClient()
    job_id = client.submit_job(entrypoint="true", runtime_env={"pip": {
        "packages": ["no-such-package-xyz"], "pip_install_options": ["--no-index"]}})
    wait_for(lambda: client.get_job_status(job_id).is_terminal(), "the job to end")
    info = client.get_job_info(job_id)
    assert info.status is JobStatus.FAILED and "runtime env setup failed" in info.message
    assert info.error_type == "RUNTIME_ENV_SETUP_FAILED"
    assert client.get_job_logs(job_id).endswith(f"minray: the job failed: {info.message}\n")


def test_a_no_wait_job_whose_entrypoint_does_not_exist_says_so_in_status_and_logs():
    out = minray_cli("job", "submit", "--no-wait", "--submission-id", "no-command", "--",
                     "no-such-command", "--flag")
    assert out.returncode == 0  # found only once the job's env is ready, in its supervisor
    wait_for(lambda: status_of("no-command") == "FAILED", "the job to fail")
    status = minray_cli("job", "status", "no-command").stdout
    assert "entrypoint command 'no-such-command' not found on the job's PATH" in status
    assert "exit code: 127" in status
    assert minray_cli("job", "logs", "no-command").stdout == (
        "minray: the job failed: entrypoint command 'no-such-command' not found on the job's "
        "PATH\n")


@pytest.mark.parametrize("command", ["status", "logs", "stop"])
def test_job_commands_refuse_a_remote_address(command):
    out = minray_cli("job", command, "--address", "ray://10.1.2.3:10001", "some-job")
    assert out.returncode == 2 and "use Ray itself" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and out.stdout == ""
