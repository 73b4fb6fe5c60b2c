"""What the API asks of the node about placement groups, the same from the driver and from a
worker (`Core.placement_call`), and what the node answers."""

from __future__ import annotations

from minray.named_tuple import Record


class CreateGroup(Record):
    """Reserve bundles; answered with None, or ValueError when the name is taken."""

    group_id: str
    bundles: list[dict[str, float]]
    strategy: str
    name: str  # "" for none
    namespace: str  # where the name is looked up
    detached: bool


class RemoveGroup(Record):
    """Free a group's bundles; what runs in it is killed, what waits for it fails."""

    group_id: str


class WatchReady(Record):
    """Store `value` under `object_id` once the group is ready (an error if it is removed)."""

    group_id: str
    object_id: str
    value: bytes  # the pickled PlacementGroup that `get(pg.ready())` returns


class FindGroups(Record):
    """The groups with this id, or this name in this namespace, or all (both None)."""

    group_id: str | None
    name: str | None
    namespace: str


class GroupRecord(Record):
    """What the node tells of a group."""

    group_id: str
    name: str
    bundles: list[dict[str, float]]
    strategy: str
    state: str  # "PENDING", "CREATED" or "REMOVED", as Ray's table
    scheduling_state: str  # "PENDING", "INFEASIBLE", "FINISHED" or "REMOVED"
    infeasible: str | None  # why it can never be placed on this node


PlacementRequest = CreateGroup | RemoveGroup | WatchReady | FindGroups
