"""`minray status` and `minray list KIND`: a running driver's session as tables, read from
another shell through the node's socket (`minray.state_client`), as Ray's `ray status` and
`ray list` read a cluster.

Each kind `list` knows is one entry in LISTINGS: the state API call that gives its rows and
the columns the table shows (`--format json` prints every field).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from minray.cli.common import CliError, say, say_json, size
from minray.named_tuple import Record
from minray.node import session as sessions
from minray.protocol import StateQuery
from minray.state_client import NoSession
from minray.util import state

NO_SESSION = 1  # exit code: nothing running to read


class Listing(Record):
    """A kind of row: the call that lists them (Ray's signature: address, filters, limit,
    detail) and the columns of its table."""

    fetch: Callable[..., list]
    columns: tuple[str, ...]


LISTINGS: dict[str, Listing] = {
    "actors": Listing(state.list_actors, ("actor_id", "class_name", "name", "state", "pid")),
    "workers": Listing(state.list_workers,
                       ("worker_id", "worker_type", "is_alive", "pid", "exit_type")),
    "objects": Listing(state.list_objects,
                       ("object_id", "object_size", "task_status", "reference_type")),
    "nodes": Listing(state.list_nodes, ("node_id", "node_ip", "state", "resources_total")),
    "tasks": Listing(state.list_tasks, ("task_id", "name", "state", "type", "worker_pid")),
}


def _address(args: argparse.Namespace) -> str | None:
    """The session to read: --session (a folder or its name), else --address (a local name:
    the newest running session), else the newest running session."""
    chosen = args.session
    if chosen is None:
        return None
    if "/" not in chosen and not chosen.startswith("session_"):
        raise CliError(f"--session {chosen!r}: give a session folder or its name "
                       f"(session_<date>_<time>_<pid>_<random>, under "
                       f"{sessions.minray_root()})")
    return chosen


def _filters(texts: list[str]) -> list[tuple[str, str, str]]:
    """--filter key=value / key!=value, as Ray's CLI takes them."""
    found = []
    for text in texts:
        key, sep, value = text.partition("!=")
        if not sep:
            key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--filter {text!r}: write key=value or key!=value, e.g. "
                           f"--filter state=ALIVE")
        found.append((key.strip(), sep, value.strip()))
    return found


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def table(rows: list, columns: tuple[str, ...]) -> list[str]:
    """Lines of a table with a header of upper-case column names, as Ray's CLI prints."""
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))
             .rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
              for r in cells]
    return lines


def state_list(args: argparse.Namespace) -> int:
    listing = LISTINGS[args.kind]
    try:
        rows = listing.fetch(address=_address(args), filters=_filters(args.filter),
                             limit=args.limit, detail=args.detail)
    except (NoSession, TimeoutError) as e:
        say(f"minray: {e}", file=sys.stderr)
        return NO_SESSION
    if args.format == "json":
        say_json([row.asdict() for row in rows])
        return 0
    if not rows:
        say(f"no {args.kind}" + (" match the filters" if args.filter else ""))
        return 0
    for line in table(rows, listing.columns):
        say(line)
    more = f"; --limit to see more than {args.limit}" if len(rows) == args.limit else ""
    say(f"{len(rows)} {args.kind}{more}")
    return 0


def state_status(args: argparse.Namespace) -> int:
    try:
        summary = state.ask(StateQuery(0, "status", [], 0, False), _address(args),
                            state.DEFAULT_TIMEOUT)
    except (NoSession, TimeoutError) as e:
        say(f"minray: {e}", file=sys.stderr)
        return NO_SESSION
    if args.format == "json":
        say_json(summary)
        return 0
    for line in status_lines(summary):
        say(line)
    others = [s for s in sessions.sessions()
              if s.alive and str(s.folder) != summary["session"]]
    if others:
        say(f"({len(others)} other session(s) with a running driver; pick one with --session: "
            f"{', '.join(s.folder.name for s in others)})")
    return 0


def _counts(counts: dict[str, int], order: tuple[str, ...] = ()) -> str:
    names = [n for n in order if counts.get(n)] + sorted(set(counts) - set(order))
    return ", ".join(f"{counts[n]} {n.lower()}" for n in names) or "none"


def _resources(res: dict) -> str:
    total, free = res["total"], res["available"]
    parts = []
    for name, have in total.items():
        used = have - free.get(name, have)
        if name == "memory":
            parts.append(f"memory {size(used)}/{size(have)}")
        else:
            parts.append(f"{name} {used:g}/{have:g}")
    return ", ".join(parts) + " used"


def status_lines(s: dict) -> list[str]:
    tasks, envs, objects = s["tasks"], s["envs"], s["objects"]
    ended = f" ({s['workers_ended']} ended)" if s["workers_ended"] else ""
    return [
        f"session:   {s['session']}",
        f"driver:    pid {s['driver_pid']}, job {s['job_id']}, up {s['uptime_s']:g} s",
        f"resources: {_resources(s['resources'])}",
        f"workers:   {_counts(s['workers'], ('BUSY', 'IDLE', 'STARTING', 'LEAVING'))}{ended}",
        f"actors:    {_counts(s['actors'], ('ALIVE', 'PENDING_CREATION', 'RESTARTING'))}",
        f"envs:      {envs['ready']} ready, {envs['preparing']} preparing, "
        f"{envs['failed']} failed",
        f"tasks:     {tasks['running']} running, {tasks['queued']} queued, "
        f"{tasks['waiting_for_arguments']} waiting for arguments",
        f"objects:   {objects['count']} ({size(objects['bytes'])})",
    ]


def _session_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--session", metavar="FOLDER",
                     help="the session to read: its folder, or the folder's name (default: "
                          "the newest with a running driver)")
    cmd.add_argument("--address", metavar="ADDRESS",
                     help="accepted for Ray's scripts: only this machine ('auto', 'local', "
                          "127.0.0.1:...)")
    cmd.add_argument("--format", choices=("table", "json"), default="table",
                     help="a table for people (default) or JSON for scripts")


def add_parser(sub) -> None:
    status = sub.add_parser("status", help="a running driver's session at a glance",
                            description="The newest running session (or --session): its "
                                        "driver, resources used, workers, actors, envs, "
                                        "tasks and objects.")
    _session_options(status)
    status.set_defaults(run=state_status)

    ls = sub.add_parser("list", help="actors, tasks, workers, objects or nodes of a running "
                                     "session",
                        description="Rows of Ray's state API for the newest running session "
                                    "(or --session), as `ray list` prints them.")
    ls.add_argument("kind", choices=sorted(LISTINGS), metavar="KIND",
                    help=f"what to list: {', '.join(sorted(LISTINGS))}")
    ls.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                    help="keep rows whose KEY equals VALUE (KEY!=VALUE: differs); repeatable")
    ls.add_argument("--limit", type=int, default=state.DEFAULT_LIMIT, metavar="N",
                    help=f"at most N rows (default {state.DEFAULT_LIMIT})")
    ls.add_argument("--detail", action="store_true",
                    help="fill the fields Ray shows only in detail (with --format json)")
    _session_options(ls)
    ls.set_defaults(run=state_list)
