"""What a connected worker asks of the node, message by message (under the node's lock, on
the I/O thread): results, nested submissions, lookups, puts, and the get/wait of a task that
blocks, whose CPUs are lent out until it is answered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from minray import exceptions as exc
from minray.node.state import Request, Worker, WorkerState
from minray.protocol import (
    Cancel,
    CancelTask,
    CreateNamed,
    Done,
    Exiting,
    Get,
    Handles,
    KillActor,
    LookupActor,
    Message,
    Paused,
    PlacementCall,
    Put,
    Query,
    Reply,
    StateQuery,
    Submit,
    Wait,
    Yield,
)
from minray.task import Result

if TYPE_CHECKING:
    from minray.node.node import Node


class WorkerMessages:
    def __init__(self, node: Node):
        self._node = node

    def handle(self, worker: Worker, msg: Message) -> None:
        if type(msg) is Done:  # most messages, by far: no pattern matching on their path
            self._done(worker, msg.task_id, msg.results)
            return
        node = self._node
        match msg:
            case Submit(task=task):
                node.store.keep(task.return_ids)  # the worker holds refs the node cannot count
                try:
                    node.submit_from(task, worker.env, worker)
                except Exception as e:  # noqa: BLE001 - the submitter learns it from get()
                    node.store.fail(task, exc.RayError(f"cannot submit: {e}"))
            case CreateNamed(task=task, req_id=req_id):
                try:
                    answer = (node.submit_named_from(task, worker.env, worker), None)
                except Exception as e:  # noqa: BLE001 - the creator raises it
                    answer = (None, str(e))
                node.pool.send(worker, Reply(req_id, answer))
            case LookupActor(req_id=req_id, name=name, namespace=namespace):
                node.pool.send(worker, Reply(req_id, node.lookup(name, namespace, worker)))
            case Handles(gained=gained, lost=lost, escaped=escaped):
                node.actors.handles_changed(worker, gained, lost, escaped)
            case Query(req_id=req_id, what="resources"):
                node.pool.send(worker, Reply(req_id, node.resources()))
            case StateQuery(req_id=req_id):
                node.pool.send(worker, Reply(req_id, node.state_query(msg)))
            case Exiting(reason=reason):
                if worker.actor is not None:
                    node.actors.exiting(worker, reason)
            case Put(object_id=object_id, data=data, for_task=for_task):
                node.store.store(object_id, (True, data))
                if not for_task:
                    node.store.keep([object_id])
            case Yield(object_id=object_id, result=result):
                node.store.store(object_id, result)
            case Get() | Wait():
                self._blocked(worker, msg)
            case Cancel(req_id=req_id):
                self._timed_out(worker, req_id)
            case KillActor(actor_id=actor_id, no_restart=no_restart):
                node.actors.kill(actor_id, no_restart)
                node.schedule()
            case PlacementCall(req_id=req_id, request=request):
                try:
                    answer = (node.groups.handle(request), None)
                except Exception as e:  # noqa: BLE001 - the caller raises it
                    answer = (None, e)
                node.pool.send(worker, Reply(req_id, answer))
                node.schedule()
            case Paused(breakpoint=where):
                from minray import debug_attach  # on use: few sessions ever stop in one

                debug_attach.announce(where)
            case CancelTask(object_id=object_id, force=force, recursive=recursive):
                try:
                    node.cancels.cancel(object_id, force=force, recursive=recursive)
                except ValueError:
                    pass  # force on an actor call: as if not asked (the driver's call raises)
                node.schedule()

    def _done(self, worker: Worker, task_id: str, results: list[Result]) -> None:
        node = self._node
        if node.cancels.cancelled or node.cancels.children:
            results = node.cancels.finished(task_id, results)
        if worker.actor is not None:
            node.actors.done(worker, task_id, results)
            return
        node.store.complete(node.scheduler.finished(worker), results)
        node.schedule()

    def _blocked(self, worker: Worker, msg: Get | Wait) -> None:
        """A task blocks in get/wait: lend out its CPUs until the answer is sent."""
        node = self._node
        wait = isinstance(msg, Wait)
        request = Request(msg.ids, wait, cancel=lambda: None)
        worker.requests[msg.req_id] = request
        node.log.block_started(worker, request)
        node.scheduler.blocked(worker)
        need = msg.num_returns if wait else len(set(msg.ids))
        request.cancel = node.store.when_ready(msg.ids, need,
                                               lambda: self._answer(worker, msg.req_id))
        node.schedule()

    def _answer(self, worker: Worker, req_id: int) -> None:
        request = worker.requests.pop(req_id, None)
        if request is None or worker.state is WorkerState.DEAD:
            return
        store = self._node.store
        self._node.log.block_ended(worker, request)
        if request.wait:
            payload = [i for i in request.ids if i in store]
        else:
            payload = [store[i] for i in request.ids]
        self._node.scheduler.unblocked(worker)
        self._node.pool.send(worker, Reply(req_id, payload))

    def _timed_out(self, worker: Worker, req_id: int) -> None:
        """The task's get/wait timed out: answer a wait with what is ready now."""
        request = worker.requests.pop(req_id, None)
        if request is None:
            return
        request.cancel()
        self._node.log.block_ended(worker, request)
        self._node.scheduler.unblocked(worker)
        if request.wait:
            self._node.pool.send(worker, Reply(req_id, [i for i in request.ids
                                                        if i in self._node.store]))
