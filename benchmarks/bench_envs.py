"""Package environments: how fast a new and a cached `pip`/`uv` env gets to a worker import.

    python -m benchmarks.bench_envs [--repeat N] [--json out.json]

Measures, with one small local wheel and a fresh cache per cold run:
  floor          `uv venv --system-site-packages` + `uv pip install <wheel>` by hand
  pip cold       `prepare` of `{"pip": [wheel]}` into an empty cache, then a process importing it
  pip cached     a second `prepare` of the same spec (a new RuntimeEnv object)
  uv cold/cached the same with the `uv` field
  4 procs        four processes preparing one new env at once (all succeed, built once)
Real Ray took 7.1 s to the first result in a new pip env with one local wheel.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from runtime_env import Cache, RuntimeEnv, prepare  # noqa: E402
from runtime_env.plugins.installers import BUILD_MARK, uv_bin  # noqa: E402
from tests.wheels import make_wheel  # noqa: E402

PKG = "mr_bench_pkg"
IMPORT = f"import {PKG}; print({PKG}.VALUE)"


def _import_in(argv: list[str], env: dict | None = None) -> None:
    subprocess.run([*argv, "-c", IMPORT], env=env, check=True, capture_output=True)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def floor(wheel: Path, work: Path) -> float:
    venv = work / f"floor-{time.monotonic_ns()}"

    def run():
        subprocess.run([uv_bin(), "venv", "--quiet", "--system-site-packages", "--python",
                        sys.executable, str(venv)], check=True, cwd=work)
        subprocess.run([uv_bin(), "pip", "install", "--quiet", "--python",
                        str(venv / "bin" / "python"), str(wheel)], check=True)

    return _timed(run)


def field_times(field: str, wheel: Path, work: Path) -> dict[str, float]:
    cache = Cache(work / f"cache-{field}-{time.monotonic_ns()}")
    out = {}
    start = time.perf_counter()
    ctx = prepare(RuntimeEnv(**{field: [str(wheel)]}), cache=cache)
    out["cold prepare"] = time.perf_counter() - start
    _import_in(ctx.py_executable, ctx.process_env())
    out["cold to import"] = time.perf_counter() - start
    out["cached prepare"] = _timed(lambda: prepare(RuntimeEnv(**{field: [str(wheel)]}),
                                                   cache=cache))
    return out


CONCURRENT = """
import sys
from runtime_env import RuntimeEnv, prepare
prepare(RuntimeEnv(pip=[sys.argv[1]]), log_path=sys.argv[2])
"""


def four_processes(wheel: Path, work: Path) -> dict:
    root = work / f"cache-4p-{time.monotonic_ns()}"
    env = {**os.environ, "MINRAY_CACHE_DIR": str(root),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    logs = [root.parent / f"{root.name}-{i}.log" for i in range(4)]
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(wheel), str(log)], env=env)
             for log in logs]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - start
    builds = sum(log.read_text().count(BUILD_MARK) for log in logs if log.exists())
    return {"wall": wall, "ok": codes == [0] * 4, "builds": builds}


def run(wheel_dir: str | Path | None = None, repeat: int = 3) -> dict:
    with tempfile.TemporaryDirectory(prefix="minray-bench-") as tmp:
        work = Path(tmp)
        wheel = make_wheel(Path(wheel_dir) if wheel_dir else work / "wheels", PKG, "1.0",
                           "VALUE = 1")
        floor(wheel, work)  # warm uv's own cache, as any second user would have it
        rows: dict[str, list[float]] = {}
        for _ in range(repeat):
            rows.setdefault("floor: uv venv + uv pip install", []).append(floor(wheel, work))
            for field in ("pip", "uv"):
                for name, t in field_times(field, wheel, work).items():
                    rows.setdefault(f"{field}: {name}", []).append(t)
        concurrent = [four_processes(wheel, work) for _ in range(repeat)]
        result = {name: statistics.median(ts) for name, ts in rows.items()}
        result["4 processes, one new env: wall"] = statistics.median(c["wall"]
                                                                     for c in concurrent)
        result["4 processes: all ok"] = all(c["ok"] for c in concurrent)
        result["4 processes: builds per run"] = max(c["builds"] for c in concurrent)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--wheel-dir")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    result = run(args.wheel_dir, args.repeat)
    width = max(map(len, result))
    print(f"{'measure':<{width}}  value (median of {args.repeat})")
    for name, value in result.items():
        shown = f"{value * 1000:8.1f} ms" if isinstance(value, float) else f"{value!s:>8}"
        print(f"{name:<{width}}  {shown}")
    print(f"{'real Ray, new pip env to first result':<{width}}  {7100.0:8.1f} ms (reference)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
