"""The env cache as `minray env` shows it: one row per env (by the id `explain` and `build`
print), plus cache entries that no recorded env uses (a package validated but never run, an
entry of an older minray), each with what it holds, its size, last use and users."""

from __future__ import annotations

from dataclasses import dataclass, field

from minray.cli.common import CliError
from runtime_env import describe, env_records
from runtime_env.cache import Cache, Entry

SHORT = 12  # hex digits of an id shown; any unique prefix is accepted


@dataclass
class Row:
    """An env (kind "env", id its hash) or a loose cache entry (kind "entry", id field/key)."""
    kind: str
    id: str
    summary: str
    entries: list[Entry]
    missing: list[tuple[str, str]] = field(default_factory=list)
    spec: dict | None = None

    @property
    def short_id(self) -> str:
        if self.kind == "env":
            return self.id[:SHORT]
        f, _, key = self.id.partition("/")
        return f"{f}/{key[:SHORT + 4]}"

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def last_used(self) -> float:
        return max((e.last_used for e in self.entries), default=0.0)

    @property
    def users(self) -> list[int]:
        return sorted({pid for e in self.entries for pid in e.leased_by})

    def holds(self) -> list[str]:
        return [describe.holds(e.field, e.meta) for e in self.entries]

    def as_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "summary": self.summary, "size": self.size,
                "last_used": self.last_used, "used_by": self.users, "spec": self.spec,
                "entries": [{"field": e.field, "key": e.key, "path": str(e.path),
                             "holds": describe.holds(e.field, e.meta), "size": e.size,
                             "created": e.created, "last_used": e.last_used,
                             "used_by": e.leased_by, "meta": e.meta} for e in self.entries],
                "missing_entries": [f"{f}/{k}" for f, k in self.missing]}


def rows(cache: Cache, field_name: str | None = None) -> list[Row]:
    """Every env with at least one entry left, then the loose entries; newest use first."""
    entries = {(e.field, e.key): e for e in cache.entries()}
    used: set[tuple[str, str]] = set()
    out = []
    for record in env_records.load_all(cache):
        present = [entries[ref] for ref in record.entries if ref in entries]
        used.update(record.entries)
        if not present:
            continue  # stale: its entries were collected
        out.append(Row("env", record.env_id, describe.summary(record.spec), present,
                       [ref for ref in record.entries if ref not in entries], record.spec))
    for ref, entry in entries.items():
        if ref not in used:
            out.append(Row("entry", f"{ref[0]}/{ref[1]}", describe.holds(ref[0], entry.meta),
                           [entry]))
    if field_name:
        out = [r for r in out if any(e.field == field_name for e in r.entries)]
    return sorted(out, key=lambda r: r.last_used, reverse=True)


def stale_records(cache: Cache) -> list[str]:
    """Ids of recorded envs none of whose entries is left."""
    present = {(e.field, e.key) for e in cache.entries()}
    return [r.env_id for r in env_records.load_all(cache)
            if not any(ref in present for ref in r.entries)]


def find(cache: Cache, ident: str) -> Row:
    """The row an id (or a unique prefix of one) names."""
    ident = ident.strip()
    all_rows = rows(cache)
    exact = [r for r in all_rows if r.id == ident]
    matches = exact or ([r for r in all_rows if r.id.startswith(ident)] if ident else [])
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(r.short_id for r in all_rows[:10]) or "none"
        raise CliError(f"no env or cache entry has the id {ident!r} (minray env list shows "
                       f"them; known: {known})")
    raise CliError(f"the id {ident!r} is ambiguous: it starts "
                   f"{', '.join(r.short_id for r in matches[:5])}; give more of it")


def users_text(pids: list[int]) -> str:
    """'pid 1234 (python)' for each live user, '-' for none."""
    if not pids:
        return "-"
    import psutil

    out = []
    for pid in pids:
        try:
            out.append(f"{pid} ({psutil.Process(pid).name()})")
        except psutil.Error:
            out.append(str(pid))
    return ", ".join(out)
