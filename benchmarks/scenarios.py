"""What is measured: the scenario table, and one function per group that runs its drivers.

A group is the set of figures one driver process (or one small set of them) yields, so Ray's
slow `init` is paid once per group and repeat, not once per figure. Each group function returns
one dict of figures per run; a failed run becomes `{"error": ...}` so the suite goes on.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import fixtures
from benchmarks.runner import (
    BenchError,
    Driver,
    environment,
    kill_leftovers,
    kill_marked,
    new_marker,
    run,
)

REPO = Path(__file__).resolve().parent.parent
GROUPS = ("core", "workers", "objects", "envs", "working_dir", "cluster", "packaging",
          "components")  # floor: always
SLOW_RAY_GROUPS = ("workers", "envs", "working_dir", "cluster", "packaging")  # fewer Ray runs
ONCE_GROUPS = ("components",)  # minray only, one run: those modules take medians themselves
TREE_FILES = 10_000
CONCURRENT_ACTORS = (1, 2, 4, 8, 16)  # the "N new actors at once" rows


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    group: str
    floor: str | None = None  # key of the floor figure it is compared with
    target: float | None = None  # seconds (or MB, see unit), from the issues
    vs_ray: float | None = None  # the Ray/minray speedup the goals ask for
    floor_ratio: float | None = None  # minray/floor the goals allow (default: 3 for starts)
    unit: str = "s"  # "s", or "MB" for the memory rows


SCENARIOS = [
    Scenario("init", "init", "core", None, 0.050),
    Scenario("first_task", "first task", "core", "process_start", 0.150, 5),
    Scenario("tasks_1000", "1000 no-op tasks", "core", "pool_1000", 0.120, 5),
    Scenario("actor_call", "sequential actor call (each)", "core", "pipe_call", 0.00025, 4),
    Scenario("actor_first_call", "actor creation + first call", "core", "process_start"),
    Scenario("env_vars_env", "first task in a new env_vars env", "core", "process_start",
             0.100, 10),
    Scenario("shutdown_starting", "shutdown() while a worker starts", "core", None, 0.050),
    Scenario("echo_200mb", "200 MB bytes argument and return", "objects", "pipe_200mb",
             vs_ray=1, floor_ratio=2),
    Scenario("echo_numpy_200mb", "200 MB numpy array argument and return", "objects",
             "pipe_200mb", vs_ray=1, floor_ratio=2),
    Scenario("put_10_readers", "put 100 MB + 10 tasks reading that ref", "objects"),
    Scenario("echo_peak_mb", "driver memory peak, 200 MB round trip", "objects", None, 400,
             unit="MB"),
    Scenario("echo_kept_mb", "driver memory kept once its refs are gone", "objects", None, 20,
             unit="MB"),
    *(Scenario(f"echo_{mb}mb", f"round trip of {mb} MB bytes", "objects", f"pipe_{mb}mb")
      for mb in (1, 10, 100, 1000)),
    Scenario("init_first_task", "init + first task", "workers", "process_start", None, 40,
             1.3),
    Scenario("new_actor", "new actor, first call", "workers", "process_start", None, 10),
    Scenario("new_env_vars_env", "first task in a new env_vars-only env", "workers",
             "process_start", None, 20),
    *(Scenario(f"new_actors_{n}", f"{n} new actor{'s' * (n > 1)} at once, first calls",
               "workers", "process_start" if n == 1 else f"parallel_start_{n}")
      for n in CONCURRENT_ACTORS),
    Scenario("shutdown_busy", "shutdown(), 16 actors up and 1 starting", "workers", None,
             0.050),
    Scenario("pip_cold", "cold pip env (1 local wheel)", "envs", "uv_venv_install", 0.700, 10),
    Scenario("pip_new_worker", "new worker in a built pip env", "envs", "process_start",
             0.150, 10),
    Scenario("uv_cold", "cold uv env (1 local wheel)", "envs", "uv_venv_install", None, 10),
    Scenario("uv_new_worker", "new worker in a built uv env", "envs", "process_start",
             0.150, 10),
    Scenario("working_dir_init", "init with a small working_dir", "working_dir", None, None,
             10),
    Scenario("working_dir_first_task", "first task in that working_dir job", "working_dir",
             "process_start", 0.150, 10),
    Scenario("second_process", "new driver process, built pip env", "cluster", "nested_start",
             None, 10),
    Scenario("concurrent_4", "4 drivers at once, one new pip env", "cluster",
             "uv_venv_install", None, 10),
    Scenario("tree_first", "package 10k files: first", "packaging", "read_tree"),
    Scenario("tree_unchanged", "package 10k files: unchanged", "packaging", "walk_stat", 0.300),
    Scenario("tree_touched", "package 10k files: 1 file changed", "packaging", "read_tree"),
]
PROCESS_START_FLOORS = ("process_start", "nested_start")  # "within 3x of the floor" applies


class Context:
    """Per-suite state: the temp root, the interpreters, and fresh names for each run."""

    def __init__(self, tmp: Path, ray_python: str | None):
        self.tmp = tmp
        self.ray_python = ray_python
        self._n = 0
        self._tree: Path | None = None

    def count(self) -> int:
        self._n += 1
        return self._n

    def fresh(self, what: str) -> Path:
        path = self.tmp / f"{what}{self.count()}"
        path.mkdir()
        return path

    def wheel(self, name: str) -> str:
        """A new wheel with a name never used before: every env built from it is new."""
        return str(fixtures.make_wheel(self.tmp / "wheels", f"{name}{self.count()}", "1.0",
                                       "X = 42"))

    def tree(self) -> Path:
        """The 10k-file tree, made once and older than any racy-timestamp window when used."""
        if self._tree is None:
            self._tree = fixtures.make_tree(self.tmp / "tree", TREE_FILES)
            self._tree_made = time.time()
        time.sleep(max(0.0, self._tree_made + 2.5 - time.time()))
        return self._tree

    def python(self, system: str) -> str:
        return sys.executable if system == "minray" else self.ray_python

    def config(self, system: str, scenario: str, **extra) -> dict:
        return {"api": system, "scenario": scenario, "tmp": str(self.fresh("ray")),
                "cwd": str(self.tmp), **extra}

    def env(self, system: str, cache: Path | None = None) -> dict:
        if system == "ray":
            return {}
        return {"PYTHONPATH": str(REPO), "MINRAY_CACHE_DIR": str(cache or self.fresh("cache"))}


def _pkg(path: str) -> str:
    return Path(path).name.split("-")[0]


def core(ctx: Context, system: str) -> dict:
    return run(ctx.python(system), ctx.config(system, "core"), ctx.env(system))


def objects(ctx: Context, system: str) -> dict:
    """Large values through the object store: round trips, one ref read by many, memory."""
    return run(ctx.python(system), ctx.config(system, "objects"), ctx.env(system), timeout=600)
def workers(ctx: Context, system: str) -> dict:
    return run(ctx.python(system),
               ctx.config(system, "workers", concurrent=list(CONCURRENT_ACTORS)),
               ctx.env(system))


def envs(ctx: Context, system: str) -> dict:
    wheels = {f: (w, _pkg(w)) for f in ("pip", "uv") for w in [ctx.wheel(f"bench_{f}_")]}
    return run(ctx.python(system), ctx.config(system, "envs", wheels=wheels), ctx.env(system))


def working_dir(ctx: Context, system: str) -> dict:
    d = fixtures.make_small_dir(ctx.fresh("wd"))
    return run(ctx.python(system), ctx.config(system, "working_dir", working_dir=str(d)),
               ctx.env(system))


def packaging(ctx: Context, system: str) -> dict:
    tree = ctx.tree()
    n = ctx.count() % 100  # a different file each run: every "touched" run is a real change
    touch = f"d{n:03d}/f{n * 100 + 7:05d}.py"
    return run(ctx.python(system), ctx.config(system, "packaging", tree=str(tree), touch=touch),
               ctx.env(system))


COMPONENT_MODULES = ("bench_envs", "bench_packaging")  # written alongside, optional


def components(ctx: Context, system: str) -> dict:
    """minray's runtime_env layer alone, from the sibling benchmark modules when present."""
    here = Path(__file__).parent
    modules = [m for m in COMPONENT_MODULES if (here / f"{m}.py").exists()]
    if system != "minray" or not modules:
        return {}
    return run(sys.executable, ctx.config(system, "components", modules=modules, cwd=str(REPO)),
               ctx.env(system), timeout=600)


def _ray_bin(ray_python: str) -> str:
    return str(Path(ray_python).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster(ctx: Context, system: str) -> dict:
    """A second driver process in a built env, and 4 drivers asking for one new env at once.

    minray's cache lives across processes in MINRAY_CACHE_DIR; Ray's lives as long as its
    cluster, so for Ray every driver here connects to one `ray start --head` cluster.
    """
    python, marker, extra = ctx.python(system), new_marker(), {}
    if system == "ray":
        port, temp = _free_port(), ctx.fresh("rc")
        subprocess.run([_ray_bin(python), "start", "--head", f"--port={port}", "--num-cpus=2",
                        "--include-dashboard=false", f"--temp-dir={temp}"],
                       check=True, capture_output=True, env=environment({}, marker), timeout=120)
        extra = {"address": "auto"}  # an explicit address fails Ray's token auth here
    try:
        cache = ctx.fresh("cache")
        wheel = ctx.wheel("bench_second_")
        cfg = ctx.config(system, "env_task", wheels={"pip": (wheel, _pkg(wheel))}, **extra)
        run(python, cfg, ctx.env(system, cache))  # builds the env
        second = Driver(python, cfg, ctx.env(system, cache))
        second.finish(300)
        out = {"second_process": second.result_after}

        cache = ctx.fresh("cache")
        wheel = ctx.wheel("bench_conc_")
        cfg = ctx.config(system, "env_task", wheels={"pip": (wheel, _pkg(wheel))}, **extra)
        drivers = [Driver(python, cfg, ctx.env(system, cache)) for _ in range(4)]
        for d in drivers:
            d.finish(300)
        start = min(d.started for d in drivers)
        out["concurrent_4"] = max(d.started + d.result_after for d in drivers) - start
        if system == "minray":
            out["concurrent_4_envs_built"] = len(list((cache / "pip").glob("*.json")))
        else:
            resources = temp / "session_latest" / "runtime_resources" / "pip"
            out["concurrent_4_envs_built"] = len([p for p in resources.iterdir()
                                                  if p.is_dir()]) - 1  # less the second's env
        return out
    finally:
        kill_marked(marker)


def run_group(ctx: Context, group: str, system: str) -> dict:
    """One run of a group for one system; failures are returned, not raised."""
    try:
        return globals()[group](ctx, system)
    except subprocess.CalledProcessError as e:
        return {"error": f"{e.cmd[:3]} failed: {(e.stderr or b'')[-400:]!r}"}
    except (BenchError, subprocess.SubprocessError, OSError, KeyError, TypeError) as e:
        return {"error": str(e) or type(e).__name__}
    finally:
        kill_leftovers()


def temp_root() -> Path:
    # Short: Ray puts unix sockets under its temp dir, and their paths must stay < 108 bytes.
    return Path(tempfile.mkdtemp(prefix="mrb", dir="/tmp"))
