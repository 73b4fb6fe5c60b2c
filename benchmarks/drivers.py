"""The driver programs: `python drivers.py '<json config>'` runs one scenario group and prints
`BENCH {"name": seconds, ...}` lines.

Standalone on purpose (no import of benchmarks/, and minray or ray only through `api()`): the
same file runs under minray's interpreter and under the Ray venv's, with the same user code, the
way an example switches from minray to Ray by changing its import.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid
from pathlib import Path

del sys.path[0]  # this folder: its module names (floor, report, runner...) must shadow nothing
now = time.perf_counter
cfg = json.loads(sys.argv[1])


def emit(**values) -> None:
    print("BENCH " + json.dumps(values), flush=True)


def api():
    """The API module and the init arguments the brief fixes for it."""
    if cfg["api"] == "ray":
        import ray

        if cfg.get("address"):
            return ray, {"address": cfg["address"]}
        return ray, {"num_cpus": 2, "include_dashboard": False, "_temp_dir": cfg["tmp"]}
    import minray as ray

    return ray, {"num_cpus": 2}


def probe(module: str):
    """A task body that imports the env's package: proof the env is really there."""
    mod = importlib.import_module(module)
    return os.getpid(), mod.X


class _Actor:
    def m(self):
        return None


def _noop_and_actor(ray):
    """The no-op task and the one-method actor class that the start-up rows time."""
    return ray.remote(lambda: None), ray.remote(_Actor)


def core(ray, init) -> None:
    """Init, first task, many tasks, actor calls, a new env_vars env: one init for all."""
    noop, actor_cls = _noop_and_actor(ray)
    t = now()
    ray.init(**init)
    emit(init=now() - t)
    t = now()
    ray.get(noop.remote())
    emit(first_task=now() - t)
    ray.get([noop.remote() for _ in range(200)])  # warm-up: every worker up
    t = now()
    ray.get([noop.remote() for _ in range(1000)])
    emit(tasks_1000=now() - t)
    t = now()
    a = actor_cls.remote()
    ray.get(a.m.remote())
    emit(actor_first_call=now() - t)
    for _ in range(100):
        ray.get(a.m.remote())
    t = now()
    for _ in range(1000):
        ray.get(a.m.remote())
    emit(actor_call=(now() - t) / 1000)
    env = {"env_vars": {"BENCH_ID": uuid.uuid4().hex}}
    t = now()
    ray.get(noop.options(runtime_env=env).remote())
    emit(env_vars_env=now() - t)
    actor_cls.remote()  # its worker is still starting when shutdown begins
    t = now()
    ray.shutdown()
    emit(shutdown_starting=now() - t)


MB = 1_000_000


def _rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (or its peak, VmHWM) in MB, from /proc."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Make VmHWM start again from the current RSS (Linux's clear_refs "5")."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def objects(ray, init) -> None:
    """Large values: a round trip through a task at several sizes, a numpy array, one put read
    by ten tasks, and the driver's memory around the 200 MB round trip."""
    import gc

    echo = ray.remote(lambda x: x)
    length = ray.remote(lambda x: len(x))
    ray.init(**init)
    ray.get([echo.remote(b"warm") for _ in range(4)])  # both workers up
    blob = os.urandom(MB) * 200
    ray.get(echo.remote(blob))  # warm: first large value of the session
    gc.collect()
    time.sleep(1)  # values freed by now (Ray frees asynchronously)
    before = _rss_mb()
    _reset_peak()
    t = now()
    back = ray.get(echo.remote(blob))
    emit(echo_200mb=now() - t, echo_peak_mb=_rss_mb("VmHWM") - before)
    assert back == blob
    del back
    gc.collect()
    time.sleep(1)
    emit(echo_kept_mb=_rss_mb() - before)
    del blob
    data = os.urandom(MB) * 100
    t = now()
    ref = ray.put(data)
    assert ray.get([length.remote(ref) for _ in range(10)]) == [len(data)] * 10
    emit(put_10_readers=now() - t)
    del ref, data
    for mb in (1, 10, 100, 1000):
        blob = os.urandom(MB) * mb
        t = now()
        back = ray.get(echo.remote(blob))
        emit(**{f"echo_{mb}mb": now() - t})
        assert len(back) == len(blob)
        del back, blob
    try:
        import numpy as np
    except ImportError:
        return
    ray.get([echo.remote(np.zeros(4)) for _ in range(4)])  # warm: both workers import numpy
    array = np.arange(200 * MB // 8, dtype=np.float64)
    warm = ray.get(echo.remote(array))  # as the bytes row: not the session's first 200 MB
    del warm
    gc.collect()
    time.sleep(1)  # freed by now (Ray frees asynchronously)
    t = now()
    back = ray.get(echo.remote(array))
    emit(echo_numpy_200mb=now() - t)
    assert back.shape == array.shape and back[-1] == array[-1]


def workers(ray, init) -> None:
    """Worker start-up in a fresh driver: init to the first result, a new actor, a new
    env_vars-only env, N new actors at once (N = 1..16), and shutdown with all of them alive
    and one more still starting."""
    noop, actor_cls = _noop_and_actor(ray)
    t = now()
    ray.init(**init)
    ray.get(noop.remote())
    emit(init_first_task=now() - t)
    ray.get([noop.remote() for _ in range(20)])
    t = now()
    a = actor_cls.remote()
    ray.get(a.m.remote())
    emit(new_actor=now() - t)
    env = {"env_vars": {"BENCH_ID": uuid.uuid4().hex}}
    t = now()
    ray.get(noop.options(runtime_env=env).remote())
    emit(new_env_vars_env=now() - t)
    actors = [a]
    for n in cfg["concurrent"]:
        for old in actors:
            ray.kill(old)
        ray.get(noop.remote())
        time.sleep(0.3)  # let the killed processes go: each round starts on a quiet node
        t = now()
        actors = [actor_cls.remote() for _ in range(n)]
        ray.get([x.m.remote() for x in actors])
        emit(**{f"new_actors_{n}": now() - t})
    actor_cls.remote()  # its worker is still starting when shutdown begins
    t = now()
    ray.shutdown()
    emit(shutdown_busy=now() - t)


def envs(ray, init) -> None:
    """Per field (pip, uv): a cold env (a task), then a new worker in it (a new actor)."""
    task = ray.remote(probe)

    class Probe:
        def m(self, module):
            return probe(module)

    actor_cls = ray.remote(Probe)
    ray.init(**init)
    ray.get(ray.remote(lambda: None).remote())  # the pool is warm: measure the env only
    for field, (wheel, module) in cfg["wheels"].items():
        env = {field: [wheel]}
        t = now()
        pid, x = ray.get(task.options(runtime_env=env).remote(module))
        emit(**{f"{field}_cold": now() - t})
        t = now()
        a = actor_cls.options(runtime_env=env).remote()
        pid2, x2 = ray.get(a.m.remote(module))
        emit(**{f"{field}_new_worker": now() - t, f"{field}_new_worker_new_process": pid2 != pid})
        assert x == x2 == 42


def working_dir(ray, init) -> None:
    """A job with a small working_dir: init, then a first task that reads one of its files."""
    read = ray.remote(lambda: Path("data.txt").read_text())
    t = now()
    ray.init(runtime_env={"working_dir": cfg["working_dir"]}, **init)
    emit(working_dir_init=now() - t)
    t = now()
    assert ray.get(read.remote()).startswith("hello")
    emit(working_dir_first_task=now() - t)


def env_task(ray, init) -> None:
    """init + one task in a pip env; the parent times this process until the BENCH line."""
    ray.init(**init)
    wheel, module = cfg["wheels"]["pip"]
    ray.get(ray.remote(probe).options(runtime_env={"pip": [wheel]}).remote(module))
    emit(result=True)


def packaging(ray, init) -> None:
    """Package a big tree: first time, unchanged, one file changed (the work init does)."""
    tree = cfg["tree"]
    if cfg["api"] == "ray":
        from ray._private.runtime_env import packaging as pkg

        def package(only_hash: bool = False) -> None:  # what ray.init does before uploading
            uri = pkg.get_uri_for_directory(tree, include_gitignore=True)
            if not only_hash:
                target = Path(cfg["tmp"]) / f"{uri.split('/')[-1]}"
                pkg.create_package(tree, target, include_gitignore=True)
    else:
        import runtime_env

        def package(only_hash: bool = False) -> None:
            runtime_env.parse({"working_dir": tree})
    t = now()
    package()
    emit(tree_first=now() - t)
    t = now()
    package(only_hash=True)
    emit(tree_unchanged=now() - t)
    with open(os.path.join(tree, cfg["touch"]), "a") as f:
        f.write(f"# touched {uuid.uuid4().hex}\n")
    t = now()
    package()
    emit(tree_touched=now() - t)


def components(ray, init) -> None:
    """The runtime_env layer alone (no worker): the `run()` of benchmarks/bench_*.py."""
    for name in cfg["modules"]:
        figures = importlib.import_module(f"benchmarks.{name}").run()
        emit(**{f"{name}: {key}": value for key, value in figures.items()})


def main() -> None:
    own_api = cfg["scenario"] in ("packaging", "components")
    ray, init = (None, {}) if own_api else api()
    try:
        globals()[cfg["scenario"]](ray, init)
    except BaseException as e:  # noqa: BLE001 - becomes the scenario's error in the report
        traceback.print_exc()
        emit(error=f"{type(e).__name__}: {e}"[:500])
        sys.exit(1)
    finally:
        if ray is not None and ray.is_initialized():
            ray.shutdown()


if __name__ == "__main__":
    main()
