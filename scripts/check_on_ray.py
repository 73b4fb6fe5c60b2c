"""Run every example on minray and on real Ray, and report the two side by side.

    python scripts/check_on_ray.py                          # makes (or reuses) a Ray venv
    python scripts/check_on_ray.py --ray-python /tmp/rayvenv/bin/python --only env_vars

Each example runs from a copy of examples/: as it is on minray, and with its one line
`import minray as ray` changed to `import ray` on Ray. The two runs must agree on the exit code
and on the labelled lines: stdout lines `label: value` whose label starts with a lowercase
letter or `$` (Ray's own log lines and the "(pid=...)" lines it forwards from workers start
otherwise). A note after `  # ` at the end of a line (a timing) is not compared. Exits 1
on any difference, so CI catches the day minray stops behaving like Ray.

Without --ray-python (or MINRAY_CHECK_RAY_PYTHON) a venv with ray[default]==2.60.0 and uv is
made with uv under ~/.cache/minray-check-on-ray (or --venv), and reused while it still
imports that Ray.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import psutil

RAY_VERSION = "2.60.0"
REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
IMPORT_LINE = re.compile(r"^import minray as ray$", re.M)
LABELLED = re.compile(r"^[a-z$][^:\n]*: ")
NOTE = re.compile(r"\s+# .*$")


class Run(NamedTuple):
    """One example's run on one system."""

    exit_code: int | None  # None: killed at the timeout
    seconds: float
    lines: list[str]  # its labelled lines, notes removed
    stdout: str  # for the report of a difference
    stderr: str


class Result(NamedTuple):
    """One example on both systems (Ray's last run, when it was run more than once)."""

    name: str
    on_minray: Run
    on_ray: Run
    differences: list[str]
    ray_runs: int


def example_names(folder: Path = EXAMPLES) -> list[str]:
    """The examples: every script in the folder but helpers (a leading underscore)."""
    return sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_"))


def labelled_lines(stdout: str) -> list[str]:
    """The lines two systems must agree on, with end-of-line `# notes` (timings) removed."""
    return [NOTE.sub("", line.rstrip()) for line in stdout.splitlines()
            if LABELLED.match(line)]


def portable_copy(destination: Path, *, for_ray: bool) -> Path:
    """Copy examples/ to `destination`; for Ray, change each script's import line."""
    shutil.copytree(EXAMPLES, destination, ignore=shutil.ignore_patterns("__pycache__"))
    for script in destination.glob("*.py"):
        text = script.read_text()
        if script.name.startswith("_"):
            continue
        if len(IMPORT_LINE.findall(text)) != 1 or text.count("minray") != 1:
            raise SystemExit(f"{script.name}: an example names minray once, in its line "
                             f"`import minray as ray`, and nowhere else")
        if for_ray:
            script.write_text(IMPORT_LINE.sub("import ray", text))
    return destination


def run_example(python: str, folder: Path, name: str, env: dict, timeout: float) -> Run:
    """Run one example to its end (or kill it and everything it started at the timeout)."""
    start = time.monotonic()
    proc = subprocess.Popen([python, f"{name}.py"], cwd=folder, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        out, err = proc.communicate()
        code = None
    except BaseException:  # interrupted: leave no example (or Ray cluster) behind
        _kill_tree(proc.pid)
        raise
    seconds = time.monotonic() - start
    return Run(code, seconds, labelled_lines(out), out, err)


def _kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        family = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in family:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


def differences(on_minray: Run, on_ray: Run) -> list[str]:
    """What a user would see differ between the two runs; empty when they agree."""
    found = []
    if on_minray.exit_code != on_ray.exit_code:
        found.append(f"exit code: minray {on_minray.exit_code}, Ray {on_ray.exit_code}")
    if on_minray.lines != on_ray.lines:
        found.append("labelled lines differ:")
        for i in range(max(len(on_minray.lines), len(on_ray.lines))):
            mine = on_minray.lines[i] if i < len(on_minray.lines) else "(none)"
            theirs = on_ray.lines[i] if i < len(on_ray.lines) else "(none)"
            mark = "  " if mine == theirs else "! "
            found.append(f"{mark}minray: {mine}\n{mark}   Ray: {theirs}")
    if on_minray.exit_code == 0 and not on_minray.lines:
        found.append("minray printed no labelled line: nothing was compared")
    return found


def ray_python(args: argparse.Namespace) -> str:
    """The interpreter with Ray: given, or a venv made (or reused) with uv."""
    given = args.ray_python or os.environ.get("MINRAY_CHECK_RAY_PYTHON")
    if given:
        return given
    venv = Path(args.venv).expanduser()
    python = venv / "bin" / "python"
    if _ray_version(python) == RAY_VERSION:
        print(f"reusing the Ray venv {venv}", flush=True)
        return str(python)
    uv = _uv()
    start = time.monotonic()
    print(f"making a venv with ray[default]=={RAY_VERSION} in {venv} ...", flush=True)
    subprocess.run([uv, "venv", "--quiet", "--seed", "--clear", "--python", sys.executable,
                    str(venv)], check=True)
    # Compiled now: Ray's processes must start within its timeouts even on a first run, or
    # where PYTHONDONTWRITEBYTECODE keeps them from caching bytecode themselves.
    subprocess.run([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python",
                    str(python), f"ray[default]=={RAY_VERSION}", "uv"], check=True)
    print(f"Ray installed in {time.monotonic() - start:.0f} s", flush=True)
    return str(python)


def _ray_version(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = subprocess.run([str(python), "-c", "import ray; print(ray.__version__)"],
                           capture_output=True, text=True)
    return probe.stdout.strip() if probe.returncode == 0 else None


def _uv() -> str:
    from runtime_env.plugins.installers import uv_bin  # the uv that minray itself uses

    return uv_bin()


def environments(ray_py: str, scratch: Path) -> tuple[dict, dict]:
    """The environment of each side: minray from this checkout with a fresh cache; Ray with
    its venv first on PATH (as when activated) and a temp dir of its own per run."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("MINRAY_", "RAY_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    base["TMPDIR"] = str(scratch)  # what the examples make in the temp dir goes with it
    # This interpreter's scripts (`minray`, `uv`) first, as in an activated venv.
    path = os.pathsep.join([os.path.dirname(sys.executable), base.get("PATH", "")])
    on_minray = {**base, "PATH": path, "PYTHONPATH": str(REPO),
                 "MINRAY_CACHE_DIR": str(scratch / "cache"),
                 "MINRAY_TMPDIR": str(scratch / "sessions")}
    venv_bin = str(Path(ray_py).parent)
    on_ray = {**base, "PATH": os.pathsep.join([venv_bin, base.get("PATH", "")]),
              "VIRTUAL_ENV": str(Path(venv_bin).parent)}
    return on_minray, on_ray


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ray-python", help="an interpreter that has ray[default] installed")
    p.add_argument("--venv", default="~/.cache/minray-check-on-ray/ray-" + RAY_VERSION,
                   help="where to make or reuse the Ray venv (default: %(default)s)")
    p.add_argument("--only", help="comma-separated example names")
    p.add_argument("--timeout", type=float, default=600, help="seconds per run")
    p.add_argument("--ray-tries", type=int, default=2, metavar="N",
                   help="runs of an example on Ray before a difference counts (default: "
                        "%(default)s): Ray's start-up can fail on a loaded machine, e.g. a job "
                        "submitted before its dashboard agent is up; minray runs once")
    args = p.parse_args(argv)
    names = example_names()
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            p.error(f"no such example: {', '.join(unknown)} (known: {', '.join(names)})")
        names = [n for n in names if n in wanted]
    ray_py = ray_python(args)
    with tempfile.TemporaryDirectory(prefix="chk") as tmp:
        scratch = Path(tmp)
        env_minray, env_ray = environments(ray_py, scratch)
        minray_dir = portable_copy(scratch / "on_minray", for_ray=False)
        ray_dir = portable_copy(scratch / "on_ray", for_ray=True)
        results = []
        for name in names:
            mine = run_example(sys.executable, minray_dir, name, env_minray, args.timeout)
            for ray_runs in range(1, args.ray_tries + 1):
                # A temp dir per Ray run: `ray job submit` finds the cluster its run started.
                ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir=scratch))
                theirs = run_example(ray_py, ray_dir, name,
                                     {**env_ray, "RAY_TMPDIR": str(ray_tmp)}, args.timeout)
                result = Result(name, mine, theirs, differences(mine, theirs), ray_runs)
                if not result.differences:
                    break
            results.append(result)
            print(_row(result), flush=True)
    return _report(results)


def _row(result: Result) -> str:
    def cell(run: Run) -> str:
        code = "timeout" if run.exit_code is None else f"exit {run.exit_code}"
        return f"{code}, {len(run.lines)} lines, {run.seconds:5.1f} s"

    verdict = "DIFFERENT" if result.differences else "same"
    if result.ray_runs > 1:
        verdict += f" (Ray run {result.ray_runs} times)"
    return f"{result.name:<24} {cell(result.on_minray):<28} {cell(result.on_ray):<28} {verdict}"


def _report(results: list[Result]) -> int:
    print(f"\n{'example':<24} {'minray':<28} {'Ray ' + RAY_VERSION:<28} verdict")
    for result in results:
        print(_row(result))
    failed = [result for result in results if result.differences]
    for result in failed:
        print(f"\n=== {result.name}: " + "\n".join(result.differences))
        for side, run in (("minray", result.on_minray), ("Ray", result.on_ray)):
            for stream in ("stdout", "stderr"):
                print(f"--- {result.name} on {side}: {stream}, last 30 lines ---")
                print("\n".join(getattr(run, stream).splitlines()[-30:]))
    same = len(results) - len(failed)
    print(f"\n{same} of {len(results)} examples behave the same on minray and on Ray "
          f"{RAY_VERSION}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
