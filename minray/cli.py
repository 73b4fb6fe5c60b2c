"""The `minray` command: submit a job with a runtime env, and look after the env cache.

    minray job submit --runtime-env-json '{"pip": ["emoji"]}' -- python script.py
    minray env list | gc | build JSON | explain JSON
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import runtime_env as renv
from minray.api import JOB_RUNTIME_ENV_VAR
from runtime_env import plugin
from runtime_env.masking import mask


def _load_env(args: argparse.Namespace, cache: renv.Cache) -> renv.RuntimeEnv:
    spec: dict = {}
    if getattr(args, "runtime_env", None):
        text = Path(args.runtime_env).read_text()
        spec = _parse_file(args.runtime_env, text)
    if getattr(args, "runtime_env_json", None):
        spec = {**spec, **json.loads(args.runtime_env_json)}
    if getattr(args, "working_dir", None):
        spec["working_dir"] = args.working_dir
    return renv.parse(spec, cache=cache)


def _say(text: str, *, file=None) -> None:
    """Print, with passwords in URLs masked: specs and launch contexts may hold index URLs."""
    print(mask(text), file=file or sys.stdout)


def _parse_file(path: str, text: str) -> dict:
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise SystemExit("minray: reading a YAML runtime env needs PyYAML "
                             "(pip install pyyaml), or pass JSON") from None
        return yaml.safe_load(text) or {}
    return json.loads(text)


def job_submit(args: argparse.Namespace) -> int:
    """Prepare the job's env, then run the entrypoint in it; its init() inherits the env."""
    if not args.entrypoint or args.entrypoint == ["--"]:
        raise SystemExit("minray job submit: give the entrypoint after --, e.g. "
                         "-- python script.py")
    cache = renv.Cache()
    env = _load_env(args, cache)
    launch = renv.prepare(env, cache=cache, timeout=env.config().timeout)
    process_env = launch.process_env()
    process_env[JOB_RUNTIME_ENV_VAR] = env.serialize()
    # A pip/uv/conda env's interpreter comes first on PATH, so `python` is the env's.
    bin_dir = os.path.dirname(launch.py_executable[0])
    process_env["PATH"] = os.pathsep.join([bin_dir, process_env.get("PATH", "")])
    entrypoint = args.entrypoint[1:] if args.entrypoint[0] == "--" else args.entrypoint
    return subprocess.call(entrypoint, env=process_env, cwd=launch.cwd)


def env_list(args: argparse.Namespace) -> int:
    cache = renv.Cache()
    entries = cache.entries(args.field)
    if not entries:
        _say(f"no cached environments in {cache.root}")
        return 0
    _say(f"{'field':<14}{'key':<24}{'size':>10}  {'last used':<20}leased by")
    for e in entries:
        used = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.last_used))
        _say(f"{e.field:<14}{e.key[:22]:<24}{_size(e.size):>10}  {used:<20}"
             f"{','.join(map(str, e.leased_by)) or '-'}")
    return 0


def env_gc(args: argparse.Namespace) -> int:
    limit = None if args.max_size_gb is None else int(args.max_size_gb * 1024**3)
    removed = renv.Cache().gc(args.field, limit)
    for e in removed:
        _say(f"removed {e.field}/{e.key} ({_size(e.size)})")
    _say(f"{len(removed)} entries removed, {_size(sum(e.size for e in removed))} freed")
    return 0


def env_build(args: argparse.Namespace) -> int:
    cache = renv.Cache()
    env = renv.parse(json.loads(args.spec), cache=cache)
    start = time.perf_counter()
    launch = renv.prepare(env, cache=cache, timeout=env.config().timeout)
    _say(f"built {env.env_hash()} in {time.perf_counter() - start:.2f}s")
    _say(json.dumps(launch.__dict__, indent=2))
    return 0


def env_explain(args: argparse.Namespace) -> int:
    env = renv.parse(json.loads(args.spec))
    _say(f"hash: {env.env_hash()}")
    _say("normalised: " + json.dumps(env, indent=2, sort_keys=True))
    order = " -> ".join(p.name for p in plugin.ordered(env))
    _say(f"setup order: {order or '(nothing)'}")
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minray", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    job = sub.add_parser("job", help="run a job").add_subparsers(dest="action", required=True)
    submit = job.add_parser("submit", help="run an entrypoint in a runtime env")
    submit.add_argument("--runtime-env", help="a JSON or YAML file with the runtime env")
    submit.add_argument("--runtime-env-json", help="the runtime env as inline JSON")
    submit.add_argument("--working-dir", help="shorthand for the working_dir field")
    submit.add_argument("entrypoint", nargs=argparse.REMAINDER, help="-- command args...")
    submit.set_defaults(run=job_submit)

    env = sub.add_parser("env", help="the runtime env cache").add_subparsers(
        dest="action", required=True)
    ls = env.add_parser("list", help="cached environments")
    ls.add_argument("--field")
    ls.set_defaults(run=env_list)
    gc = env.add_parser("gc", help="remove unused entries until each field fits its limit")
    gc.add_argument("--field")
    gc.add_argument("--max-size-gb", type=float, help="limit instead of the configured one")
    gc.set_defaults(run=env_gc)
    build = env.add_parser("build", help="prepare an env now (JSON spec)")
    build.add_argument("spec")
    build.set_defaults(run=env_build)
    explain = env.add_parser("explain", help="validate a spec, show its hash and setup order")
    explain.add_argument("spec")
    explain.set_defaults(run=env_explain)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        _say(f"minray: {e}", file=sys.stderr)
        return 2
    except renv.SetupError as e:
        _say(f"minray: runtime env setup failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
