"""The embedded local node, in the driver process: see node.py and docs/design.md.

`start_node` spawns the job's fork server before it loads the rest of the node, so that the
server boots while the node is built; `Node` is imported on first use for the same reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import runtime_env as renv
    from minray.node.node import Node as Node

__all__ = ["Node", "start_node"]


def start_node(*, num_cpus: int, job_env: renv.RuntimeEnv, job_id: str, namespace: str,
               resource_totals: dict[str, float]) -> Node:
    """A new node for this driver, with its session folder."""
    from minray.node import launch, session

    session_dir = session.new_session_dir(prune=False)
    socket_path = session.socket_path(session_dir)
    job_server = launch.spawn_job_server(job_env, socket_path, job_id, num_cpus)
    from minray.node.node import Node

    try:
        node = Node(num_cpus=num_cpus, job_env=job_env, job_id=job_id, namespace=namespace,
                    resource_totals=resource_totals, session_dir=session_dir,
                    socket_path=socket_path, job_server=job_server)
    except BaseException:
        if job_server is not None:
            job_server.proc.kill()
            job_server.proc.wait()
        raise
    session.prune_old_sessions()  # last: it stats every old session, off the first task's path
    return node


def __getattr__(name: str):
    if name != "Node":
        raise AttributeError(f"module 'minray.node' has no attribute {name!r}")
    from minray.node.node import Node

    return Node
