"""A bad day, made real: file limits, workers that cannot start, broken actor envs, stale refs,
a setup that timed out, daemons started by tasks, odd paths. Each asserts what the user sees."""

from __future__ import annotations

import json
import os
import pickle
import stat
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from auth_index import GatedIndex
from minray.exceptions import (
    ActorDiedError,
    ObjectLostError,
    RuntimeEnvSetupError,
)
from procs import gone_within, wait_for
from wheels import DEMO, demo_wheel

FD_LIMIT_DRIVER = textwrap.dedent("""
    import json, resource, sys
    import minray as ray
    from minray.exceptions import ActorDiedError

    limit, count = int(sys.argv[1]), int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    ray.init(num_cpus=1)

    @ray.remote
    class Echo:
        def ping(self):
            return "pong"

    actors = [Echo.remote() for _ in range(count)]
    answers = []
    for actor in actors:
        try:
            answers.append(ray.get(actor.ping.remote(), timeout=120))
        except ActorDiedError as e:
            answers.append("died: " + str(e))
    alive = [a for a, answer in zip(actors, answers) if answer == "pong"]
    again = ray.get([a.ping.remote() for a in alive], timeout=120)
    print(json.dumps({"answers": answers, "again": again}))
""")


def test_actors_beyond_the_file_limit_fail_clearly_and_the_rest_keep_working(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(FD_LIMIT_DRIVER)
    proc = subprocess.run([sys.executable, str(script), "64", "40"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    died = [a for a in out["answers"] if a != "pong"]
    pongs = [a for a in out["answers"] if a == "pong"]
    assert pongs and died, out["answers"]
    assert all("ulimit -n is 64" in a for a in died), died[0]
    assert out["again"] == pongs  # the actors that started still answer
    assert len(proc.stderr) < 2000, proc.stderr[:2000]  # no flood of tracebacks


def test_a_worker_that_fails_to_start_spares_the_healthy_actors_of_its_env(ray, tmp_path):
    flag = tmp_path / "refuse"
    wrapper = tmp_path / "python-unless-flagged.sh"
    wrapper.write_text(f'#!/bin/sh\n[ -e "{flag}" ] && exit 3\nexec "{sys.executable}" "$@"\n')
    env = {"py_executable": f"sh {wrapper}"}

    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def add(self):
            self.n += 1
            return self.n

    healthy = Counter.options(runtime_env=env).remote()
    assert ray.get(healthy.add.remote(), timeout=60) == 1
    flag.touch()
    doomed = Counter.options(runtime_env=env).remote()
    with pytest.raises(ActorDiedError, match="exit code 3"):
        ray.get(doomed.add.remote(), timeout=60)
    assert ray.get(healthy.add.remote(), timeout=60) == 2


def test_an_actor_whose_env_cannot_be_set_up_raises_runtime_env_setup_error(ray):
    @ray.remote
    class Pinger:
        def ping(self):
            return "pong"

    env = {"pip": {"packages": ["mr-no-such-package"], "pip_install_options": ["--no-index"]}}
    actor = Pinger.options(runtime_env=env).remote()
    with pytest.raises(RuntimeEnvSetupError) as info:  # as Ray's guide catches it
        ray.get(actor.ping.remote(), timeout=120)
    assert isinstance(info.value, ActorDiedError)
    assert "field 'pip'" in str(info.value) and "mr-no-such-package" in str(info.value)


def test_a_ref_from_an_earlier_session_fails_at_once(ray):
    @ray.remote
    def one(x=None):
        return 1

    ref = one.remote()
    assert ray.get(ref, timeout=60) == 1
    ray.shutdown()
    ray.init(num_cpus=1)
    with pytest.raises(ObjectLostError, match="earlier minray session"):
        ray.get(ref, timeout=60)
    with pytest.raises(ObjectLostError):
        ray.wait([ref], timeout=60)
    with pytest.raises(ObjectLostError):
        one.remote(ref)  # as an argument it could never be resolved
    assert ray.get(one.remote(), timeout=60) == 1  # the session goes on


@pytest.fixture
def gated_index(tmp_path):
    wheels = tmp_path / "wheels"
    demo_wheel(wheels, "1.0", "from the gated index")
    index = GatedIndex(wheels)
    yield index
    index.close()


def _demo_env(index: GatedIndex, timeout: float) -> dict:
    return {"pip": {"packages": [DEMO], "pip_install_options": ["--no-index", "--find-links",
                                                                 index.url]},
            "config": {"setup_timeout_seconds": timeout}}


def test_an_env_that_timed_out_is_prepared_again_with_a_longer_timeout(ray, gated_index):
    @ray.remote
    def value():
        return __import__(DEMO).VALUE

    with pytest.raises(RuntimeEnvSetupError, match="timed out"):
        ray.get(value.options(runtime_env=_demo_env(gated_index, 2)).remote(), timeout=120)
    asked = len(gated_index.requests)
    with pytest.raises(RuntimeEnvSetupError, match="timed out"):  # remembered: not asked again
        ray.get(value.options(runtime_env=_demo_env(gated_index, 2)).remote(), timeout=120)
    assert len(gated_index.requests) == asked
    gated_index.gate.set()
    task = value.options(runtime_env=_demo_env(gated_index, 120))
    assert ray.get(task.remote(), timeout=180) == "from the gated index"


def test_a_failed_env_is_forgotten_after_its_ttl(ray, gated_index, monkeypatch):
    @ray.remote
    def value():
        return __import__(DEMO).VALUE

    task = value.options(runtime_env=_demo_env(gated_index, 2))
    with pytest.raises(RuntimeEnvSetupError, match="timed out"):
        ray.get(task.remote(), timeout=120)
    monkeypatch.setenv("BAD_RUNTIME_ENV_CACHE_TTL_SECONDS", "0")  # Ray's name for it
    gated_index.gate.set()
    assert ray.get(task.remote(), timeout=180) == "from the gated index"


def test_shutdown_ends_a_daemon_that_a_task_detached(ray, tmp_path):
    pidfile = tmp_path / "daemon.pid"

    @ray.remote
    def start_daemon(path):
        import os
        import time

        first = os.fork()
        if first == 0:  # the classic double fork: a new session, then an orphan
            os.setsid()
            if os.fork() == 0:
                with open(path + ".tmp", "w") as f:
                    f.write(str(os.getpid()))
                os.replace(path + ".tmp", path)
                time.sleep(300)
            os._exit(0)
        os.waitpid(first, 0)
        return "started"

    assert ray.get(start_daemon.remote(str(pidfile)), timeout=60) == "started"
    wait_for(pidfile.exists, "the daemon to write its pid")
    pid = int(pidfile.read_text())
    assert gone_within([pid], 0) == [pid]  # it runs, detached from the worker
    ray.shutdown()
    assert gone_within([pid], 10) == []


def test_a_temp_dir_that_does_not_exist_yet_with_spaces_and_non_ascii(tmp_path, monkeypatch):
    import minray as ray

    root = tmp_path / "not yet" / "sé ß 名前"
    monkeypatch.setenv("MINRAY_TMPDIR", str(root))
    code = tmp_path / "code dir ü"
    code.mkdir()
    (code / "helper_mod.py").write_text("WHERE = 'code dir ü'\n")
    info = ray.init(num_cpus=1, runtime_env={"working_dir": str(code)})

    @ray.remote
    def where():
        import helper_mod

        return helper_mod.WHERE

    assert ray.get(where.remote(), timeout=60) == "code dir ü"
    assert Path(info["session_dir"]).parent == root / f"minray-{os.getuid()}"
    ray.shutdown()


def test_session_folders_and_logs_are_readable_by_their_user_only(tmp_path, monkeypatch):
    import minray as ray
    from minray import core

    monkeypatch.setenv("MINRAY_TMPDIR", str(tmp_path))
    info = ray.init(num_cpus=1)
    session = Path(info["session_dir"])
    log = Path(core.current().setup_log)
    for path, mode in [(session.parent, 0o700), (session, 0o700), (session / "logs", 0o700),
                       (log, 0o600)]:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    ray.shutdown()


def test_a_worker_that_never_connects_is_ended_after_the_register_timeout(monkeypatch):
    import minray as ray

    monkeypatch.setenv("MINRAY_WORKER_REGISTER_TIMEOUT_SECONDS", "2")
    ray.init(num_cpus=1)  # the hung worker holds the only CPU until it is ended

    @ray.remote
    def where():
        return "ran"

    hangs = {"py_executable": "sh -c 'sleep 600' hang"}  # the worker's script never runs
    with pytest.raises(RuntimeEnvSetupError, match="did not connect to the node within 2 s"):
        ray.get(where.options(runtime_env=hangs).remote(), timeout=60)
    assert ray.get(where.remote(), timeout=60) == "ran"  # its CPU was given back
    ray.shutdown()


@pytest.mark.parametrize("payload", [
    b"not a pickle at all",
    pickle.dumps((10_000, "no such message")),
    pickle.dumps("a string, not a message"),
])
def test_a_stranger_writing_garbage_to_the_node_socket_is_dropped_and_the_node_goes_on(
        ray, payload):
    """Only a worker or an observer speaks to the node; anything else that connects and writes
    a frame the node cannot read loses its connection, and the session goes on."""
    import socket

    from minray import core

    @ray.remote
    def f(x):
        return x + 1

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stranger:
        stranger.connect(core.current()._socket)
        stranger.sendall(struct.pack("!Q", len(payload)) + payload)
        stranger.settimeout(30)
        assert stranger.recv(1) == b""  # the node closed it
    assert ray.get(f.remote(1), timeout=60) == 2
