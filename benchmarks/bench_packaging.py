"""Packaging a working_dir: first time, unchanged (same and new process), touched, edited.

    python -m benchmarks.bench_packaging [--files 10000] [--mb 100] [--json out.json]

Builds a tree of `--files` files holding `--mb` MB in total (100 folders), in a temp dir with
its own cache, and times `runtime_env.parse({"working_dir": tree})` (walk, excludes, hash, and
copy into the cache when the package is new):

  first            empty cache: hash every file and copy the tree into the cache
  unchanged        again in the same process: digests come from the memo, nothing is copied
  unchanged (new)  again in a new process (timed inside it, interpreter start not counted)
  touched          one file's mtime changed: that file is re-read, same package
  edited           one file's content changed: a new package, so the tree is copied again
  small first      a 20-file working_dir into an empty cache (the first-task path)

Targets: unchanged 10,000-file tree under 0.3 s; small first a few ms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_CHILD = """
import sys, time
t = time.perf_counter()
import runtime_env
runtime_env.parse({"working_dir": sys.argv[1]})
print(time.perf_counter() - t)
"""


def build_tree(root: Path, files: int, total_mb: float) -> None:
    size = max(1, int(total_mb * 1024 * 1024 / files))
    noise = os.urandom(size + 4096)
    for i in range(files):
        folder = root / f"pkg{i % 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        offset = i % 4096
        (folder / f"mod{i:05d}.py").write_bytes(noise[offset:offset + size])


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(files: int = 10_000, total_mb: float = 100.0) -> dict:
    """Run every measurement and return the figures in seconds."""
    with tempfile.TemporaryDirectory(prefix="minray-bench-pkg-") as tmp:
        tmp_path = Path(tmp)
        old_cache = os.environ.get("MINRAY_CACHE_DIR")
        os.environ["MINRAY_CACHE_DIR"] = str(tmp_path / "cache")
        try:
            import runtime_env
            from runtime_env import plugin

            plugin.get("working_dir")  # importing the plugin is not packaging time
            tree = tmp_path / "tree"
            build_tree(tree, files, total_mb)
            time.sleep(0.1)  # files written in the last 50 ms are not memoised (racy clean)
            spec = {"working_dir": str(tree)}
            out = {"first": _timed(lambda: runtime_env.parse(spec)),
                   "unchanged": _timed(lambda: runtime_env.parse(spec))}
            child = subprocess.run([sys.executable, "-c", _CHILD, str(tree)], check=True,
                                   capture_output=True, text=True, env=dict(os.environ),
                                   cwd=REPO)
            out["unchanged_new_process"] = float(child.stdout.strip().splitlines()[-1])
            victim = tree / "pkg007" / "mod00007.py"
            os.utime(victim)
            time.sleep(0.1)
            out["touched"] = _timed(lambda: runtime_env.parse(spec))
            victim.write_bytes(victim.read_bytes()[::-1])
            out["edited"] = _timed(lambda: runtime_env.parse(spec))
            small = tmp_path / "small"
            build_tree(small, 20, 0.05)
            out["small_first"] = _timed(lambda: runtime_env.parse({"working_dir": str(small)}))
            out["small_prepare"] = _timed(
                lambda: runtime_env.prepare(runtime_env.parse({"working_dir": str(small)})))
        finally:
            if old_cache is None:
                os.environ.pop("MINRAY_CACHE_DIR", None)
            else:
                os.environ["MINRAY_CACHE_DIR"] = old_cache
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--mb", type=float, default=100.0)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    figures = run(args.files, args.mb)
    print(f"working_dir of {args.files} files, {args.mb:g} MB")
    print(f"{'case':<24}{'seconds':>10}")
    for name, seconds in figures.items():
        print(f"{name:<24}{seconds:>10.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
