"""Ray's `ray.util` helpers: `ActorPool`, `queue.Queue` (`minray.util.queue`)."""

from minray.util.actor_pool import ActorPool

__all__ = ["ActorPool"]
