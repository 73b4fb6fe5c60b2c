"""Submitting, stopping and reading jobs on this machine: what `minray job` and
`JobSubmissionClient` both call."""

from __future__ import annotations

import codecs
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import runtime_env as renv
from minray.jobs import records
from minray.jobs.records import Job, JobStatus, Submission

_MINRAY_PARENT = str(Path(__file__).resolve().parents[2])  # where `import minray` works
POLL_SECONDS = 0.1
_SHELL_WORDS = {"cd", "exec", "export", "set", "source", ".", "eval", "exit", "test", "[",
                "true", "false", "echo", "printf", "env", "time", "nohup", "if", "for", "while",
                "case", "{", "("}


def entrypoint_of(argv: Sequence[str]) -> str:
    """The shell command a CLI's entrypoint words make: one word is taken as a command line
    (`-- "python a.py && echo done"`), several are quoted as they were given."""
    words = list(argv)
    return words[0] if len(words) == 1 else shlex.join(words)


def missing_command(entrypoint: str, path: str, cwd: str) -> str | None:
    """Why the entrypoint's program cannot run (not found, not executable), or None. Only a
    simple command is checked; anything the shell must interpret is left to it."""
    try:
        words = shlex.split(entrypoint)
    except ValueError:
        return None
    while words and "=" in words[0] and not words[0].startswith("="):
        words = words[1:]  # VAR=value prefixes
    if not words or words[0] in _SHELL_WORDS:
        return None
    program = words[0]
    if os.sep in program:
        full = os.path.join(cwd, program)
        if not os.path.exists(full):
            return f"entrypoint program {program!r} does not exist (looked in {cwd})"
        return None if os.access(full, os.X_OK) else \
            f"entrypoint program {program!r} is not executable"
    if shutil.which(program, path=path) is None:
        return f"entrypoint command {program!r} not found on the job's PATH"
    return None


def check_resources(num_cpus: Any, num_gpus: Any, resources: Any) -> float | None:
    """What an entrypoint may ask for here: CPUs up to the machine's, no GPUs or custom
    resources (an error now, where Ray would wait forever)."""
    if num_gpus:
        raise ValueError("entrypoint_num_gpus: minray runs on this machine's CPUs only")
    if resources:
        raise ValueError(f"entrypoint_resources {dict(resources)!r}: minray has no custom "
                         f"resources")
    if num_cpus is None:
        return None
    if isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float)) or num_cpus < 0:
        raise ValueError(f"entrypoint_num_cpus must be a number >= 0, got {num_cpus!r}")
    if num_cpus > (os.cpu_count() or 1):
        raise ValueError(f"entrypoint_num_cpus={num_cpus} is more than this machine's "
                         f"{os.cpu_count()} CPUs")
    return float(num_cpus)


def submit(entrypoint: str, runtime_env: Mapping | None = None, *,
           submission_id: str | None = None, metadata: Mapping[str, str] | None = None,
           entrypoint_num_cpus: float | None = None, entrypoint_memory: int | None = None,
           cwd: str | None = None) -> Job:
    """Record a job and start its supervisor, detached: the job outlives the caller."""
    if not isinstance(entrypoint, str) or not entrypoint.strip():
        raise ValueError("entrypoint must be a non-empty shell command, e.g. 'python job.py'")
    env = renv.parse(runtime_env)  # call-site errors now; local folders packaged now
    job = Job(records.check_id(submission_id) if submission_id else records.new_id())
    records.prune()
    job.create(Submission(job.id, entrypoint, dict(env), cwd or os.getcwd(),
                          dict(metadata or {}), entrypoint_num_cpus, entrypoint_memory,
                          time.time()))
    boot = (f"import sys; sys.path.insert(0, {_MINRAY_PARENT!r}); "
            f"from minray.jobs.supervisor import main; sys.exit(main(sys.argv[1]))")
    with open(job.log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-c", boot, str(job.dir)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=cwd or os.getcwd())
    threading.Thread(target=proc.wait, daemon=True).start()  # reaped, if we live that long
    return job


def find(submission_id: str) -> Job:
    job = Job(submission_id) if isinstance(submission_id, str) and submission_id else None
    if job is None or "/" in submission_id or not job.exists():
        raise RuntimeError(f"no job with submission id {submission_id!r} (minray job list "
                           f"shows the jobs on this machine)")
    return job


def stop(job: Job, wait_for_pid: float = 5.0) -> bool:
    """Ask the job to stop; False if it had already ended. The supervisor stops it (see
    supervisor.py); if the supervisor is gone, its entrypoint's processes are ended here."""
    deadline = time.monotonic() + wait_for_pid
    state = job.state(as_recorded=True)
    while state.supervisor_pid is None and not state.status.is_terminal() \
            and time.monotonic() < deadline:  # just submitted: its pid comes in a moment
        time.sleep(0.02)
        state = job.state(as_recorded=True)
    if state.status.is_terminal():
        return False
    if state.supervisor_pid is not None:
        try:
            os.kill(state.supervisor_pid, signal.SIGTERM)
            return True
        except ProcessLookupError:
            pass
    from minray.jobs.supervisor import stop_tree

    stop_tree(state.entrypoint_pid, job.id)
    state.status, state.message, state.end_time = (JobStatus.STOPPED, "stopped on request",
                                                   time.time())
    job.write_state(state)
    return True


def wait_until_ended(job: Job, timeout: float | None = None) -> records.State:
    deadline = None if timeout is None else time.monotonic() + timeout
    state = job.state()
    while not state.status.is_terminal():
        if deadline is not None and time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
        state = job.state()
    return state


def read_log(job: Job) -> str:
    try:
        return job.log_path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def follow_log(job: Job, *, follow: bool = True) -> Iterator[str]:
    """The log's text in chunks as it grows, until the job has ended and all is read."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with open(job.log_path, "rb") as f:
        while True:
            ended = not follow or job.state().status.is_terminal()
            text = decoder.decode(f.read(), final=ended)
            if text:
                yield text
            elif ended:
                return
            else:
                time.sleep(POLL_SECONDS)
