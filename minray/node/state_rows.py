"""What the state API and `minray status` see: rows of actors, workers, objects and the node,
read from the node's parts under its lock, with Ray's field and state names.

Rows are plain dicts (they cross the socket to a worker or an observer, and the caller turns
them into `minray.util.state`'s dataclasses); every field is filled, and the caller drops the
detail-only ones unless asked. Filters and the limit apply here, so a long object list does
not cross the socket only to be cut.
"""

from __future__ import annotations

import collections
import os
import time
from typing import TYPE_CHECKING, Any

from minray.node.io_loop import Connection
from minray.node.state import Actor, WorkerState
from minray.objects import id_hex
from minray.protocol import Message, Reply, StateQuery
from minray.util.state_filters import passes
from minray.values import Segment

if TYPE_CHECKING:
    from minray.node.node import Node

IP = "127.0.0.1"
Row = dict[str, Any]


def answer(node: Node, query: StateQuery) -> tuple[Any, str | None]:
    """(the rows that pass and how many did, or the summary; None) or (None, why not)."""
    try:
        if query.kind == "status":
            return status(node), None
        if query.kind == "task_events":  # the event log, for list_tasks and the timeline
            return node.log.snapshot(node_id=node.node_id, job_id=node.job_id), None
        passed = [row for row in ROWS[query.kind](node) if passes(row.get, query.filters)]
        return (passed[:query.limit], len(passed)), None
    except Exception as e:  # noqa: BLE001 - the asker raises it; the node goes on
        return None, f"{type(e).__name__}: {e}"


def observed(node: Node, conn: Connection, msg: Message) -> None:
    """A message from an observer (on the I/O thread, under the lock): it may only ask."""
    if isinstance(msg, StateQuery):
        node.io.send(conn, Reply(msg.req_id, answer(node, msg)))
    else:
        node.io.close(conn)


def actor_state(actor: Actor, store) -> str:
    if actor.dead is not None:
        return "DEAD"
    worker = actor.worker
    if actor.created and worker is not None and worker.state is WorkerState.BUSY:
        return "ALIVE"
    if actor.restarts:
        return "RESTARTING"
    if any(dep not in store for dep in actor.spec.deps):
        return "DEPENDENCIES_UNREADY"
    return "PENDING_CREATION"


def _death_cause(actor: Actor) -> dict | None:
    """Ray's shape: one context, named by what ended the actor, holding its message."""
    if actor.dead is None:
        return None
    from minray.exceptions import ActorEnvSetupError

    creation = actor.spec.actor
    context = ("runtime_env_failed_context" if isinstance(actor.dead, ActorEnvSetupError)
               else "actor_died_error_context")
    return {context: {"error_message": str(actor.dead), "actor_id": id_hex(actor.id, 16),
                      "class_name": creation.class_meta.name, "name": creation.name or "",
                      "ray_namespace": creation.namespace}}


def actor_rows(node: Node) -> list[Row]:
    rows = []
    for actor in node.actors.actors.values():
        spec, creation, worker = actor.spec, actor.spec.actor, actor.worker
        resources = {"CPU": spec.num_cpus} if spec.num_cpus else {}
        resources.update(spec.resources or {})
        rows.append({
            "actor_id": id_hex(actor.id, 16), "class_name": creation.class_meta.name,
            "state": actor_state(actor, node.store), "job_id": node.job_id,
            "name": creation.name or "", "node_id": node.node_id,
            "pid": worker.proc.pid if worker is not None and worker.proc is not None else None,
            "ray_namespace": creation.namespace,
            "serialized_runtime_env": actor.env.spec.serialize(),
            "required_resources": resources, "death_cause": _death_cause(actor),
            "is_detached": creation.detached,
            "placement_group_id": spec.placement.group_id if spec.placement else None,
            "repr_name": "", "num_restarts": actor.restarts,
            "num_restarts_due_to_lineage_reconstruction": 0,
            "num_restarts_due_to_node_preemption": 0, "call_site": None,
            "label_selector": None})
    return rows


# ---------------------------------------------------------------------- workers
def _worker_row(node: Node, worker_id: str, **fields) -> Row:
    row = {"worker_id": id_hex(worker_id, 28), "is_alive": True, "worker_type": "WORKER",
           "exit_type": None, "node_id": node.node_id, "ip": IP, "pid": None,
           "exit_detail": None, "worker_launch_time_ms": None, "worker_launched_time_ms": None,
           "start_time_ms": None, "end_time_ms": None, "debugger_port": None,
           "num_paused_threads": None}
    row.update(fields)
    return row


def worker_rows(node: Node) -> list[Row]:
    """The driver, the workers alive, then those that ended (the newest 1000)."""
    rows = [_worker_row(node, "driver", worker_type="DRIVER", pid=os.getpid())]
    rows += [_worker_row(node, w.id, is_alive=w.state is not WorkerState.DEAD,
                         pid=w.proc.pid if w.proc is not None else None) for w in node.pool]
    rows += [_worker_row(node, e.id, is_alive=False, pid=e.pid, exit_type=e.exit_type,
                         exit_detail=e.exit_detail, end_time_ms=int(e.ended_at * 1000))
             for e in node.pool.ended]
    return rows


# ---------------------------------------------------------------------- objects
_REFERENCE = {"ref": "LOCAL_REFERENCE", "arg": "USED_BY_PENDING_TASK",
              "kept": "CAPTURED_IN_OBJECT", "": "UNKNOWN_STATUS"}


def _task_statuses(node: Node) -> dict[str, tuple[str, int]]:
    """Object id -> (Ray's status of the task that makes it, its attempt), for the tasks not
    finished."""
    found: dict[str, tuple[str, int]] = {}

    def note(tasks, status: str) -> None:
        for task in tasks:
            for oid in task.return_ids:
                found[oid] = (status, task.attempts)

    note(node.pending.values(), "PENDING_ARGS_AVAIL")
    note(node.scheduler.queued(), "PENDING_NODE_ASSIGNMENT")
    for worker in node.pool:
        if worker.task is not None:
            note([worker.task], "RUNNING_IN_RAY_GET" if worker.requests else "RUNNING")
    for actor in node.actors.actors.values():
        note(actor.queue, "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY")
        note(actor.inflight.values(), "RUNNING")
    return found


def _size(data) -> int:
    return data.size if type(data) is Segment else len(data)


def object_rows(node: Node) -> list[Row]:
    census = node.store.census()
    running = _task_statuses(node) if any(r is None for _, r, _ in census) else {}
    rows = []
    for oid, result, held in census:
        if result is None:
            status, attempt = running.get(oid, ("NIL", 0))
            size = -1
        else:
            status, attempt, size = ("FINISHED" if result[0] else "FAILED"), 0, _size(result[1])
        rows.append({"object_id": id_hex(oid, 28), "object_size": size, "task_status": status,
                     "attempt_number": attempt, "reference_type": _REFERENCE[held],
                     "call_site": "disabled", "type": "DRIVER", "pid": os.getpid(), "ip": IP})
    return rows


# ---------------------------------------------------------------------- the node
def node_rows(node: Node) -> list[Row]:
    return [{"node_id": node.node_id, "node_ip": IP, "is_head_node": True, "state": "ALIVE",
             "state_message": None, "node_name": IP,
             "resources_total": node.resources()["total"], "labels": {},
             "start_time_ms": int(node.started_at * 1000), "end_time_ms": None}]


def status(node: Node) -> dict:
    """The summary `minray status` prints."""
    envs = node.envs.envs.values()
    objects = [r for _, r, _ in node.store.census() if r is not None]
    return {
        "session": str(node.session_dir), "driver_pid": os.getpid(), "job_id": node.job_id,
        "node_id": node.node_id, "namespace": node.namespace,
        "uptime_s": round(time.time() - node.started_at, 1),
        "resources": node.resources(),
        "workers": dict(collections.Counter(w.state.name for w in node.pool)),
        "workers_ended": len(node.pool.ended),
        "actors": dict(collections.Counter(actor_state(a, node.store)
                                           for a in node.actors.actors.values())),
        "envs": {"ready": sum(e.launch is not None and e.error is None for e in envs),
                 "preparing": sum(e.launch is None and e.error is None and e.preparing
                                  for e in envs),
                 "failed": sum(e.error is not None for e in envs)},
        "tasks": {"running": sum(w.task is not None for w in node.pool),
                  "queued": len(node.scheduler.queued()),
                  "waiting_for_arguments": len(node.pending)},
        "objects": {"count": len(objects), "bytes": sum(_size(r[1]) for r in objects)},
    }


ROWS = {"actors": actor_rows, "workers": worker_rows, "objects": object_rows,
        "nodes": node_rows}
