"""Ray's state API (`ray.util.state`) for the live session: `list_actors`, `list_workers`,
`list_objects`, `list_nodes`, `get_actor`, with Ray's field names, states and filters.

Rows are dataclasses, as Ray's, that also answer `row["state"]` and `row.get("state")`: Ray's
rows allow both and user code uses both, and a dataclass keeps the fields discoverable
(`dataclasses.fields`, an IDE) where a dict would not. As in Ray, the fields Ray shows only
in detail are None unless `detail=True` (`get_actor` always gives them).

In the driver and inside tasks the node answers directly (a worker asks over its socket). A
process with no session of its own (the `minray` command, another script) reads the newest
running session on this machine, or the session folder given as `address`
(`minray.state_client`).
"""

from __future__ import annotations

from dataclasses import dataclass

from minray import core
from minray.address import check_local
from minray.named_tuple import Record
from minray.objects import id_hex
from minray.protocol import StateQuery
from minray.state_client import NoSession, RayStateApiException, connect
from minray.util.state_filters import Row, check_filters
from minray.util.state_tasks import TaskState, list_tasks, summarize_tasks

__all__ = ["ActorState", "NodeState", "NoSession", "ObjectState", "RayStateApiException",
           "TaskState", "WorkerState", "get_actor", "list_actors", "list_nodes", "list_objects",
           "list_tasks", "list_workers", "summarize_tasks"]

DEFAULT_LIMIT = 100
DEFAULT_TIMEOUT = 30


@dataclass
class ActorState(Row):
    """An actor; state is DEPENDENCIES_UNREADY (its arguments are not ready),
    PENDING_CREATION (waiting for resources, its env, its process or its constructor), ALIVE,
    RESTARTING or DEAD (death_cause says why)."""

    actor_id: str
    class_name: str
    state: str
    job_id: str
    name: str | None
    node_id: str | None
    pid: int | None
    ray_namespace: str | None
    serialized_runtime_env: str | None = None
    required_resources: dict | None = None
    death_cause: dict | None = None
    is_detached: bool | None = None
    placement_group_id: str | None = None
    repr_name: str | None = None
    num_restarts: int | None = None
    num_restarts_due_to_lineage_reconstruction: int | None = None
    num_restarts_due_to_node_preemption: int | None = None
    call_site: str | None = None
    label_selector: dict | None = None


@dataclass
class WorkerState(Row):
    """A worker process (worker_type WORKER) or the driver (DRIVER); ended workers are kept,
    with exit_type SYSTEM_ERROR (a crash), INTENDED_USER_EXIT (an actor killed, exited or
    out of scope) or INTENDED_SYSTEM_EXIT (the node let it go)."""

    worker_id: str
    is_alive: bool
    worker_type: str
    exit_type: str | None
    node_id: str
    ip: str
    pid: int | None
    exit_detail: str | None = None
    worker_launch_time_ms: int | None = None
    worker_launched_time_ms: int | None = None
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    debugger_port: int | None = None
    num_paused_threads: int | None = None


@dataclass
class ObjectState(Row):
    """An object someone can still ask for: object_size is -1 while its task runs;
    reference_type LOCAL_REFERENCE (a ref in the driver), USED_BY_PENDING_TASK,
    CAPTURED_IN_OBJECT (a ref left the driver in a value, or a worker made it) or
    UNKNOWN_STATUS."""

    object_id: str
    object_size: int
    task_status: str
    attempt_number: int
    reference_type: str
    call_site: str
    type: str
    pid: int
    ip: str


@dataclass
class NodeState(Row):
    """The one node: this machine."""

    node_id: str
    node_ip: str
    is_head_node: bool
    state: str
    state_message: str | None
    node_name: str
    resources_total: dict
    labels: dict
    start_time_ms: int | None = None
    end_time_ms: int | None = None


class Kind(Record):
    """One kind of row: its class, the columns Ray filters on, those shown without detail."""

    row: type
    filterable: frozenset[str]
    base: frozenset[str]


KINDS = {
    "actors": Kind(ActorState, frozenset(
        {"actor_id", "class_name", "job_id", "name", "node_id", "pid", "placement_group_id",
         "ray_namespace", "repr_name", "state"}), frozenset(
        {"actor_id", "class_name", "job_id", "name", "node_id", "pid", "ray_namespace",
         "state"})),
    "workers": Kind(WorkerState, frozenset(
        {"debugger_port", "exit_type", "ip", "is_alive", "node_id", "num_paused_threads", "pid",
         "worker_id", "worker_type"}), frozenset(
        {"exit_type", "ip", "is_alive", "node_id", "pid", "worker_id", "worker_type"})),
    "objects": Kind(ObjectState, *(frozenset(
        {"attempt_number", "call_site", "ip", "object_id", "object_size", "pid",
         "reference_type", "task_status", "type"}),) * 2),
    "nodes": Kind(NodeState, frozenset(
        {"is_head_node", "node_id", "node_ip", "node_name", "state"}), frozenset(
        {"is_head_node", "labels", "node_id", "node_ip", "node_name", "resources_total",
         "state", "state_message"})),
}


def list_actors(address: str | None = None, filters: list | None = None,
                limit: int = DEFAULT_LIMIT, timeout: int = DEFAULT_TIMEOUT,
                detail: bool = False, raise_on_missing_output: bool = True,
                _explain: bool = False) -> list[ActorState]:
    """The session's actors, dead ones included, oldest first."""
    return list_rows("actors", address, filters, limit, timeout, detail)


def list_workers(address: str | None = None, filters: list | None = None,
                 limit: int = DEFAULT_LIMIT, timeout: int = DEFAULT_TIMEOUT,
                 detail: bool = False, raise_on_missing_output: bool = True,
                 _explain: bool = False) -> list[WorkerState]:
    """The driver, the worker processes alive, then the last 1000 that ended."""
    return list_rows("workers", address, filters, limit, timeout, detail)


def list_objects(address: str | None = None, filters: list | None = None,
                 limit: int = DEFAULT_LIMIT, timeout: int = DEFAULT_TIMEOUT,
                 detail: bool = False, raise_on_missing_output: bool = True,
                 _explain: bool = False) -> list[ObjectState]:
    """The objects stored or being computed that someone can still ask for."""
    return list_rows("objects", address, filters, limit, timeout, detail)


def list_nodes(address: str | None = None, filters: list | None = None,
               limit: int = DEFAULT_LIMIT, timeout: int = DEFAULT_TIMEOUT,
               detail: bool = False, raise_on_missing_output: bool = True,
               _explain: bool = False) -> list[NodeState]:
    """The one node, this machine."""
    return list_rows("nodes", address, filters, limit, timeout, detail)


def get_actor(id: str, address: str | None = None, timeout: int = DEFAULT_TIMEOUT,
              _explain: bool = False) -> ActorState | None:
    """An actor by its id (hex, as `list_actors` gives it), with every field; None if there
    is none."""
    if not isinstance(id, str) or not id:
        raise TypeError(f"get_actor: id must be an actor id (a hex str), got {id!r}")
    hex_id = id if len(id) == 32 and _is_hex(id) else id_hex(id, 16)
    found = list_rows("actors", address, [("actor_id", "=", hex_id)], 1, timeout, True)
    return found[0] if found else None


def list_rows(kind: str, address: str | None, filters: list | None, limit: int,
              timeout: float, detail: bool) -> list:
    """Rows of a kind (see KINDS), checked and asked for; what every list_* call does."""
    spec = KINDS[kind]
    checked = check_filters(filters, spec.filterable, f"list_{kind}")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"list_{kind}: limit must be a positive int, got {limit!r}")
    rows, _total = ask(StateQuery(0, kind, checked, limit, bool(detail)), address, timeout)
    return [to_row(spec, row, detail) for row in rows]


def to_row(spec: Kind, row: dict, detail: bool):
    """A row dict from the node as its dataclass; detail-only fields None unless `detail`."""
    return spec.row(**(row if detail else
                       {k: (v if k in spec.base else None) for k, v in row.items()}))


def ask(query: StateQuery, address: str | None, timeout: float):
    """The node's answer: this process's own session's, or, from a process with none (or
    given a session folder), a running session's through its socket."""
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    folder = _session_folder(address)
    current = core.get_current()
    if current is not None and folder is None:
        answer, error = current.state_query(query)
    else:
        answer, error = _observe(query, folder, timeout)
    if error is not None:
        raise RayStateApiException(f"the node could not answer the state query: {error}")
    return answer


def _observe(query: StateQuery, folder: str | None, timeout: float):
    """Ask a session through its socket. A session picked as the newest running one that
    shuts down meanwhile is no error: the next newest is asked."""
    for attempt in range(_TRIES):
        try:
            with connect(folder) as observer:
                return observer.ask(query, timeout)
        except NoSession:
            if folder is not None or attempt == _TRIES - 1:
                raise
    raise AssertionError("unreachable")


_TRIES = 3


def _session_folder(address: str | None) -> str | None:
    """The session folder an address names, or None for this machine's own (local names)."""
    if isinstance(address, str) and ("/" in address or address.startswith("session_")):
        return address
    check_local(address, "address")
    return None


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True
