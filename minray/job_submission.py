"""Ray's job SDK on this machine: `JobSubmissionClient` submits, watches and stops jobs that
run here, recorded in minray's folder, so a CI test starts a job exactly as on a cluster.

    from minray.job_submission import JobSubmissionClient, JobStatus
    client = JobSubmissionClient()          # or "http://127.0.0.1:8265", "auto"
    job_id = client.submit_job(entrypoint="python job.py", runtime_env={"pip": ["emoji"]})
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from minray.address import check_local
from minray.jobs import control, records
from minray.jobs.records import Job, JobStatus

__all__ = ["JobDetails", "JobInfo", "JobStatus", "JobSubmissionClient"]


@dataclass
class JobDetails:
    """A job as Ray's SDK describes it (times in milliseconds since the epoch)."""
    submission_id: str
    status: JobStatus
    entrypoint: str
    message: str
    start_time: int | None
    end_time: int | None
    metadata: dict[str, str] = field(default_factory=dict)
    runtime_env: dict[str, Any] = field(default_factory=dict)
    driver_exit_code: int | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_memory: int | None = None
    log_path: str = ""
    type: str = "SUBMISSION"
    job_id: str | None = None
    error_type: str | None = None


JobInfo = JobDetails  # Ray's older name


def _ms(t: float | None) -> int | None:
    return None if t is None else int(t * 1000)


def details(job: Job) -> JobDetails:
    sub, state = job.submission(), job.state()
    error = None
    if state.status is JobStatus.FAILED:
        error = ("RUNTIME_ENV_SETUP_FAILED" if "runtime env" in state.message
                 else "JOB_ENTRYPOINT_COMMAND_ERROR")
    return JobDetails(sub.submission_id, state.status, sub.entrypoint, state.message,
                      _ms(state.start_time or sub.submitted_at), _ms(state.end_time),
                      sub.metadata, sub.runtime_env, state.driver_exit_code,
                      sub.entrypoint_num_cpus, sub.entrypoint_memory, str(job.log_path),
                      error_type=error)


class JobSubmissionClient:
    """Submits and manages jobs on this machine. `address` may be None, "auto", "local" or
    Ray's local dashboard address; a remote cluster's is an error that points to Ray."""

    def __init__(self, address: str | None = None, create_cluster_if_needed: bool = False,
                 cookies: dict | None = None, metadata: dict | None = None,
                 headers: dict | None = None, verify: Any = True):
        check_local(address, "JobSubmissionClient")
        self._metadata = dict(metadata or {})

    def submit_job(self, *, entrypoint: str, job_id: str | None = None,
                   runtime_env: dict | None = None, metadata: dict[str, str] | None = None,
                   submission_id: str | None = None,
                   entrypoint_num_cpus: float | None = None,
                   entrypoint_num_gpus: float | None = None,
                   entrypoint_memory: int | None = None,
                   entrypoint_resources: dict[str, float] | None = None) -> str:
        """Start `entrypoint` (a shell command) in `runtime_env`; returns the submission id at
        once: the job prepares its env (PENDING), then runs (RUNNING)."""
        cpus = control.check_resources(entrypoint_num_cpus, entrypoint_num_gpus,
                                       entrypoint_resources)
        job = control.submit(entrypoint, runtime_env, submission_id=submission_id or job_id,
                             metadata={**self._metadata, **(metadata or {})},
                             entrypoint_num_cpus=cpus, entrypoint_memory=entrypoint_memory)
        return job.id

    def stop_job(self, job_id: str) -> bool:
        """Ask a job to stop; False if it had already ended. Returns at once, as Ray's."""
        return control.stop(control.find(job_id))

    def delete_job(self, job_id: str) -> bool:
        """Forget an ended job and its logs; a job still running is an error."""
        job = control.find(job_id)
        if not job.state().status.is_terminal():
            raise RuntimeError(f"job {job_id!r} has not ended; stop it first")
        job.remove()
        return True

    def get_job_info(self, job_id: str) -> JobDetails:
        return details(control.find(job_id))

    def list_jobs(self) -> list[JobDetails]:
        return [details(job) for job in records.all_jobs()]

    def get_job_status(self, job_id: str) -> JobStatus:
        return control.find(job_id).state().status

    def get_job_logs(self, job_id: str) -> str:
        return control.read_log(control.find(job_id))

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        """The job's log as it grows, until the job ends (`async for lines in ...`)."""
        job = control.find(job_id)
        chunks = control.follow_log(job)
        while True:
            text = await asyncio.to_thread(next, chunks, None)
            if text is None:
                return
            yield text
