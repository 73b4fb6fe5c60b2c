"""Which envs the cache holds: one record per env id, naming the cache entries it uses.

The cache is content-addressed per field (a pip venv, a working_dir package, ...), while a
person thinks in envs: the spec they gave, whose id `minray env explain` prints. Each setup
that uses cache entries records `<cache>/.envs/<env id>.<digest of its entries>.json` (the
spec with passwords masked, and the entries; written by `setup._record_env`, so a cached setup
loads nothing more), so `minray env list` shows envs by that id and `show`/`gc` accept it. The
name says which entries it records (the same spec on another interpreter gets another venv, so
another file), so a cached setup checks it with one stat, once per process. Records whose
entries are all gone are stale: `Cache.gc` does not know them; the CLI's gc removes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from runtime_env.cache import Cache
from runtime_env.setup import RECORDS_DIR, forget_record


@dataclass
class EnvRecord:
    """One env: its id, its spec (passwords masked), the cache entries it uses."""
    env_id: str
    spec: dict
    entries: list[tuple[str, str]]
    created: float


def _folder(cache: Cache) -> Path:
    return cache.root / RECORDS_DIR


def load_all(cache: Cache) -> list[EnvRecord]:
    """One record per env id, with the entries of all its files (an env used from two
    interpreters has a venv for each)."""
    folder = _folder(cache)
    if not folder.is_dir():
        return []
    by_id: dict[str, EnvRecord] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            refs = [(f, k) for f, k in data["entries"]]
            record = by_id.setdefault(data["env_id"], EnvRecord(
                data["env_id"], data["spec"], [], data.get("created", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        record.entries += [ref for ref in refs if ref not in record.entries]
    return list(by_id.values())


def remove(cache: Cache, env_id: str) -> None:
    for path in _folder(cache).glob(f"{env_id}.*.json"):
        path.unlink(missing_ok=True)
        forget_record(str(path))
