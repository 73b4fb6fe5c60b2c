"""Resources beyond CPUs, init's parameters, the runtime context and ids, as a Ray user writes
them: code written for a cluster runs on one machine."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import minray
from procs import Gate


@pytest.fixture
def gpu_node():
    """A node that declares 2 GPUs and 4 units of a custom resource (nothing checks that the
    GPUs exist, as in Ray when num_gpus is given)."""
    minray.init(num_cpus=4, num_gpus=2, resources={"disk": 4})
    yield minray
    minray.shutdown()


def test_a_gpu_task_sees_only_its_own_gpus(gpu_node):
    ray = gpu_node

    @ray.remote(num_gpus=1)
    def which():
        return ray.get_gpu_ids(), os.environ["CUDA_VISIBLE_DEVICES"]

    ids, visible = ray.get(which.remote(), timeout=60)
    assert len(ids) == 1 and visible == str(ids[0])

    @ray.remote(num_gpus=2)
    def both():
        return sorted(ray.get_gpu_ids()), os.environ["CUDA_VISIBLE_DEVICES"]

    assert ray.get(both.remote(), timeout=60) == ([0, 1], "0,1")

    @ray.remote
    def none():
        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    assert ray.get(none.remote(), timeout=60) == ([], os.environ.get("CUDA_VISIBLE_DEVICES"))


def test_gpus_and_custom_resources_limit_how_many_run_at_once(gpu_node, tmp_path):
    ray = gpu_node
    gate = Gate(tmp_path)

    @ray.remote(num_gpus=1, resources={"disk": 1})
    def hold():
        gate.wait()
        return ray.get_gpu_ids()[0]

    refs = [hold.remote() for _ in range(3)]
    ready, _ = ray.wait(refs, num_returns=3, timeout=2)
    assert ready == []  # all wait at the gate or for a GPU
    assert ray.available_resources().get("GPU", 0) == 0  # two hold both GPUs, one waits
    assert ray.available_resources()["disk"] == 2
    gate.open()
    assert sorted(ray.get(refs, timeout=60)) in ([0, 0, 1], [0, 1, 1])
    assert ray.available_resources()["GPU"] == 2


def test_fractional_gpus_share_a_device(gpu_node, tmp_path):
    ray = gpu_node
    gate = Gate(tmp_path)

    @ray.remote(num_gpus=0.5)
    def half():
        gate.wait()
        return ray.get_gpu_ids()

    refs = [half.remote() for _ in range(4)]
    gate.open()
    ids = [tuple(i) for i in ray.get(refs, timeout=60)]
    assert all(len(i) == 1 for i in ids) and set(ids) <= {(0,), (1,)}


def test_an_actor_holds_its_gpu_for_life(gpu_node):
    ray = gpu_node

    @ray.remote(num_gpus=1)
    class Trainer:
        def gpus(self):
            return ray.get_gpu_ids(), ray.get_runtime_context().get_assigned_resources()

    trainer = Trainer.remote()
    ids, assigned = ray.get(trainer.gpus.remote(), timeout=60)
    assert len(ids) == 1 and assigned == {"GPU": 1.0}
    assert ray.available_resources()["GPU"] == 1
    ray.kill(trainer)
    ray.get(Trainer.remote().gpus.remote(), timeout=60)  # the freed GPU can be had again


def test_asking_for_more_than_the_node_has_fails_at_remote(gpu_node):
    ray = gpu_node

    @ray.remote(num_gpus=3)
    def greedy():
        return 1

    with pytest.raises(ValueError, match="3 GPU and this node has 2"):
        greedy.remote()
    with pytest.raises(ValueError, match="5 disk and this node has 4"):
        greedy.options(num_gpus=0, resources={"disk": 5}).remote()
    with pytest.raises(ValueError, match="0 tpu|1 tpu and this node has 0"):
        greedy.options(num_gpus=0, resources={"tpu": 1}).remote()


@pytest.mark.parametrize("options, error", [
    ({"num_gpus": -1}, "num_gpus must be a non-negative number"),
    ({"resources": {"CPU": 1}}, "use num_cpus= rather than"),
    ({"resources": {"GPU": 1}}, "use num_gpus= rather than"),
    ({"resources": ["disk"]}, "resources must be a dict"),
    ({"memory": "1G"}, "memory must be a non-negative number"),
    ({"num_gpus": 1.5}, "whole number"),
])
def test_bad_resource_options_fail_where_given(options, error):
    @minray.remote
    def f():
        return 1

    with pytest.raises((ValueError, TypeError), match=error):
        f.options(**options)


def test_cluster_resources_and_nodes_describe_this_node(gpu_node):
    ray = gpu_node
    total = ray.cluster_resources()
    assert total["CPU"] == 4 and total["GPU"] == 2 and total["disk"] == 4
    assert total["memory"] > 0 and "node:127.0.0.1" in total
    [node] = ray.nodes()
    assert node["Alive"] and node["NodeID"] == ray.get_runtime_context().get_node_id()

    @ray.remote
    def inside():
        return ray.available_resources()["CPU"], ray.get_runtime_context().get_node_id()

    cpus, node_id = ray.get(inside.remote(), timeout=60)
    assert cpus <= 3 and node_id == node["NodeID"]


def test_init_takes_rays_parameters():
    info = minray.init("local", num_cpus=1, include_dashboard=False, log_to_driver=True,
                       object_store_memory=10**8, logging_level="info")
    assert info["num_cpus"] == 1
    assert minray.init(address="auto", ignore_reinit_error=True)["num_cpus"] == 1
    minray.shutdown()
    with pytest.raises(ValueError, match="needs real Ray"):
        minray.init("ray://head:10001")
    with pytest.raises(TypeError, match="unknown keyword argument"):
        minray.init(num_cpu=2)


def test_auto_init_can_be_turned_off(tmp_path):
    script = ("import minray\n"
              "@minray.remote\n"
              "def f():\n    return 1\n"
              "try:\n    f.remote()\n"
              "except RuntimeError as e:\n    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "RAY_ENABLE_AUTO_CONNECT": "0"}, timeout=60)
    assert "refused:" in out.stdout and "RAY_ENABLE_AUTO_CONNECT=0" in out.stdout


def test_the_runtime_context_in_a_task_and_an_actor(ray):
    @ray.remote
    def where():
        ctx = ray.get_runtime_context()
        return ctx.get(), ctx.get_assigned_resources(), ctx.task_id

    info, assigned, task_id = ray.get(where.remote(), timeout=60)
    assert info["job_id"] == ray.get_runtime_context().get_job_id()
    assert len(info["task_id"]) == 48 and task_id == info["task_id"]
    assert assigned == {"CPU": 1.0}

    @ray.remote
    class Me:
        def me(self):
            return ray.get_runtime_context().current_actor

        def ping(self):
            return "pong"

    handle = ray.get(Me.remote().me.remote(), timeout=60)
    assert ray.get(handle.ping.remote(), timeout=60) == "pong"
    with pytest.raises(RuntimeError, match="inside an actor"):
        ray.get_runtime_context().current_actor  # noqa: B018 - the access is what fails


def test_refs_have_rays_hex_ids(ray):
    ref = ray.put("value")
    assert len(ref.hex()) == 56 and len(ref.binary()) == 28
    assert ray.ObjectRef.from_hex(ref.hex()) == ref
    assert ray.get(ray.ObjectID.from_binary(ref.binary()), timeout=60) == "value"
    assert ray.ObjectRef(ref.binary()) == ref  # Ray's constructor takes the binary id
    assert ray.wait([]) == ([], [])
    ready, rest = ray.wait([ref], fetch_local=True, timeout=60)
    assert ready == [ref] and rest == []
