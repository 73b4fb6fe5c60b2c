"""What a caller sends to have something run: a task, an actor's creation, a method call."""

from __future__ import annotations

from dataclasses import dataclass, field

TASK, ACTOR, CALL = "task", "actor", "call"


@dataclass(slots=True)
class TaskSpec:
    task_id: str
    name: str
    kind: str  # TASK, ACTOR (creation) or CALL (an actor method)
    args: bytes  # cloudpickled (args, kwargs); b"" for no arguments
    deps: list[str]  # ids of top-level ObjectRef arguments, resolved before it runs
    return_ids: list[str]
    func_id: str | None = None  # the function or class, by content hash
    func_bytes: bytes | None = None  # sent once per process, then only the id
    num_cpus: float = 1.0
    max_retries: int = 0  # tasks: retries on worker death; actors: max_restarts
    runtime_env: dict | None = None  # the caller's override, merged with the parent's env
    actor_id: str | None = None
    method: str | None = None
    attempts: int = field(default=0)
