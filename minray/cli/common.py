"""What the commands share: printing (passwords masked), reading a runtime env from the
command line, and showing sizes and times."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from runtime_env.masking import mask


class CliError(Exception):
    """A mistake of the user's, shown as one line `minray: ...` with exit code 2."""


def say(text: str, *, file=None) -> None:
    """Print, with passwords in URLs masked: specs and launch contexts may hold index URLs."""
    print(mask(text), file=file or sys.stdout, flush=True)


def say_json(value: Any) -> None:
    say(json.dumps(value, indent=2, sort_keys=True, default=str))


def add_env_inputs(parser: argparse.ArgumentParser, *, positional: bool) -> None:
    """The runtime env options of `job submit`, which `env build` and `env explain` share."""
    if positional:
        parser.add_argument("spec", nargs="?", metavar="SPEC",
                            help="the runtime env: inline JSON, or a .json/.yaml file")
    parser.add_argument("--runtime-env", metavar="FILE",
                        help="a .json or .yaml file holding the runtime env")
    parser.add_argument("--runtime-env-json", metavar="JSON",
                        help="the runtime env as inline JSON")
    parser.add_argument("--working-dir", metavar="DIR",
                        help="the working_dir field (a folder, .zip or zip URI); wins over "
                             "the same field in the runtime env")


def env_from_args(args: argparse.Namespace) -> dict:
    """The runtime env the options give, merged in order: SPEC, --runtime-env,
    --runtime-env-json, --working-dir (later ones win field by field)."""
    spec: dict = {}
    if getattr(args, "spec", None):
        spec.update(_spec_argument(args.spec))
    if args.runtime_env:
        spec.update(read_env_file(args.runtime_env))
    if args.runtime_env_json:
        spec.update(_json_object(args.runtime_env_json, "--runtime-env-json"))
    if args.working_dir:
        spec["working_dir"] = args.working_dir
    return spec


def _spec_argument(text: str) -> dict:
    """SPEC: inline JSON, or the path of a JSON/YAML file."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return _json_object(stripped, "SPEC")
    if os.path.exists(text) or text.endswith((".json", ".yaml", ".yml")):
        return read_env_file(text)
    raise CliError(f"SPEC {text!r} is neither inline JSON (it starts with '{{') nor an "
                   f"existing .json/.yaml file")


def read_env_file(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise CliError(f"runtime env file {path!r} does not exist")
    text = p.read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise CliError(f"{path} is not valid YAML: {e}") from None
        return _object(value or {}, path)
    return _json_object(text, path)


def _json_object(text: str, what: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise CliError(f"{what} is not valid JSON: {e}") from None
    return _object(value, what)


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise CliError(f"{what} must hold a runtime env object ({{\"field\": value, ...}}), "
                       f"got {type(value).__name__}")
    return value


def setup_log(env_id: str) -> str:
    """Where the CLI logs an env's setup: <minray root>/logs/runtime_env_setup-env-<id>.log."""
    from minray.node.session import minray_root, new_log

    folder = minray_root() / "logs"
    folder.mkdir(mode=0o700, exist_ok=True)
    return new_log(str(folder / f"runtime_env_setup-env-{env_id[:12]}.log"))


def aligned(header: list[str], rows: list[list[str]], *, right: tuple[int, ...] = ()) -> list[str]:
    """The lines of a table whose columns are as wide as their widest cell (ids of any length
    line up), two spaces apart; the columns numbered in `right` are right-aligned (sizes)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [line(header), *map(line, rows)]


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def ago(t: float) -> str:
    """A past time as a person reads it in a table: 'just now', '5 min ago', '2 days ago'."""
    seconds = max(0.0, time.time() - t)
    for limit, unit, name in ((60, 1, None), (3600, 60, "min"), (86400, 3600, "h"),
                              (float("inf"), 86400, "days")):
        if seconds < limit:
            return "just now" if name is None else f"{seconds // unit:.0f} {name} ago"
    return "?"


def when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"
