"""A job's supervisor: the process that prepares the job's env, runs its entrypoint, records
how it ended, and stops it on request.

Started detached (its own session, output to the job's log) by `control.submit`, so the job
outlives the process that submitted it. SIGTERM (what `stop` sends) stops the job: during the
env's setup the installer is killed with its children; once running, the entrypoint's whole
tree (and whatever it detached, found by the job's mark in their environment) gets SIGTERM,
then SIGKILL after STOP_GRACE_SECONDS, as Ray's supervisor does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import runtime_env as renv
from minray.api import JOB_RUNTIME_ENV_VAR
from minray.jobs.control import missing_command
from minray.jobs.records import MARK_VAR, Job, JobStatus, State
from runtime_env import processes

STOP_GRACE_SECONDS = 3.0


class StopRequested(BaseException):
    """SIGTERM or SIGINT arrived: the job is to stop. A BaseException, as KeyboardInterrupt
    is: env setup turns the Exceptions raised inside it into SetupErrors (a stop during the
    install would read as a failed env), but lets this through, killing its installer."""


def _stop_requested(signum, frame) -> None:
    raise StopRequested


def main(job_dir: str) -> int:
    folder = Path(job_dir)
    job = Job(folder.name, root=folder.parent)
    submission = job.submission()
    signal.signal(signal.SIGTERM, _stop_requested)  # before `stop` can know our pid
    signal.signal(signal.SIGINT, _stop_requested)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    state = State(supervisor_pid=os.getpid())
    proc = None
    try:
        job.write_state(state)
        env = renv.RuntimeEnv.deserialize(json.dumps(submission.runtime_env))
        launch = _prepare(env, str(job.dir / "runtime_env_setup.log"))
        process_env = entrypoint_env(launch, env, job.id)
        cwd = launch.cwd or submission.cwd
        missing = missing_command(submission.entrypoint, process_env["PATH"], cwd)
        if missing:
            return _failed_before_start(job, state, missing, code=127)
        with open(job.log_path, "ab") as log:
            proc = subprocess.Popen(["/bin/sh", "-c", submission.entrypoint], env=process_env,
                                    cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        state.status, state.entrypoint_pid = JobStatus.RUNNING, proc.pid
        state.start_time, state.message = time.time(), "the entrypoint is running"
        job.write_state(state)
        code = proc.wait()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if code == 0:
            return _end(job, state, JobStatus.SUCCEEDED, "the entrypoint exited with code 0",
                        code=0)
        how = (f"was killed by signal {-code}" if code < 0 else f"exited with code {code}")
        return _end(job, state, JobStatus.FAILED, f"the entrypoint {how}", code=code)
    except StopRequested:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop_tree(proc.pid if proc else None, job.id)
        code = proc.wait() if proc else None
        return _end(job, state, JobStatus.STOPPED, "stopped on request", code=code)
    except renv.SetupError as e:
        return _failed_before_start(job, state, f"runtime env setup failed: {e}")
    except Exception as e:  # noqa: BLE001 - whatever it is, the job's record must say it
        stop_tree(proc.pid if proc else None, job.id)
        return _failed_before_start(job, state, f"the supervisor failed: {e!r}")


def _prepare(env: renv.RuntimeEnv, log_path: str) -> renv.LaunchContext:
    """The job's env, with progress in the job's log once it takes over a second."""
    from runtime_env.progress import Console, quiet

    return renv.prepare(env, timeout=env.config().timeout, log_path=log_path,
                        progress=None if quiet() else Console(sys.stdout, live=False))


def entrypoint_env(launch: renv.LaunchContext, env: renv.RuntimeEnv,
                   job_id: str) -> dict[str, str]:
    """The entrypoint's environment: the env's, its `python` first on PATH, the job's env for
    the driver's init() to inherit, and the job's mark."""
    process_env = launch.process_env()
    process_env[JOB_RUNTIME_ENV_VAR] = env.serialize()
    process_env[MARK_VAR] = job_id
    process_env.setdefault("PYTHONUNBUFFERED", "1")  # `logs --follow` sees prints at once
    bin_dir = os.path.dirname(launch.py_executable[0])
    process_env["PATH"] = os.pathsep.join([bin_dir, process_env.get("PATH", "")])
    return process_env


def stop_tree(pid: int | None, job_id: str) -> None:
    """SIGTERM the entrypoint's tree and every process marked with the job's id, then SIGKILL
    what is left after STOP_GRACE_SECONDS."""
    import psutil

    procs = {p.pid: p for p in processes.marked(MARK_VAR, job_id, exact=True)}
    if pid is not None:
        procs.update({p.pid: p for p in processes.tree(pid)})
        try:
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            pass
    for p in procs.values():
        try:
            p.terminate()
        except psutil.Error:
            pass
    processes.end(list(procs.values()), grace=STOP_GRACE_SECONDS)
    processes.end(processes.marked(MARK_VAR, job_id, exact=True))  # started while we were stopping


def _failed_before_start(job: Job, state: State, message: str, *,
                         code: int | None = None) -> int:
    """The job failed before its entrypoint ran: say why in its log too (our stdout), where
    `minray job logs` would otherwise show nothing."""
    print(f"minray: the job failed: {message}", flush=True)
    return _end(job, state, JobStatus.FAILED, message, code=code)


def _end(job: Job, state: State, status: JobStatus, message: str, *,
         code: int | None = None) -> int:
    state.status, state.message, state.driver_exit_code = status, message, code
    state.end_time = time.time()
    job.write_state(state)
    return 0
