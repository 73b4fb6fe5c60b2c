"""What every state API call shares: rows that read like dicts too, and Ray's filters
(checked where the user calls, matched where the rows are)."""

from __future__ import annotations

import dataclasses
from typing import Any

PREDICATES = ("=", "!=")


class Row:
    """Dict-style reads on a dataclass row, as Ray's rows allow (`row["state"]`, `.get`)."""

    def __getitem__(self, key: str) -> Any:
        if key not in self._fields():
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self._fields() else default

    def asdict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def _fields(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}


def check_filters(filters: list | None, filterable, where: str) -> list:
    """Ray's filters: a list of (column, "=" or "!=", value), on the columns Ray filters."""
    if filters is None:
        return []
    if not isinstance(filters, list | tuple):
        raise TypeError(f"{where}: filters must be a list of (key, predicate, value) tuples, "
                        f"got {type(filters).__name__}")
    checked = []
    for item in filters:
        if not isinstance(item, list | tuple) or len(item) != 3:
            raise ValueError(f"{where}: each filter is a (key, predicate, value) tuple, e.g. "
                             f"(\"state\", \"=\", \"ALIVE\"); got {item!r}")
        key, predicate, value = item
        if key not in filterable:
            raise ValueError(f"{where}: cannot filter on {key!r}; the columns to filter on are "
                             f"{', '.join(sorted(filterable))}")
        if predicate not in PREDICATES:
            raise ValueError(f"{where}: unsupported filter predicate {predicate!r}; available "
                             f"predicates: =, !=")
        checked.append((key, predicate, value))
    return checked


def passes(get, filters: list[tuple[str, str, Any]]) -> bool:
    """Whether a row (read through `get(column)`) holds for every filter."""
    for key, predicate, value in filters:
        if _equal(get(key), value) != (predicate == "="):
            return False
    return True


def _equal(have: Any, want: Any) -> bool:
    """A filter's value (often a string from the command line) against a field, compared as
    the field's type: "true"/"1" match True, "42" matches 42; text without regard to case."""
    if have is None or want is None:
        return have is want
    if isinstance(have, bool):
        return have == (str(want).lower() in ("true", "1")) if isinstance(want, str) \
            else have == bool(want)
    if isinstance(have, int | float) and isinstance(want, str):
        try:
            return have == float(want)
        except ValueError:
            return False
    if type(have) is type(want) and not isinstance(have, str):
        return have == want
    return str(have).lower() == str(want).lower()
