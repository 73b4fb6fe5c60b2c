"""`minray job submit|list|status|logs|stop`: Ray's job commands, for jobs on this machine.

`submit` prepares the job's env in the foreground (with progress), then starts the job detached
and follows its log until it ends, exiting with the entrypoint's code; Ctrl-C stops the job
(once) and exits 130. With `--no-wait` it prints the job's id and returns; the job runs on.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import runtime_env as renv
from minray.cli.common import (
    CliError,
    add_env_inputs,
    aligned,
    env_from_args,
    say,
    say_json,
    setup_log,
)
from minray.cli.common import when as time_text
from minray.job_submission import details
from minray.jobs import control, records
from minray.jobs.records import JobStatus
from minray.jobs.supervisor import entrypoint_env
from runtime_env import describe
from runtime_env.progress import Console, quiet

INTERRUPTED = 130
NOT_FOUND = 127  # the shell's code for a command it cannot find


def _note(text: str) -> None:
    """minray's own lines go to stderr: stdout carries the job's output."""
    say(f"minray: {text}", file=sys.stderr)


def _find(ident: str) -> records.Job:
    """A job by its submission id, or by a unique prefix of one."""
    try:
        return control.find(ident)
    except RuntimeError:
        matches = [j for j in records.all_jobs() if j.id.startswith(ident)] if ident else []
        if len(matches) == 1:
            return matches[0]
        raise CliError(f"no job with submission id {ident!r}"
                       + (" (it is ambiguous)" if matches else "")
                       + "; minray job list shows the jobs on this machine") from None


def job_submit(args: argparse.Namespace) -> int:
    words = args.entrypoint[1:] if args.entrypoint[:1] == ["--"] else args.entrypoint
    if not words:
        raise CliError("give the entrypoint after --, e.g. minray job submit -- python job.py")
    cpus = control.check_resources(args.entrypoint_num_cpus, args.entrypoint_num_gpus, None)
    cache = renv.Cache()
    env = renv.parse(env_from_args(args), cache=cache)
    entrypoint = control.entrypoint_of(words)
    if not args.no_wait:  # the env now, in the foreground, where its progress shows
        reporter = None if args.quiet or quiet() else Console()
        try:
            launch = renv.prepare(env, cache=cache, timeout=env.config().timeout,
                                  progress=reporter, log_path=setup_log(env.env_hash()))
        except KeyboardInterrupt:
            _note("interrupted while preparing the runtime env; no job was started")
            return INTERRUPTED
        missing = control.missing_command(entrypoint, entrypoint_env(launch, env, "")["PATH"],
                                          launch.cwd or os.getcwd())
        if missing:
            _note(missing)
            return NOT_FOUND
    job = control.submit(entrypoint, env, submission_id=args.submission_id,
                         entrypoint_num_cpus=cpus)
    in_env = f" in env {env.env_hash()[:12]} ({describe.summary(env)})" if env else ""
    _note(f"job {job.id} submitted{in_env}")
    _note(f"logs: {job.log_path}")
    if args.no_wait:
        _note(f"follow it with: minray job logs --follow {job.id}")
        _note(f"stop it with:   minray job stop {job.id}")
        print(job.id)  # stdout has nothing else: ID=$(minray job submit --no-wait ...) works
        return 0
    return _follow_to_the_end(job)


def _follow_to_the_end(job: records.Job) -> int:
    try:
        for text in control.follow_log(job):
            sys.stdout.write(text)
            sys.stdout.flush()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # stop once, whatever the user presses
        _note(f"stopping job {job.id} ...")
        control.stop(job)
        state = control.wait_until_ended(job, timeout=60)
        _note(f"job {job.id} {str(state.status).lower()}")
        return INTERRUPTED
    return _report_end(job)


def _report_end(job: records.Job) -> int:
    state = job.state()
    if state.status is JobStatus.SUCCEEDED:
        _note(f"job {job.id} succeeded")
        return 0
    _note(f"job {job.id} {str(state.status).lower()}: {state.message}")
    code = state.driver_exit_code
    return code if code is not None and 0 < code < 256 else 1


def job_list(args: argparse.Namespace) -> int:
    jobs = [details(j) for j in records.all_jobs()]
    if args.json:
        say_json([vars(d) for d in jobs])
        return 0
    if not jobs:
        say(f"no jobs in {records.jobs_root()}")
        return 0
    rows = [[d.submission_id, str(d.status), time_text((d.start_time or 0) / 1000), d.entrypoint]
            for d in jobs]
    for line in aligned(["SUBMISSION ID", "STATUS", "STARTED", "ENTRYPOINT"], rows):
        say(line)
    return 0


def job_status(args: argparse.Namespace) -> int:
    d = details(_find(args.id))
    if args.json:
        say_json(vars(d))
        return 0
    say(f"job {d.submission_id}: {d.status}")
    say(f"  {d.message}")
    if d.driver_exit_code is not None and d.status is not JobStatus.STOPPED:
        say(f"  exit code: {d.driver_exit_code}")
    say(f"  entrypoint: {d.entrypoint}")
    say(f"  started: {time_text((d.start_time or 0) / 1000)}"
        + (f", ended: {time_text(d.end_time / 1000)}" if d.end_time else ""))
    say(f"  logs: {d.log_path}")
    return 0


def job_logs(args: argparse.Namespace) -> int:
    job = _find(args.id)
    try:
        for text in control.follow_log(job, follow=args.follow):
            sys.stdout.write(text)
            sys.stdout.flush()
    except KeyboardInterrupt:  # stops following; the job goes on
        if not job.state().status.is_terminal():
            _note(f"stopped following; job {job.id} runs on (minray job stop {job.id} "
                  f"stops it)")
        return INTERRUPTED
    return 0


def job_stop(args: argparse.Namespace) -> int:
    job = _find(args.id)
    if not control.stop(job):
        say(f"job {job.id} had already ended: {job.state().status}")
        return 0
    if args.no_wait:
        say(f"job {job.id}: stop requested")
        return 0
    state = control.wait_until_ended(job, timeout=60)
    say(f"job {job.id}: {state.status}")
    return 0 if state.status.is_terminal() else 1


def add_parser(sub) -> None:
    job = sub.add_parser("job", help="run and manage jobs on this machine (Ray's job commands)",
                         description="Jobs as in Ray: an entrypoint command run in a runtime "
                                     "env, recorded under the minray folder so that status, "
                                     "logs and stop work from any shell.")
    cmds = job.add_subparsers(dest="action", required=True, metavar="COMMAND")

    submit = cmds.add_parser("submit", help="run an entrypoint in a runtime env",
                             description="Prepare the runtime env, then run the entrypoint in "
                                         "it (its python first on PATH, its cwd, its env "
                                         "vars); exits with the entrypoint's code.")
    add_env_inputs(submit, positional=False)
    submit.add_argument("--submission-id", metavar="ID",
                        help="the job's id (default: a new minraysubmit_... id)")
    submit.add_argument("--no-wait", action="store_true",
                        help="print the job's id and return; the job runs on")
    submit.add_argument("--entrypoint-num-cpus", type=float, metavar="N",
                        help="CPUs the entrypoint needs (at most this machine's)")
    submit.add_argument("--entrypoint-num-gpus", type=float, metavar="N",
                        help="accepted for Ray's scripts: only 0 (minray has no GPUs)")
    submit.add_argument("--address", metavar="ADDRESS",
                        help="the local node ('auto', 'local', http://127.0.0.1:8265) or none; "
                             "a remote cluster needs Ray itself")
    submit.add_argument("-q", "--quiet", action="store_true",
                        help="no progress lines while the env is prepared (also MINRAY_QUIET=1)")
    submit.add_argument("entrypoint", nargs=argparse.REMAINDER, metavar="-- COMMAND ...",
                        help="the command to run, after --")
    submit.set_defaults(run=job_submit)

    ls = cmds.add_parser("list", help="the jobs on this machine, oldest first")
    ls.add_argument("--json", action="store_true", help="print JSON, for scripts")
    ls.set_defaults(run=job_list)

    for name, func, text in (("status", job_status, "where a job stands"),
                             ("logs", job_logs, "a job's output so far"),
                             ("stop", job_stop, "stop a job and every process it started")):
        cmd = cmds.add_parser(name, help=text)
        cmd.add_argument("id", metavar="SUBMISSION_ID", help="the job's id (or a unique prefix)")
        cmd.add_argument("--address", metavar="ADDRESS",
                         help="the local node or none (as for submit)")
        if name == "status":
            cmd.add_argument("--json", action="store_true", help="print JSON, for scripts")
        if name == "logs":
            cmd.add_argument("-f", "--follow", action="store_true",
                             help="go on printing until the job ends")
        if name == "stop":
            cmd.add_argument("--no-wait", action="store_true",
                             help="return once the stop is requested")
        cmd.set_defaults(run=func)

