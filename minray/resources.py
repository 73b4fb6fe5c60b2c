"""Resources beyond CPUs, as Ray has them: GPUs, `memory` and custom resources.

A node declares what it has (`init(num_gpus=..., resources=...)`; memory is 70% of the
machine's, as Ray's default); a task or actor asks with `num_gpus=`, `memory=` and
`resources={...}`. CPUs stay apart (`num_cpus`), on the hot path; a task that asks for nothing
else pays nothing here.
"""

from __future__ import annotations

import os
from numbers import Real

GPU, MEMORY = "GPU", "memory"
_RESERVED = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}


def demand(options: dict) -> dict[str, float] | None:
    """What a task's options ask for besides CPUs, checked; None when nothing."""
    asked: dict[str, float] = {}
    for key, name in (("num_gpus", GPU), ("memory", MEMORY)):
        value = options.get(key)
        if value is not None:
            asked[name] = _amount(key, value)
    custom = options.get("resources")
    if custom is not None:
        if not isinstance(custom, dict):
            raise TypeError(f"resources must be a dict of name -> amount, got "
                            f"{type(custom).__name__}")
        for name, value in custom.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"resources: names must be non-empty strings, got {name!r}")
            if name in _RESERVED:
                raise ValueError(f"resources: use {_RESERVED[name]}= rather than "
                                 f"resources={{{name!r}: ...}}")
            asked[name] = _amount(f"resources[{name!r}]", value)
    if GPU in asked and asked[GPU] > 1 and asked[GPU] != int(asked[GPU]):
        raise ValueError(f"num_gpus above 1 must be a whole number, got {asked[GPU]!r}")
    return {k: v for k, v in asked.items() if v} or None


def node_totals(num_gpus: int | None, resources: dict | None) -> dict[str, float]:
    """What a node declares besides its CPUs."""
    totals = {GPU: float(_visible_gpus() if num_gpus is None else num_gpus),
              MEMORY: float(_default_memory())}
    for name, value in (demand({"resources": resources}) or {}).items():
        totals[name] = value
    return totals


def missing(asked: dict[str, float] | None, totals: dict[str, float]) -> str | None:
    """Why a demand can never be met on this node, in words; None if it can."""
    for name, amount in (asked or {}).items():
        have = totals.get(name, 0.0)
        if amount > have:
            return (f"it asks for {amount:g} {name} and this node has {have:g}; pass "
                    f"{'num_gpus' if name == GPU else 'resources'}= to minray.init() to "
                    f"declare more")
    return None


def _amount(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or value < 0:
        raise ValueError(f"{key} must be a non-negative number, got {value!r}")
    return float(value)


def _visible_gpus() -> int:
    """GPUs this process may use, as Ray counts them when init is not told: the ids in
    CUDA_VISIBLE_DEVICES, or the NVIDIA devices the kernel shows."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        return sum(1 for name in os.listdir("/dev") if name[6:].isdigit()
                   and name.startswith("nvidia"))
    except OSError:
        return 0


def _default_memory() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.7)
    except (ValueError, OSError, AttributeError):
        return 0
