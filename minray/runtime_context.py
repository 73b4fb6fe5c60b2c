"""`get_runtime_context()`'s answer: where the caller runs (job, task, actor, node, worker,
resources, namespace, runtime_env), by Ray's accessors, read from this process's core."""

from __future__ import annotations

from minray import core
from minray.actor import ActorHandle
from minray.objects import id_hex


class RuntimeContext:
    """Where the caller runs: job, task, actor and effective runtime_env."""

    def __init__(self, c: core.Core):
        self._core = c

    def get(self) -> dict:
        """The context as a dict, as Ray's `get()`."""
        out = {"job_id": self.get_job_id(), "node_id": self.get_node_id(),
               "namespace": self.namespace}
        if self._core.task_id is not None:
            out["task_id"] = self.get_task_id()
        if self._core.actor_id is not None:
            out["actor_id"] = self.get_actor_id()
        return out

    def get_job_id(self) -> str:
        return self._core.job_id

    def get_task_id(self) -> str | None:
        return id_hex(self._core.task_id, 24)

    def get_actor_id(self) -> str | None:
        return id_hex(self._core.actor_id, 16)

    def get_worker_id(self) -> str:
        return id_hex(self._core.worker_id, 28)

    def get_node_id(self) -> str:
        return self._core.node_id

    def get_placement_group_id(self) -> str | None:
        """The id (hex) of the placement group the caller was scheduled in, or None."""
        placement = self._core.placement
        return None if placement is None else placement.group_id

    @property
    def should_capture_child_tasks_in_placement_group(self) -> bool:
        """Whether the tasks and actors the caller starts go into its placement group."""
        placement = self._core.placement
        return placement is not None and placement.capture

    def is_canceled(self) -> bool:
        """The running task or actor call was cancelled: check it to stop early."""
        return self._core.is_cancelled()

    def get_assigned_resources(self) -> dict[str, float]:
        """What the calling task or actor holds: {"CPU": 1.0, "GPU": 1.0, ...}."""
        spec = self._core.resource_spec
        if spec is None:
            return {}
        held = {"CPU": float(spec.num_cpus), **(spec.resources or {})}
        return {k: v for k, v in held.items() if v}

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        return {"GPU": [str(i) for i in self._core.gpu_ids]}

    @property
    def current_actor(self):
        """The handle of the actor this runs in; RuntimeError outside an actor, as Ray."""
        c = self._core
        if c.actor_id is None:
            raise RuntimeError("current_actor is only available inside an actor")
        return ActorHandle(c.actor_id, c.resource_spec.actor.class_meta)

    # Ray's deprecated spellings
    @property
    def task_id(self) -> str | None:
        return self.get_task_id()

    @property
    def actor_id(self) -> str | None:
        return self.get_actor_id()

    @property
    def node_id(self) -> str:
        return self.get_node_id()

    @property
    def namespace(self) -> str:
        return self._core.namespace

    @property
    def job_id(self) -> str:
        return self.get_job_id()

    @property
    def runtime_env(self):
        """The effective env, a `RuntimeEnv`."""
        from runtime_env import RuntimeEnv  # the spec module only, on use

        return RuntimeEnv.deserialize(self.get_runtime_env_string())

    def get_runtime_env_string(self) -> str:
        return self._core.runtime_env_json

    @property
    def was_current_actor_reconstructed(self) -> bool:
        return self._core.was_restarted
