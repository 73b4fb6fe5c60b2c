"""`python -m benchmarks`: run the groups, print the table, write JSON and the chart."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import floor, report, runner, scenarios
from benchmarks.scenarios import GROUPS, ONCE_GROUPS, SCENARIOS, SLOW_RAY_GROUPS, Context


def _groups(only: str | None) -> list[str]:
    if not only:
        return list(GROUPS)
    by_key = {s.key: s.group for s in SCENARIOS}
    wanted = set()
    for name in only.split(","):
        name = name.strip()
        if name not in GROUPS and name not in by_key:
            sys.exit(f"--only: unknown name {name!r}; groups: {', '.join(GROUPS)}; "
                     f"scenarios: {', '.join(by_key)}")
        wanted.add(by_key.get(name, name))
    return [g for g in GROUPS if g in wanted]


def _ray_version(python: str) -> str | None:
    try:
        out = subprocess.run([python, "-c", "import ray; print(ray.__version__)"],
                             capture_output=True, text=True, timeout=60)
    except OSError as e:
        _log(f"--ray-python {python}: {e}; Ray is left out")
        return None
    if out.returncode != 0:
        _log(f"--ray-python {python} cannot import ray; Ray is left out:\n{out.stderr[-500:]}")
        return None
    return out.stdout.strip()


def _git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=scenarios.REPO).stdout.strip()
    except OSError:
        return ""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _title(meta: dict) -> str:
    return (f"minray vs Ray {meta['ray_version'] or '(not run)'} vs floor, {meta['cpus']} CPUs, "
            f"median of {meta['repeat']} runs (Ray's slow groups: {meta['slow_ray']})")


def _curve_title(meta: dict) -> str:
    return (f"N new actors at once, to every first call; {meta['cpus']} CPUs, "
            f"Ray {meta['ray_version'] or '(not run)'}")


def measure(ctx: Context, groups: list[str], repeats: dict, floor_repeat: int) -> tuple:
    """Round by round: a floor sample, then each group's minray and Ray runs, so that drift
    (a VM's speed changes by a third within minutes) hits the floor and both systems alike."""
    floor_runs = []
    wheel = ctx.wheel("bench_floor_")
    tree = ctx.tree() if "packaging" in groups else None
    parallel = tuple(n for n in scenarios.CONCURRENT_ACTORS if n > 1) if "workers" in groups \
        else ()
    runs: dict[str, dict[str, list[dict]]] = {}
    rounds = max([floor_repeat, *(n for group in groups for n in repeats[group].values())])
    for i in range(rounds):
        if i < floor_repeat:
            floor_runs.append(floor.measure(wheel, tree, parallel,
                                            transfers="objects" in groups))
            _log(f"floor        {i + 1}/{floor_repeat}")
        for group in groups:
            for system, n in repeats[group].items():
                if i >= n:
                    continue
                t = time.perf_counter()
                result = scenarios.run_group(ctx, group, system)
                runs.setdefault(system, {}).setdefault(group, []).append(result)
                status = f"error: {result['error'][:200]}" if "error" in result else "ok"
                _log(f"{group:<12} {system:<7} {i + 1}/{n} {time.perf_counter() - t:6.1f}s  "
                     f"{status}")
    return runs, floor_runs


def publish(summary: dict, meta: dict, extras: dict, out: Path) -> None:
    """Write JSON and chart, print the table and what else a reader needs to trust it."""
    report.write_json(summary, meta, extras, out / "latest.json")
    report.chart(summary, out / "chart.png", _title(meta), floor.LABELS)
    if report.curve_chart(summary, out / "new_actors.png", _curve_title(meta)):
        print(f"wrote {out / 'new_actors.png'}")
    print(report.table(summary, meta["ray_version"] or "2.60"))
    print(f"\nmedians of {meta['repeat']} runs per figure; Ray's workers, env, working_dir, "
          f"cluster and packaging groups: {meta['slow_ray']} runs (they take Ray seconds)")
    used = {row["floor"]["what"] for row in summary.values() if "floor" in row}
    print("floors: " + "; ".join(f"{k} = {v}" for k, v in floor.LABELS.items() if k in used))
    print(f"suite took {meta['seconds']:.0f}s; wrote {out / 'latest.json'}, {out / 'chart.png'}")
    for line in report.errors(summary):
        print(f"error: {line}")
    components = extras.get("components") or {}
    if components:
        print("\nruntime_env layer alone (benchmarks/bench_envs.py, bench_packaging.py):")
        for key, value in components.items():
            print(f"  {key:<50} {report.fmt(value) if type(value) is float else value}")
    for key, values in extras.items():
        if key != "components":
            print(f"{key}: {values}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--ray-python", help="an interpreter with ray[default]==2.60.0 installed")
    p.add_argument("--repeat", type=int, default=5, help="runs per figure (median); default 5")
    p.add_argument("--only", help=f"comma-separated groups ({', '.join(GROUPS)}) or scenarios")
    p.add_argument("--quick", action="store_true", help="2 runs each (1 for Ray's slow groups)")
    p.add_argument("--out", default=str(report.RESULTS), help="folder for JSON and chart")
    p.add_argument("--replot", action="store_true",
                   help="redraw the chart and table from the JSON in --out, measuring nothing")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.replot:
        data = json.loads((out / "latest.json").read_text())
        report.chart(data["scenarios"], out / "chart.png", _title(data["meta"]), floor.LABELS)
        report.curve_chart(data["scenarios"], out / "new_actors.png", _curve_title(data["meta"]))
        print(report.table(data["scenarios"], data["meta"]["ray_version"] or "2.60"))
        return 0

    groups = _groups(args.only)
    repeat = 2 if args.quick else max(1, args.repeat)
    slow_ray = min(repeat, 1 if args.quick else 3)
    ray_version = _ray_version(args.ray_python) if args.ray_python else None
    systems = ["minray"] + (["ray"] if ray_version else [])
    repeats = {g: {s: (int(s == "minray") if g in ONCE_GROUPS else
                       slow_ray if s == "ray" and g in SLOW_RAY_GROUPS else repeat)
                   for s in systems} for g in groups}
    runner.become_subreaper()
    ctx = Context(scenarios.temp_root(), args.ray_python)
    started = time.perf_counter()
    try:
        runs, floor_runs = measure(ctx, groups, repeats, repeat)
    finally:
        left = runner.kill_leftovers()
        if left:
            _log(f"killed {left} leftover process(es)")
        shutil.rmtree(ctx.tmp, ignore_errors=True)

    extras = {f"{s}.{key}": [r[key] for r in group_runs if key in r]
              for s in runs for g, group_runs in runs[s].items() if g not in ONCE_GROUPS
              for key in sorted({k for r in group_runs for k in r})
              if key.endswith(("_new_process", "_envs_built"))}
    extras["components"] = runs.get("minray", {}).get("components", [{}])[0]
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "minray_rev": _git_rev(), "ray_version": ray_version,
            "repeat": repeat, "slow_ray": slow_ray, "repeats": repeats,
            "seconds": round(time.perf_counter() - started, 1)}
    publish(report.summarise(runs, floor_runs), meta, extras, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
