"""`minray debug`: attach this terminal to a task waiting in `breakpoint()`, for drivers that
have no terminal of their own (CI, a notebook, a job), as Ray's `ray debug`."""

from __future__ import annotations

import argparse
import sys

from minray.cli.common import CliError, say


def add_parser(sub) -> None:
    debug = sub.add_parser("debug", help="attach to a task waiting in breakpoint()",
                           description="List the breakpoints that tasks of live sessions wait "
                                       "in, and attach this terminal to one: to the only one, "
                                       "or to INDEX. c or q in pdb lets the task go on.")
    debug.add_argument("index", nargs="?", type=int, metavar="INDEX",
                       help="which breakpoint (from the list); asked for when several wait")
    debug.add_argument("--list", action="store_true", help="only list them")
    debug.set_defaults(run=debug_run)


def debug_run(args: argparse.Namespace) -> int:
    from minray import debug_attach
    from minray.node.session import minray_root

    waiting = debug_attach.waiting_in(minray_root())
    if not waiting:
        say("minray: no task is waiting in a breakpoint", file=sys.stderr)
        return 1
    if args.list:
        say(debug_attach.table(waiting))
        return 0
    index = args.index
    if index is None and len(waiting) > 1:
        say(debug_attach.table(waiting))
        answer = input("Enter breakpoint index: ").strip()
        if not answer.isdigit():
            raise CliError(f"{answer!r} is not an index from the list")
        index = int(answer)
    index = index or 0
    if not 0 <= index < len(waiting):
        raise CliError(f"there is no breakpoint {index}; indexes go from 0 to {len(waiting) - 1}")
    where = waiting[index]
    say(f"minray: attached to {debug_attach.describe(where)} (c or q lets it go on)")
    if not debug_attach.relay(where.socket, sys.stdin.fileno(), sys.stdout.fileno()):
        say(f"minray: {where.task} (pid {where.pid}) is no longer waiting", file=sys.stderr)
        return 1
    return 0
