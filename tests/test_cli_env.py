"""`minray env` through the real command: one id from explain and build to list, show and gc,
the inputs job submit takes, progress while an env builds (and none when it is cached)."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys

import pytest

from auth_index import GatedIndex
from cache_helpers import minray_cli, process_env, published_by_an_exited_process
from minray.cli import parser
from procs import wait_for
from runtime_env import progress
from runtime_env.progress import Console
from wheels import DEMO, demo_wheel


@pytest.fixture
def gated(tmp_path):
    """An index whose wheel download waits until the test opens its gate."""
    wheels = tmp_path / "wheels"
    demo_wheel(wheels, "1.0", "from the gated index")
    index = GatedIndex(wheels)
    yield index
    index.close()


def gated_spec(index: GatedIndex) -> str:
    return json.dumps({"pip": {"packages": [DEMO], "pip_install_options": [
        "--no-index", "--find-links", index.url]}})


def local_spec(wheel_dir) -> dict:
    return {"pip": [DEMO, "--no-index", "--find-links", str(wheel_dir)],
            "env_vars": {"A": "1"}}


def build_in_background(spec: str, *extra: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "minray.cli", "env", "build", spec, *extra],
                            env={**process_env(), **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_slow_build_shows_its_progress_and_a_cached_one_prints_none(gated):
    spec = gated_spec(gated)
    build = build_in_background(spec, MINRAY_PROGRESS_AFTER_SECONDS="0")
    lines = [build.stderr.readline() for _ in range(3)]  # while the install waits at the gate
    gated.gate.set()
    out, rest = build.communicate(timeout=120)
    assert build.returncode == 0, rest
    env_id = out.split()[2]
    assert out.startswith(f"built env {env_id} (pip: 1 package) in ")
    assert lines[0].startswith(f"minray: preparing env {env_id} (pip: 1 package); log: ")
    log = lines[0].rstrip().rsplit("log: ", 1)[1]
    assert "$ " in open(log).read()  # the installer's commands are in the log it names
    assert lines[1].startswith("minray:   pip: venv with uv (at ")
    assert lines[2].startswith("minray:   pip: install 1 package with uv (at ")
    assert lines[2].rstrip().endswith(" s)")  # the time since the build began
    assert f"env {env_id} (pip: 1 package) ready in " in rest
    again = minray_cli("env", "build", spec, "--show-launch")
    assert again.stdout.startswith(f"found env {env_id} (pip: 1 package): already built")
    assert '"py_executable"' in again.stdout  # the internal dump only when asked
    assert again.stderr == ""


DRIVER = """
import json, sys
import minray as ray

package = sys.argv[2]

@ray.remote
def value():
    return __import__(package).VALUE

print(ray.get(value.options(runtime_env=json.loads(sys.argv[1])).remote()))
"""


def test_a_driver_shows_a_slow_envs_progress_and_nothing_for_a_cached_one(gated):
    run = [sys.executable, "-c", DRIVER, gated_spec(gated), DEMO]
    env = {**process_env(), "MINRAY_PROGRESS_AFTER_SECONDS": "0"}
    driver = subprocess.Popen(run, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    shown = driver.stderr.readline()
    gated.gate.set()
    out, err = driver.communicate(timeout=120)
    assert out == "from the gated index\n", err
    assert shown.startswith("minray: preparing env ") and "(pip: 1 package); log: " in shown
    assert shown.rstrip().endswith(".log") and "/logs/runtime_env_setup-" in shown
    assert "ready in" in err
    cached = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
    assert cached.stdout == "from the gated index\n" and cached.stderr == ""


def test_on_a_terminal_progress_is_one_live_line(gated):
    """Under a pseudo-terminal: the line is redrawn in place (carriage return, clear to end)
    with the env's id, the step and the elapsed time, then replaced by the result."""
    primary, secondary = pty.openpty()
    build = subprocess.Popen([sys.executable, "-m", "minray.cli", "env", "build",
                              gated_spec(gated)], stdin=secondary, stdout=secondary,
                             stderr=secondary, env={**process_env(), "TERM": "xterm",
                                                    "MINRAY_PROGRESS_AFTER_SECONDS": "0"})
    os.close(secondary)
    screen = b""

    def read_more() -> bytes:
        nonlocal screen
        if select.select([primary], [], [], 0.1)[0]:
            try:
                screen += os.read(primary, 4096)
            except OSError:  # the terminal closed: the command has exited
                pass
        return screen

    try:
        # ... and the installer's own last line after it (uv names the venv it installs into)
        wait_for(lambda: re.search(rb"\r\x1b\[K. [0-9a-f]{12} pip: install 1 package with uv "
                                   rb"\d+\.\ds  \S", read_more()), "a live progress line")
        gated.gate.set()
        wait_for(lambda: b"built env " in read_more() or build.poll() is not None,
                 "the build to end")
        wait_for(lambda: b"built env " in read_more(), "the build's last line")
    finally:
        gated.gate.set()
        build.wait(60)
        os.close(primary)
    assert build.returncode == 0
    assert re.search(rb"\r\x1b\[Kminray: env [0-9a-f]{12} \(pip: 1 package\) ready in ", screen)


def test_plain_progress_repeats_the_installers_last_line():
    """Off a terminal (a CI log) a long step says every heartbeat how long it has run and what
    the installer last printed, so a 40 s download is seen moving."""
    stream = io.StringIO()
    console = Console(stream, delay=0, live=False, heartbeat=0.05)
    console(progress.SetupStarted("f5d8bb9d007b4bad", "pip: 4 packages", "/logs/setup.log"))
    console(progress.StepStarted("f5d8bb9d007b4bad", "pip", "install", "4 packages with uv"))
    console(progress.InstallerOutput("f5d8bb9d007b4bad", "Downloading tinymodel (16.0MiB)"))
    wait_for(lambda: "Downloading" in stream.getvalue(), "a heartbeat line")
    console(progress.SetupFinished("f5d8bb9d007b4bad", 2.5))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "minray: preparing env f5d8bb9d007b (pip: 4 packages); log: /logs/setup.log"
    assert re.fullmatch(r"minray:   pip: install 4 packages with uv \(at \d+\.\d s\)", lines[1])
    assert re.fullmatch(r"minray:   still at pip: install 4 packages with uv after \d+ s: "
                        r"Downloading tinymodel \(16\.0MiB\)", lines[2])
    assert lines[-1] == "minray: env f5d8bb9d007b (pip: 4 packages) ready in 2.5 s"
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


@pytest.mark.parametrize("silence", [["--quiet"], []])
def test_quiet_silences_progress(gated, silence):
    env = {"MINRAY_PROGRESS_AFTER_SECONDS": "0"} | ({} if silence else {"MINRAY_QUIET": "1"})
    build = build_in_background(gated_spec(gated), *silence, **env)
    wait_for(lambda: gated.requests, "the installer to ask the index")  # its step has begun
    gated.gate.set()
    out, err = build.communicate(timeout=120)
    assert build.returncode == 0 and out.startswith("built env ") and err == ""


def test_one_id_from_explain_and_build_to_list_show_and_gc(wheel_dir):
    spec = json.dumps(local_spec(wheel_dir))
    explained = minray_cli("env", "explain", spec).stdout
    env_id = explained.split()[1]
    assert "status:      not built yet" in explained and "setup order: pip -> env_vars" in explained
    assert minray_cli("env", "build", spec).stdout.startswith(f"built env {env_id} ")
    assert "status:      built" in minray_cli("env", "explain", spec).stdout
    listing = minray_cli("env", "list").stdout.splitlines()
    assert listing[1].startswith(env_id) and f"pip: {DEMO} (with uv)" in listing[1]
    shown = minray_cli("env", "show", env_id[:6]).stdout  # a unique prefix will do
    assert shown.startswith("env ") and env_id in shown.splitlines()[0]
    assert "holds:     env_vars: A; pip: 1 package" in shown and '"A": "1"' in shown
    assert f"pip: {DEMO} (with uv)" in shown  # its cache entry, in full
    within = minray_cli("env", "gc", "--dry-run").stdout  # by size: nothing exceeds its limit
    assert within.startswith("0 entries would be removed") and "minray env gc ID" in within
    dry = minray_cli("env", "gc", env_id, "--dry-run").stdout
    assert dry.startswith("would remove pip/") and "1 entry would be removed" in dry
    assert env_id in minray_cli("env", "list").stdout  # nothing removed
    gone = minray_cli("env", "gc", env_id)
    assert gone.returncode == 0 and gone.stdout.startswith("removed pip/")
    assert "no cached environments" in minray_cli("env", "list").stdout
    assert "not built yet" in minray_cli("env", "explain", spec).stdout


def test_json_output_for_scripts(wheel_dir):
    spec = json.dumps(local_spec(wheel_dir))
    built = json.loads(minray_cli("env", "build", spec, "--json").stdout)
    assert built["built"] is True and built["entries"][0].startswith("pip/")
    explained = json.loads(minray_cli("env", "explain", spec, "--json").stdout)
    assert explained["id"] == built["id"] and explained["status"] == "built"
    listed = json.loads(minray_cli("env", "list", "--json").stdout)
    assert [row["id"] for row in listed] == [built["id"]]
    shown = json.loads(minray_cli("env", "show", built["id"], "--json").stdout)
    assert shown["entries"][0]["holds"] == f"pip: {DEMO} (with uv)"
    again = json.loads(minray_cli("env", "build", spec, "--json").stdout)
    assert again["built"] is False
    dry = json.loads(minray_cli("env", "gc", built["id"], "--dry-run", "--json").stdout)
    assert dry["dry_run"] is True and dry["removed"] == built["entries"] and dry["freed"] > 0
    assert [row["id"] for row in json.loads(minray_cli("env", "list", "--json").stdout)] == \
        [built["id"]]  # a dry run removes nothing


def test_build_and_explain_take_what_job_submit_takes(tmp_path, wheel_dir):
    (tmp_path / "re.yaml").write_text(f"env_vars:\n  A: '1'\npip:\n  - {DEMO}\n"
                                      f"  - --no-index\n  - --find-links\n  - {wheel_dir}\n")
    (tmp_path / "re.json").write_text(json.dumps(local_spec(wheel_dir)))
    ids = {minray_cli("env", "explain", str(tmp_path / "re.yaml")).stdout.split()[1],
           minray_cli("env", "explain", str(tmp_path / "re.json")).stdout.split()[1],
           minray_cli("env", "explain", "--runtime-env", str(tmp_path / "re.yaml")).stdout
           .split()[1],
           minray_cli("env", "explain", json.dumps(local_spec(wheel_dir))).stdout.split()[1],
           minray_cli("env", "explain", "--runtime-env-json", json.dumps(local_spec(wheel_dir)))
           .stdout.split()[1]}
    assert len(ids) == 1
    with_dir = minray_cli("env", "explain", "--working-dir", str(tmp_path)).stdout
    assert "working_dir: package " in with_dir


@pytest.mark.parametrize("args, says", [
    (["env", "explain", "re.yaml"], "runtime env file 're.yaml' does not exist"),
    (["env", "build", "{not json"], "SPEC is not valid JSON: "),
    (["env", "explain", "--runtime-env-json", "[1]"], "must hold a runtime env object"),
    (["env", "explain", "requests"], "neither inline JSON"),
    (["env", "explain", '{"env_var": {}}'], "did you mean 'env_vars'?"),
    (["env", "list", "--field", "bogus"], "--field 'bogus' is not a runtime_env field"),
    (["env", "gc", "--field", "pipp"], "did you mean 'pip'?"),
    (["env", "show", "0123456789ab"], "no env or cache entry has the id '0123456789ab'"),
])
def test_bad_input_is_one_line_naming_what_is_wrong(tmp_path, args, says):
    out = subprocess.run([sys.executable, "-m", "minray.cli", *args], capture_output=True,
                         text=True, timeout=60, env=process_env(), cwd=tmp_path)
    assert out.returncode == 2 and says in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_a_bad_yaml_file_is_one_line(tmp_path):
    (tmp_path / "re.yaml").write_text("pip: [unclosed\n")
    out = minray_cli("env", "explain", str(tmp_path / "re.yaml"))
    assert out.returncode == 2 and "is not valid YAML" in out.stderr
    assert "Traceback" not in out.stderr


HOLDING_DRIVER = """
import json, os, sys, time
import minray as ray

package = sys.argv[2]

@ray.remote
def value():
    return __import__(package).VALUE, open("data.txt").read()

print(*ray.get(value.options(runtime_env=json.loads(sys.argv[1])).remote()), flush=True)
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
"""


def test_list_and_show_name_the_users_and_gc_keeps_what_they_use(tmp_path, wheel_dir):
    """While a driver runs a task in an env, list and show name it as the env's user (its pid,
    and in show its program) and gc ID keeps the entries it uses; once it exits they go."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "data.txt").write_text("data")
    spec = json.dumps({**local_spec(wheel_dir), "working_dir": str(project)})
    gate = tmp_path / "gate"
    driver = subprocess.Popen([sys.executable, "-c", HOLDING_DRIVER, spec, DEMO, str(gate)],
                              env=process_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout.readline() == "one data\n"
        listing = minray_cli("env", "list").stdout.splitlines()
        header, row = listing[0], listing[1]
        env_id = row.split()[0]
        assert row[header.index("USED BY"):].split()[0] == str(driver.pid)  # not its workers
        assert f"working_dir: {project} (1 files)" in row and f"pip: {DEMO} (with uv)" in row
        assert listing[2].startswith("1 env in ")
        assert f"used by:   {driver.pid} (python" in minray_cli("env", "show", env_id).stdout
        kept = minray_cli("env", "gc", env_id)
        assert kept.returncode == 0 and kept.stdout.count(f"in use by {driver.pid} (") == 2
        assert "0 entries removed" in kept.stdout and env_id in minray_cli("env", "list").stdout
    finally:
        gate.touch()
        driver.communicate(timeout=120)
    assert minray_cli("env", "list").stdout.splitlines()[1][header.index("USED BY"):] \
        .startswith("-")
    gone = minray_cli("env", "gc", env_id).stdout
    assert "2 entries removed" in gone and "no cached environments" in minray_cli(
        "env", "list").stdout


def test_list_filters_by_field_and_shows_loose_entries(isolated_cache, wheel_dir):
    published_by_an_exited_process(isolated_cache.root, "working_dir", "abc123")
    minray_cli("env", "build", json.dumps(local_spec(wheel_dir)))
    everything = minray_cli("env", "list").stdout
    assert "working_dir/abc123" in everything and f"pip: {DEMO}" in everything
    only_pip = minray_cli("env", "list", "--field", "pip").stdout
    assert "working_dir/abc123" not in only_pip and f"pip: {DEMO}" in only_pip
    assert "no cached env_vars environments" in minray_cli("env", "list", "--field",
                                                           "env_vars").stdout


def test_version_and_every_command_describes_its_arguments():
    out = minray_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("minray 0.1.0 (Python 3.")
    undocumented = []

    def walk(p, path):
        for action in p._actions:
            if action.help is None and action.dest not in ("command", "action"):
                undocumented.append(f"{path} {action.dest}")
            for name, child in getattr(action, "choices", None).items() \
                    if isinstance(getattr(action, "choices", None), dict) else ():
                walk(child, f"{path} {name}")

    walk(parser(), "minray")
    assert undocumented == []
    for command in (["job", "submit"], ["job", "logs"], ["env", "gc"], ["env", "build"]):
        helped = minray_cli(*command, "--help")
        assert helped.returncode == 0 and "usage: minray " + " ".join(command) in helped.stdout
