"""The `minray` command: jobs as in Ray, the runtime env cache, and a running session's state.

    minray job submit --runtime-env-json '{"pip": ["emoji"]}' -- python script.py
    minray job list | status ID | logs [--follow] ID | stop ID
    minray env list | show ID | explain SPEC | build SPEC | gc [ID ...]
    minray debug [INDEX] [--list]
    minray status | list actors|workers|objects|nodes|tasks [--filter KEY=VALUE] [--limit N]
    minray timeline TRACE --html OUT.html [--png OUT.png]
"""

from __future__ import annotations

import argparse
import sys

import runtime_env as renv
from minray.cli import debug_cmd, env_cmds, job_cmds, state_cmds, timeline_cmds
from minray.cli.common import CliError, say


def parser() -> argparse.ArgumentParser:
    from minray import __version__

    p = argparse.ArgumentParser(prog="minray", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version",
                   version=f"minray {__version__} (Python {sys.version.split()[0]})")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    job_cmds.add_parser(sub)
    env_cmds.add_parser(sub)
    debug_cmd.add_parser(sub)
    state_cmds.add_parser(sub)
    timeline_cmds.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if getattr(args, "address", None) is not None:
            from minray.address import check_local

            check_local(args.address, "--address")
        return args.run(args)
    except (CliError, ValueError, TypeError) as e:
        say(f"minray: {e}", file=sys.stderr)
        return 2
    except renv.SetupError as e:
        say(f"minray: runtime env setup failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        say("minray: interrupted", file=sys.stderr)
        return job_cmds.INTERRUPTED
