"""Placement groups, as Ray's `ray.util.placement_group`, on one node.

`placement_group(bundles)` reserves each bundle's CPUs from the node once they are free (all at
once, or not yet); tasks and actors scheduled into it with `PlacementGroupSchedulingStrategy` run
on those CPUs. Every strategy places every bundle on this node; a group the node can never hold
(see minray.node.placement) stays pending, as in Ray: `ready()` never resolves and `wait()`
returns False, and scheduling anything into it is refused at `.remote()`.
"""

from __future__ import annotations

import math
import os

import cloudpickle

from minray import api, core
from minray.objects import ObjectRef
from minray.placement_calls import CreateGroup, FindGroups, GroupRecord, RemoveGroup, WatchReady

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class PlacementGroupID:
    """A placement group's id; `hex()` gives it as a string, as Ray's."""

    __slots__ = ("_hex",)

    def __init__(self, hex_id: str):
        self._hex = hex_id

    def hex(self) -> str:
        return self._hex

    def is_nil(self) -> bool:
        return not self._hex

    def __eq__(self, other) -> bool:
        return isinstance(other, PlacementGroupID) and other._hex == self._hex

    def __hash__(self) -> int:
        return hash(self._hex)

    def __reduce__(self):
        return PlacementGroupID, (self._hex,)

    def __repr__(self) -> str:
        return f"PlacementGroupID({self._hex})"


class PlacementGroup:
    """A handle to a placement group; pass it to tasks and actors freely."""

    def __init__(self, id: PlacementGroupID, bundle_cache: list[dict] | None = None):
        self.id = id
        self.bundle_cache = bundle_cache

    @staticmethod
    def empty() -> PlacementGroup:
        return PlacementGroup(PlacementGroupID(""), [])

    @property
    def is_empty(self) -> bool:
        return self.id.is_nil()

    @property
    def bundle_specs(self) -> list[dict]:
        """The bundles, as given (values as floats)."""
        if self.bundle_cache is None:
            self.bundle_cache = _record(self.id.hex()).bundles
        return [dict(b) for b in self.bundle_cache]

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self) -> ObjectRef:
        """An ObjectRef that resolves to this group once its bundles are reserved (`get`
        raises TaskPlacementGroupRemoved if it is removed first)."""
        c = core.current()
        ref = ObjectRef(c.new_id())
        c.placement_call(WatchReady(self.id.hex(), ref.id, cloudpickle.dumps(self)))
        return ref

    def wait(self, timeout_seconds: float = 30) -> bool:
        """True once the group is ready, False if `timeout_seconds` pass first."""
        done, _ = api.wait([self.ready()], timeout=timeout_seconds)
        if done:
            api.get(done[0])  # raises if the group was removed
        return bool(done)

    def __eq__(self, other) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()})"


def placement_group(bundles: list[dict[str, float]], strategy: str = "PACK", name: str = "",
                    lifetime: str | None = None, _soft_target_node_id: str | None = None,
                    bundle_label_selector: list[dict[str, str]] | None = None
                    ) -> PlacementGroup:
    """Reserve `bundles` (e.g. `[{"CPU": 1}] * 2`) on this node; returns at once, and
    `ready()` / `wait()` tell when the reservation is made."""
    specs = _checked_bundles(bundles)
    if strategy not in STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy!r}. Supported strategies "
                         f"are: {', '.join(STRATEGIES)}.")
    if not isinstance(name, str):
        raise TypeError(f"placement group name must be a string, got {type(name).__name__}")
    if lifetime not in (None, "detached"):
        raise ValueError(f"Placement group `lifetime` argument must be either `None` or "
                         f"'detached'. Got {lifetime!r}.")
    if bundle_label_selector:
        raise ValueError("bundle_label_selector: a minray node has no labels to select by")
    c = core.current()
    group_id = os.urandom(18).hex()  # the size of Ray's ids
    c.placement_call(CreateGroup(group_id, specs, strategy, name, c.namespace,
                                 lifetime == "detached"))
    return PlacementGroup(PlacementGroupID(group_id), specs)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Free the group's bundles: tasks and actors running in it are killed (their results
    raise TaskPlacementGroupRemoved / ActorPlacementGroupRemoved), and so are those waiting."""
    _check_group(placement_group)
    core.current().placement_call(RemoveGroup(placement_group.id.hex()))


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group of that name in this job's namespace; ValueError if there is none."""
    if not isinstance(placement_group_name, str) or not placement_group_name:
        raise ValueError("Please supply a non-empty value to get_placement_group")
    c = core.current()
    found = c.placement_call(FindGroups(None, placement_group_name, c.namespace))
    if not found:
        raise ValueError(f"Failed to look up placement group with name: "
                         f"{placement_group_name}")
    return _group_of(found[0])


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict:
    """Ray's table: one group's state as a dict, or every group's, by id."""
    c = core.current()
    if placement_group is not None:
        _check_group(placement_group)
        found = c.placement_call(FindGroups(placement_group.id.hex(), None, c.namespace))
        return _table_row(found[0]) if found else {}
    return {r.group_id: _table_row(r) for r in c.placement_call(FindGroups(None, None,
                                                                           c.namespace))}


def get_current_placement_group() -> PlacementGroup | None:
    """The group the calling task or actor was scheduled in; None in the driver or outside
    any group."""
    placement = core.current().placement
    if placement is None:
        return None
    return _group_of(_record(placement.group_id))


def _record(group_id: str) -> GroupRecord:
    c = core.current()
    found = c.placement_call(FindGroups(group_id, None, c.namespace))
    if not found:
        raise ValueError(f"placement group {group_id} does not exist in this session")
    return found[0]


def _group_of(record: GroupRecord) -> PlacementGroup:
    return PlacementGroup(PlacementGroupID(record.group_id), record.bundles)


def _table_row(record: GroupRecord) -> dict:
    node_id = api.get_runtime_context().get_node_id()
    placed = record.state == "CREATED"
    return {
        "placement_group_id": record.group_id,
        "name": record.name,
        "bundles": dict(enumerate(record.bundles)),
        "bundles_to_node_id": {i: node_id if placed else "" for i in range(len(record.bundles))},
        "strategy": record.strategy,
        "state": record.state,
        "stats": {"scheduling_state": record.scheduling_state},
    }


def _check_group(value) -> None:
    if not isinstance(value, PlacementGroup):
        raise TypeError(f"expected a PlacementGroup (from placement_group()), got "
                        f"{type(value).__name__}")


_EXAMPLE = '`[{"CPU": 1.0}, {"CPU": 2.0}]`'


def _checked_bundles(bundles) -> list[dict[str, float]]:
    """The bundles as dicts of resource name -> float, or a ValueError saying what is wrong."""
    if not isinstance(bundles, list):
        raise ValueError(f"Placement group bundles must be a list, got {type(bundles)}.")
    if not bundles:
        raise ValueError(f"Bundles must be a non-empty list of resource dictionaries. For "
                         f"example: {_EXAMPLE}. Got empty list instead.")
    specs = []
    for bundle in bundles:
        if not isinstance(bundle, dict) or not all(isinstance(k, str) for k in bundle):
            raise ValueError(f"Bundles must be a non-empty list of resource dictionaries. For "
                             f"example: {_EXAMPLE}. Got {bundle!r}.")
        for key, value in bundle.items():
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value < 0):
                raise ValueError(f"bundle resource {key!r} must be a non-negative number, got "
                                 f"{value!r}")
        if not any(bundle.values()):
            raise ValueError(f"Bundles cannot be an empty dictionary or resources with only 0 "
                             f"values. Bundles: {bundles}")
        specs.append({k: float(v) for k, v in bundle.items()})
    return specs
