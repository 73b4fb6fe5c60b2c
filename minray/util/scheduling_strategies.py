"""Scheduling strategies, as Ray's `ray.util.scheduling_strategies`, for
`.options(scheduling_strategy=...)`. On one node "DEFAULT" and "SPREAD" both mean "here", and
so does a NodeAffinitySchedulingStrategy naming this node (or any node, with soft=True); one
naming another node with soft=False can never run. A PlacementGroupSchedulingStrategy places
the task or actor in a bundle of its group.
"""

from __future__ import annotations

from minray import exceptions as exc
from minray.task import Placement
from minray.util.placement_group import PlacementGroup

_NAMED = ("DEFAULT", "SPREAD")


class PlacementGroupSchedulingStrategy:
    """Run in `placement_group`'s bundle `placement_group_bundle_index` (-1: any with room).
    With `placement_group_capture_child_tasks`, the tasks and actors it starts go into the same
    group unless they say otherwise."""

    def __init__(self, placement_group: PlacementGroup | None,
                 placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None):
        if placement_group is not None and not isinstance(placement_group, PlacementGroup):
            raise TypeError(f"placement_group must be a PlacementGroup or None, got "
                            f"{type(placement_group).__name__}")
        if (isinstance(placement_group_bundle_index, bool)
                or not isinstance(placement_group_bundle_index, int)):
            raise TypeError(f"placement_group_bundle_index must be an int, got "
                            f"{placement_group_bundle_index!r}")
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    def __repr__(self) -> str:
        return (f"PlacementGroupSchedulingStrategy({self.placement_group!r}, "
                f"{self.placement_group_bundle_index}, "
                f"{self.placement_group_capture_child_tasks})")


class NodeAffinitySchedulingStrategy:
    """Run on the node `node_id`; with `soft=True`, elsewhere if it cannot."""

    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False):
        if not isinstance(node_id, str) or not _is_hex(node_id):
            raise ValueError(f"Invalid node_id {node_id!r}: a node's id is a hex string (see "
                             f"get_runtime_context().get_node_id())")
        self.node_id = node_id
        self.soft = soft
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable

    def __repr__(self) -> str:
        return f"NodeAffinitySchedulingStrategy({self.node_id!r}, soft={self.soft})"


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return bool(text)


def check(strategy) -> None:
    """A `scheduling_strategy` option, checked where it is given."""
    if isinstance(strategy, str):
        if strategy not in _NAMED:
            raise ValueError(f'Invalid scheduling_strategy value {strategy}. Valid values are '
                             f'["DEFAULT" | "SPREAD" | PlacementGroupSchedulingStrategy | '
                             f'NodeAffinitySchedulingStrategy]')
    elif strategy is not None and not isinstance(
            strategy, (PlacementGroupSchedulingStrategy, NodeAffinitySchedulingStrategy)):
        raise TypeError(f"scheduling_strategy must be None, \"DEFAULT\", \"SPREAD\", a "
                        f"PlacementGroupSchedulingStrategy or a NodeAffinitySchedulingStrategy, "
                        f"got {type(strategy).__name__}")


def placement_of(strategy, current: Placement | None, cpus: float, *, name: str,
                 actor: bool) -> Placement | None:
    """Where a task or actor being submitted runs: the placement group bundle(s), or None for
    anywhere on the node. `current` is the caller's own placement (its group may capture it);
    `cpus` what a bundle must hold for it."""
    if strategy is None:
        if current is not None and current.capture:
            return Placement(current.group_id, -1, True, cpus)
        return None
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        _check_node(strategy, name, actor)
        return None
    if not isinstance(strategy, PlacementGroupSchedulingStrategy):
        return None  # "DEFAULT", "SPREAD"
    group, index = strategy.placement_group, strategy.placement_group_bundle_index
    if group is None or group.is_empty:
        if index != -1:
            raise ValueError("If placement group is not set, the value of bundle index must "
                             "be -1.")
        return None
    if not -1 <= index < group.bundle_count:
        raise ValueError(f"placement group bundle index {index} is invalid. Valid placement "
                         f"group indexes: 0-{group.bundle_count - 1}, or -1 for any bundle")
    capture = strategy.placement_group_capture_child_tasks
    if capture is None:  # as Ray: the caller's own setting, False in the driver
        capture = current is not None and current.capture
    return Placement(group.id.hex(), index, bool(capture), cpus)


def _check_node(strategy: NodeAffinitySchedulingStrategy, name: str, actor: bool) -> None:
    from minray.api import get_runtime_context  # api imports remote, which imports this

    here = get_runtime_context().get_node_id()
    if strategy.node_id == here or strategy.soft:
        return
    error = exc.ActorUnschedulableError if actor else exc.TaskUnschedulableError
    raise error(f"{name} cannot be scheduled: its NodeAffinitySchedulingStrategy names node "
                f"{strategy.node_id!r} with soft=False, and the only node is {here!r} "
                f"(minray runs one node; get_runtime_context().get_node_id() gives its id)")
