"""`minray env list|show|explain|build|gc`: the env cache, by the one id each env has (the
hash of its normalised spec), which every subcommand prints and accepts."""

from __future__ import annotations

import argparse
import json

import runtime_env as renv
from minray.cli import inventory
from minray.cli.common import (
    CliError,
    add_env_inputs,
    ago,
    aligned,
    env_from_args,
    say,
    say_json,
    setup_log,
    size,
)
from minray.cli.common import when as time_text
from runtime_env import describe, env_records, plugin
from runtime_env.progress import Console, quiet

# Fields whose setup keeps something in the cache (the others only shape how workers start).
CACHING_FIELDS = ("conda", "pip", "py_modules", "uv", "working_dir")


def _field(value: str | None) -> str | None:
    """--field: a runtime_env field, or an error listing them."""
    if value is None:
        return None
    known = plugin.known_fields()
    if value not in known:
        from runtime_env.input_checks import did_you_mean

        raise CliError(f"--field {value!r} is not a runtime_env field"
                       f"{did_you_mean([value], known)}; fields are {', '.join(known)}")
    return value


def env_list(args: argparse.Namespace) -> int:
    cache = renv.Cache()
    found = inventory.rows(cache, _field(args.field))
    if args.json:
        say_json([r.as_json() for r in found])
        return 0
    if not found:
        what = f"{args.field} " if args.field else ""
        say(f"no cached {what}environments in {cache.root}")
        return 0
    table = []
    for r in found:
        holds = "; ".join(r.holds())
        if r.missing:
            holds += f"  [{len(r.missing)} part(s) removed: rebuilt on next use]"
        users = ",".join(map(str, r.users)) or "-"
        table.append([r.short_id, size(r.size), ago(r.last_used), users, holds])
    for line in aligned(["ID", "SIZE", "LAST USED", "USED BY", "HOLDS"], table, right=(1,)):
        say(line)
    say(f"{_counted(found)} in {cache.root}; one in full: minray env show ID")
    return 0


def _counted(found: list[inventory.Row]) -> str:
    """'2 envs', '1 env and 1 loose cache entry'."""
    envs = sum(r.kind == "env" for r in found)
    loose = len(found) - envs
    parts = ([f"{envs} env{'s' * (envs != 1)}"] if envs or not loose else []) + \
        ([f"{loose} loose cache entr{'ies' if loose != 1 else 'y'}"] if loose else [])
    return " and ".join(parts)


def env_show(args: argparse.Namespace) -> int:
    cache = renv.Cache()
    row = inventory.find(cache, args.id)
    if args.json:
        say_json(row.as_json())
        return 0
    say(f"{'env' if row.kind == 'env' else 'cache entry'} {row.id}")
    say(f"  holds:     {row.summary}")
    say(f"  size:      {size(row.size)}")
    say(f"  last used: {time_text(row.last_used)} ({ago(row.last_used)})")
    say(f"  used by:   {inventory.users_text(row.users)}")
    if row.spec is not None:
        say("  spec:      " + json.dumps(row.spec, indent=2, sort_keys=True)
            .replace("\n", "\n             "))
    say("  cache entries:")
    for e in row.entries:
        say(f"    {e.field}/{e.key}  {size(e.size)}, built {time_text(e.created)}")
        say(f"      {describe.holds(e.field, e.meta)}")
        say(f"      {e.path}")
    for f, k in row.missing:
        say(f"    {f}/{k}  removed by gc; rebuilt when the env is next used")
    return 0


def env_explain(args: argparse.Namespace) -> int:
    env = renv.parse(env_from_args(args))
    env_id = env.env_hash()
    order = [p.name for p in plugin.ordered(env)]
    status = _status(renv.Cache(), env)
    if args.json:
        say_json({"id": env_id, "summary": describe.summary(env), "status": status,
                  "normalised": dict(env), "setup_order": order})
        return 0
    say(f"env {env_id[:inventory.SHORT]}  ({describe.summary(env)})")
    say(f"  status:      {status}")
    say(f"  setup order: {' -> '.join(order) or '(nothing)'}")
    say("  normalised:  " + json.dumps(env, indent=2, sort_keys=True)
        .replace("\n", "\n               "))
    return 0


def _status(cache: renv.Cache, env: renv.RuntimeEnv) -> str:
    if not any(f in CACHING_FIELDS for f in env):
        return "nothing to build: workers start with these settings"
    for r in inventory.rows(cache):
        if r.kind == "env" and r.id == env.env_hash():
            return ("built" if not r.missing else "partly in the cache (rebuilt on next use)")
    return "not built yet (minray env build ... prepares it)"


def env_build(args: argparse.Namespace) -> int:
    from runtime_env.setup import setup_env

    cache = renv.Cache()
    env = renv.parse(env_from_args(args), cache=cache)
    reporter = None if args.quiet or args.json or quiet() else Console()
    done = setup_env(env, cache=cache, timeout=env.config().timeout, progress=reporter,
                     log_path=setup_log(env.env_hash()))
    label = f"env {env.env_hash()[:inventory.SHORT]} ({describe.summary(env)})"
    if args.json:
        say_json({"id": env.env_hash(), "built": done.built, "seconds": done.seconds,
                  "entries": [f"{e.field}/{e.key}" for e in done.entries],
                  "launch": done.launch.__dict__})
        return 0
    if not done.entries:
        say(f"{label}: nothing to build")
    elif done.built:
        say(f"built {label} in {done.seconds:.1f} s")
    else:
        say(f"found {label}: already built")
    if args.show_launch:
        say("launch context: " + json.dumps(done.launch.__dict__, indent=2))
    return 0


def env_gc(args: argparse.Namespace) -> int:
    cache = renv.Cache()
    field_name = _field(args.field)
    if args.ids:
        if args.max_size_gb is not None or field_name:
            raise CliError("give either IDs or --field/--max-size-gb, not both")
        removed, kept = _gc_ids(cache, args.ids, args.dry_run)
    else:
        limit = None if args.max_size_gb is None else int(args.max_size_gb * 1024**3)
        removed = [(f"{e.field}/{e.key}", e.size) for e in
                   cache.gc(field_name, limit, dry_run=args.dry_run)]
        kept = []
        if not args.dry_run:
            for env_id in inventory.stale_records(cache):
                env_records.remove(cache, env_id)
    if args.json:
        say_json({"dry_run": args.dry_run, "removed": [i for i, _ in removed],
                  "kept": dict(kept), "freed": sum(n for _, n in removed)})
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for ident, n in removed:
        say(f"{verb} {ident} ({size(n)})")
    for ident, why in kept:
        say(f"kept {ident}: {why}")
    total = size(sum(n for _, n in removed))
    count = f"{len(removed)} {'entry' if len(removed) == 1 else 'entries'}"
    if args.dry_run:
        say(f"{count} would be removed, {total} freed (dry run: nothing was removed)")
    else:
        say(f"{count} removed, {total} freed")
    if not removed and not args.ids:
        say("each field's cache is within its size limit and gc removes only what exceeds it; "
            "minray env gc ID removes one env, --max-size-gb 0 all that is unused")
    return 0


def _gc_ids(cache: renv.Cache, ids: list[str], dry_run: bool):
    """Remove the entries of the given envs or entries, but none in use or shared with
    another recorded env; an env's record goes once all its entries have."""
    all_rows = inventory.rows(cache)
    removed, kept = [], []
    for ident in ids:
        row = inventory.find(cache, ident)
        others = {(e.field, e.key) for r in all_rows if r.kind == "env" and r.id != row.id
                  for e in r.entries}
        kept_here = []
        for e in row.entries:
            if e.leased_by:
                kept_here.append((e, f"in use by {inventory.users_text(e.leased_by)}"))
            elif (e.field, e.key) in others:
                kept_here.append((e, "another env uses it too"))
            elif dry_run or cache.collect(e.field, e.key):
                removed.append((f"{e.field}/{e.key}", e.size))
            else:
                kept_here.append((e, "being built by another process"))
        kept += [(f"{e.field}/{e.key}", why) for e, why in kept_here]
        if row.kind == "env" and not kept_here and not dry_run:
            env_records.remove(cache, row.id)
    return removed, kept


def add_parser(sub) -> None:
    env = sub.add_parser("env", help="the runtime env cache: list, show, explain, build, gc",
                         description="Look after the runtime env cache. Each env has one id, "
                                     "the hash of its normalised spec: explain and build "
                                     "print it, list shows it, show and gc accept it (or any "
                                     "unique prefix).")
    cmds = env.add_subparsers(dest="action", required=True, metavar="COMMAND")

    ls = cmds.add_parser("list", help="cached envs: what each holds, size, last use, users")
    ls.add_argument("--field", help="only envs with a cache entry of this field (e.g. pip)")
    ls.add_argument("--json", action="store_true", help="print JSON, for scripts")
    ls.set_defaults(run=env_list)

    show = cmds.add_parser("show", help="one env or cache entry in full")
    show.add_argument("id", metavar="ID", help="an id from minray env list (or a prefix)")
    show.add_argument("--json", action="store_true", help="print JSON, for scripts")
    show.set_defaults(run=env_show)

    explain = cmds.add_parser("explain", help="validate an env; show its id, status and "
                                              "setup order")
    add_env_inputs(explain, positional=True)
    explain.add_argument("--json", action="store_true", help="print JSON, for scripts")
    explain.set_defaults(run=env_explain)

    build = cmds.add_parser("build", help="prepare an env now (e.g. in a CI warm-up step)")
    add_env_inputs(build, positional=True)
    build.add_argument("-q", "--quiet", action="store_true",
                       help="no progress lines (also MINRAY_QUIET=1)")
    build.add_argument("--show-launch", action="store_true",
                       help="also print how workers start in it (interpreter, variables)")
    build.add_argument("--json", action="store_true", help="print JSON, for scripts")
    build.set_defaults(run=env_build)

    gc = cmds.add_parser("gc", help="remove unused entries: given envs, or until each field "
                                    "fits its size limit")
    gc.add_argument("ids", nargs="*", metavar="ID",
                    help="envs or entries to remove (entries in use are kept)")
    gc.add_argument("--field", help="only this field's cache (e.g. pip)")
    gc.add_argument("--max-size-gb", type=float, metavar="GB",
                    help="size limit per field instead of the configured one (0: all unused)")
    gc.add_argument("--dry-run", action="store_true", help="say what would be removed")
    gc.add_argument("--json", action="store_true", help="print JSON, for scripts")
    gc.set_defaults(run=env_gc)
