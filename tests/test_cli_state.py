"""`minray status` and `minray list` against real drivers in other processes: tables and
JSON while a task runs, the newest of several sessions or the one named, and sessions whose
driver is gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cache_helpers import process_env
from minray.node import session as sessions
from procs import wait_for
from runtime_env.processes import marked, pid_alive

# A driver that holds a named actor, kills another, runs a task held at the gate, keeps an
# object, says it is ready, and waits for the gate.
DRIVER = textwrap.dedent("""
    import os, sys, time
    import minray as ray

    gate, ready = sys.argv[1], sys.argv[2]
    ray.init(num_cpus=2)

    @ray.remote
    class Keeper:
        def pid(self):
            return os.getpid()

    @ray.remote
    def held():
        open(gate + ".started", "w").close()
        while not os.path.exists(gate):
            time.sleep(0.01)
        return 1

    keeper = Keeper.options(name="keeper").remote()
    doomed = Keeper.options(name="doomed").remote()
    ray.get([keeper.pid.remote(), doomed.pid.remote()])
    ray.kill(doomed)
    kept = ray.put(b"x" * 1000)
    running = held.remote()
    while not os.path.exists(gate + ".started"):  # it runs: it holds a CPU
        time.sleep(0.01)
    with open(ready + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(ready + ".tmp", ready)
    ray.get(running)
""")


class Driver:
    """A driver script in its own process, under the test's minray folder."""

    def __init__(self, tmp: Path, env: dict[str, str], name: str):
        self.gate, ready = tmp / f"{name}.gate", tmp / f"{name}.ready"
        script = tmp / "driver.py"
        script.write_text(DRIVER)
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.gate), str(ready)],
                                     env=env)
        wait_for(lambda: ready.exists() or self.proc.poll() is not None, "the driver to start")
        assert self.proc.poll() is None, "the driver exited"
        self.pid = self.proc.pid
        self.folder, = [s.folder for s in sessions.sessions() if s.driver_pid == self.pid]

    def finish(self) -> None:
        self.gate.touch()
        assert self.proc.wait(60) == 0


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A minray folder of the test's own, for the drivers and the command alike."""
    folder = tmp_path / "minray"
    folder.mkdir()
    monkeypatch.setenv("MINRAY_TMPDIR", str(folder))
    return folder


@pytest.fixture
def driver(tmp_path, root):
    started = []

    def start(name: str = "d") -> Driver:
        started.append(Driver(tmp_path, process_env(), name))
        return started[-1]

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minray.cli", *args], capture_output=True,
                          text=True, timeout=60, env=process_env())


def test_status_and_lists_while_a_task_runs(driver):
    d = driver()
    status = cli("status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == f"session:   {d.folder}"
    assert f"driver:    pid {d.pid}," in lines[1]
    assert "resources: CPU 1/2" in status.stdout  # the held task's CPU
    assert "actors:    1 alive, 1 dead" in status.stdout
    assert "tasks:     1 running, 0 queued" in status.stdout
    assert "envs:      1 ready" in status.stdout

    actors = cli("list", "actors")
    assert actors.returncode == 0, actors.stderr
    header, *rows, total = actors.stdout.splitlines()
    assert header.split() == ["ACTOR_ID", "CLASS_NAME", "NAME", "STATE", "PID"]
    assert sorted((r.split()[2], r.split()[3]) for r in rows) == [("doomed", "DEAD"),
                                                                  ("keeper", "ALIVE")]
    assert total == "2 actors"

    dead = json.loads(cli("list", "actors", "--filter", "state=DEAD", "--detail",
                          "--format", "json").stdout)
    assert [a["name"] for a in dead] == ["doomed"]
    assert "killed by kill()" in json.dumps(dead[0]["death_cause"])
    alive = cli("list", "actors", "--filter", "state!=DEAD").stdout
    assert "keeper" in alive and "doomed" not in alive

    workers = json.loads(cli("list", "workers", "--format", "json").stdout)
    assert {"DRIVER", "WORKER"} == {w["worker_type"] for w in workers}
    assert [w["pid"] for w in workers if w["worker_type"] == "DRIVER"] == [d.pid]
    one = cli("list", "workers", "--limit", "1")
    assert one.stdout.splitlines()[-1] == "1 workers; --limit to see more than 1"

    objects = json.loads(cli("list", "objects", "--format", "json").stdout)
    assert sorted(o["task_status"] for o in objects) == ["FINISHED", "RUNNING"]

    tasks = cli("list", "tasks", "--filter", "name=held")
    assert tasks.returncode == 0, tasks.stderr
    header, row, total = tasks.stdout.splitlines()
    assert header.split() == ["TASK_ID", "NAME", "STATE", "TYPE", "WORKER_PID"]
    assert row.split()[1:4] == ["held", "RUNNING", "NORMAL_TASK"]
    assert total == "1 tasks"
    d.finish()


def test_the_newest_session_or_the_one_named(driver):
    first = driver("first")
    second = driver("second")
    status = cli("status")
    assert status.stdout.splitlines()[0] == f"session:   {second.folder}"
    assert f"1 other session(s) with a running driver; pick one with --session: " \
           f"{first.folder.name}" in status.stdout
    named = cli("status", "--session", first.folder.name, "--format", "json")
    assert json.loads(named.stdout)["driver_pid"] == first.pid
    by_path = cli("list", "nodes", "--session", str(first.folder), "--format", "json")
    assert len(json.loads(by_path.stdout)) == 1
    first.finish()
    second.finish()


def test_no_running_session(driver, root):
    empty = cli("status")
    assert (empty.returncode, empty.stdout) == (1, "")
    assert "no minray session on this machine" in empty.stderr

    d = driver()
    socket = sessions.find_socket(d.folder)
    os.kill(d.pid, signal.SIGKILL)  # its session folder stays behind
    d.proc.wait()
    wait_for(lambda: not marked("MINRAY_NODE_SOCKET", socket), "the driver's workers to end")
    assert d.folder.exists() and not pid_alive(d.pid)

    stale = cli("list", "actors")
    assert stale.returncode == 1
    assert "no running minray session" in stale.stderr and "have exited" in stale.stderr
    named = cli("status", "--session", str(d.folder))
    assert named.returncode == 1
    assert f"its driver (pid {d.pid}) has exited" in named.stderr
    wrong = cli("status", "--session", "nonsense")
    assert wrong.returncode == 2 and "give a session folder or its name" in wrong.stderr
    bad = cli("list", "actors", "--filter", "state")
    assert bad.returncode == 2 and "write key=value" in bad.stderr
