"""Which envs the cache holds: one record per env id, naming the cache entries it uses.

The cache is content-addressed per field (a pip venv, a working_dir package, ...), while a
person thinks in envs: the spec they gave, whose id `minray env explain` prints. Each setup
that uses cache entries records `<cache>/.envs/<env id>.json` (the spec with passwords masked,
and the entries), so `minray env list` shows envs by that id and `show`/`gc` accept it. A
record is rewritten only when it gains entries (the same spec on another interpreter gets
another venv), so a cached setup only reads it. Records whose entries are all gone are stale:
`Cache.gc` does not know them, and `stale()` finds them for the CLI's gc.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from runtime_env.cache import Cache
from runtime_env.spec import RuntimeEnv

RECORDS_DIR = ".envs"  # a dot folder: the cache takes it for no field


@dataclass
class EnvRecord:
    env_id: str
    spec: dict
    entries: list[tuple[str, str]]
    created: float


def _folder(cache: Cache) -> Path:
    return cache.root / RECORDS_DIR


def save(cache: Cache, env: RuntimeEnv, entries: list[tuple[str, str]]) -> None:
    """Record that `env` uses `entries` (cheap when the record already says so)."""
    path = _folder(cache) / f"{env.env_hash()}.json"
    wanted = sorted({tuple(e) for e in entries})
    try:
        with open(path, "rb") as f:
            known = {tuple(e) for e in json.load(f).get("entries", [])}
        if known.issuperset(wanted):
            return
        wanted = sorted(known.union(wanted))
    except (OSError, ValueError, AttributeError):  # none yet, or unreadable: write it anew
        pass
    from runtime_env.masking import mask_all

    body = {"env_id": env.env_hash(), "spec": mask_all(dict(env)),
            "entries": [list(e) for e in wanted], "created": time.time()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(body, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:  # a read-only or full cache must not fail a setup that worked
        pass


def load_all(cache: Cache) -> list[EnvRecord]:
    folder = _folder(cache)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            out.append(EnvRecord(data["env_id"], data["spec"],
                                 [(f, k) for f, k in data["entries"]], data.get("created", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def remove(cache: Cache, env_id: str) -> None:
    (_folder(cache) / f"{env_id}.json").unlink(missing_ok=True)
