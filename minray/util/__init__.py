"""Ray's `ray.util` helpers: `ActorPool`, placement groups, and `queue.Queue`
(`minray.util.queue`), `scheduling_strategies` (`minray.util.scheduling_strategies`)."""

from minray.util.actor_pool import ActorPool
from minray.util.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

__all__ = ["ActorPool", "PlacementGroup", "get_current_placement_group", "get_placement_group",
           "placement_group", "placement_group_table", "remove_placement_group"]
