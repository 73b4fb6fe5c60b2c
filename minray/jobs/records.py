"""Job records: one folder per job under <minray root>/jobs/<submission id>/.

`job.json` says what was submitted (written once, by the submitter); `state.json` says where it
stands (written by the job's supervisor, and by `stop` only once the supervisor is gone);
`job.log` holds the env's progress and the entrypoint's output. Writes are atomic renames, so a
reader never sees half a record. A supervisor that died leaves a state that is not terminal:
readers report such a job as FAILED. Finished jobs older than a day beyond the newest
KEEP_JOBS are pruned when a job is submitted; a running job never is.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from minray.node.session import minray_root
from runtime_env.processes import pid_alive

KEEP_JOBS = 100
KEEP_SECONDS = 24 * 3600
MARK_VAR = "MINRAY_JOB_SUBMISSION_ID"  # in every process of a job: stop finds them by it
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
START_GRACE_SECONDS = 30.0  # a supervisor that has not written its pid by then never started


class JobStatus(str, Enum):
    """Where a job stands (Ray's values)."""
    PENDING = "PENDING"  # its runtime env is being prepared
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    def __str__(self) -> str:
        return self.value

    def is_terminal(self) -> bool:
        return self in (JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED)


@dataclass
class Submission:
    """What was submitted: job.json."""
    submission_id: str
    entrypoint: str
    runtime_env: dict
    cwd: str
    metadata: dict = field(default_factory=dict)
    entrypoint_num_cpus: float | None = None
    entrypoint_memory: int | None = None
    submitted_at: float = 0.0


@dataclass
class State:
    """Where the job stands: state.json."""
    status: JobStatus = JobStatus.PENDING
    message: str = "preparing the runtime env"
    supervisor_pid: int | None = None
    entrypoint_pid: int | None = None
    start_time: float | None = None  # the entrypoint started
    end_time: float | None = None
    driver_exit_code: int | None = None
    written_at: float = 0.0


def jobs_root() -> Path:
    return minray_root() / "jobs"


def new_id() -> str:
    return "minraysubmit_" + secrets.token_hex(8)


def check_id(submission_id: str) -> str:
    if not isinstance(submission_id, str) or not _ID.match(submission_id):
        raise ValueError(f"submission id {submission_id!r} must be 1-128 letters, digits, "
                         f"'_', '.' or '-', starting with a letter or digit")
    return submission_id


class Job:
    """One job's folder."""

    def __init__(self, submission_id: str, root: Path | None = None):
        self.id = submission_id
        self.dir = (root or jobs_root()) / submission_id

    @property
    def log_path(self) -> Path:
        return self.dir / "job.log"

    def exists(self) -> bool:
        return (self.dir / "job.json").is_file()

    def create(self, submission: Submission) -> None:
        """Make the folder (refusing an id in use), the log, and the PENDING state."""
        self.dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self.dir.mkdir(mode=0o700)
        except FileExistsError:
            raise ValueError(f"a job with submission id {self.id!r} already exists") from None
        os.close(os.open(self.log_path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.write_state(State())
        _write(self.dir / "job.json", asdict(submission))

    def submission(self) -> Submission:
        return Submission(**_read(self.dir / "job.json"))

    def state(self, *, as_recorded: bool = False) -> State:
        """The state, with a dead supervisor's unfinished job reported as FAILED (unless
        `as_recorded`)."""
        data = _read(self.dir / "state.json")
        state = State(**{**data, "status": JobStatus(data["status"])})
        if state.status.is_terminal() or as_recorded:
            return state
        if state.supervisor_pid is not None and not pid_alive(state.supervisor_pid):
            state.status, state.end_time = JobStatus.FAILED, state.end_time or time.time()
            state.message = (f"the job's supervisor (pid {state.supervisor_pid}) died before "
                             f"the job finished")
        elif state.supervisor_pid is None and time.time() - state.written_at > \
                START_GRACE_SECONDS:
            state.status, state.message = JobStatus.FAILED, "the job's supervisor never started"
        return state

    def write_state(self, state: State) -> None:
        state.written_at = time.time()
        _write(self.dir / "state.json", {**asdict(state), "status": state.status.value})

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def all_jobs(root: Path | None = None) -> list[Job]:
    """Every recorded job, oldest submission first."""
    folder = root or jobs_root()
    if not folder.is_dir():
        return []
    jobs = [Job(p.name, folder) for p in folder.iterdir() if (p / "job.json").is_file()]
    return sorted(jobs, key=lambda j: _mtime(j.dir / "job.json"))


def prune(root: Path | None = None) -> None:
    """Remove finished jobs beyond the newest KEEP_JOBS that ended over a day ago."""
    day_ago = time.time() - KEEP_SECONDS
    for job in all_jobs(root)[:-KEEP_JOBS]:
        try:
            state = job.state()
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if state.status.is_terminal() and (state.end_time or 0) < day_ago:
            job.remove()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _write(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
