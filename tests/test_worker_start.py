"""Workers forked from a fork server: the process a task sees is the one its launch context
says (environment, start-time variables, cwd, session), the node still sees every exit, and
nothing is left behind, not the server, not a zombie."""

import ctypes
import ctypes.util
import os
import shutil
import signal
import sys
from pathlib import Path

import psutil
import pytest

import minray
from minray.exceptions import ActorDiedError, RuntimeEnvSetupError, WorkerCrashedError
from minray.node.launch import server_key
from procs import gone_within


@minray.remote
class Probe:
    def facts(self, names=()):
        libc = ctypes.CDLL(None)
        libc.getenv.restype = ctypes.c_char_p
        return {"pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0),
                "cwd": os.getcwd(), "hash": hash("minray"),
                "env": {n: os.environ.get(n) for n in names},
                "c_env": {n: (libc.getenv(n.encode()) or b"").decode() or None for n in names}}


def _facts(env=None, names=()):
    probe = Probe.options(runtime_env=env).remote() if env else Probe.remote()
    return minray.get(probe.facts.remote(names), timeout=60)


def _hash_with_seed(seed: str) -> int:
    import subprocess

    out = subprocess.run([sys.executable, "-c", "print(hash('minray'))"], text=True,
                         capture_output=True, env={**os.environ, "PYTHONHASHSEED": seed})
    return int(out.stdout)


def test_actors_and_env_vars_envs_are_forked_with_their_own_environment(monkeypatch):
    monkeypatch.setenv("LEFT_BEHIND", "the server's")  # in the server's env, not the next one's
    minray.init(num_cpus=2)
    first = _facts(names=["LEFT_BEHIND"])
    assert first["env"] == first["c_env"] == {"LEFT_BEHIND": "the server's"}
    assert first["ppid"] != os.getpid()  # forked by the job's fork server
    assert first["sid"] == first["pid"]  # a session of its own, as start_new_session gives
    assert first["cwd"] == os.getcwd()
    monkeypatch.delenv("LEFT_BEHIND")
    names = ["ONLY_HERE", "LEFT_BEHIND"]
    mine = _facts({"env_vars": {"ONLY_HERE": "yes"}}, names)
    assert mine["ppid"] == first["ppid"]  # the same server: env_vars need no new interpreter
    assert mine["env"] == mine["c_env"] == {"ONLY_HERE": "yes", "LEFT_BEHIND": None}
    assert _facts(names=names)["env"] == {"ONLY_HERE": None, "LEFT_BEHIND": None}
    minray.shutdown()


def test_a_variable_read_at_interpreter_start_takes_effect(ray):
    facts = _facts({"env_vars": {"PYTHONHASHSEED": "123"}}, ["PYTHONHASHSEED"])
    assert facts["hash"] == _hash_with_seed("123")
    assert facts["env"] == {"PYTHONHASHSEED": "123"}
    other = _facts({"env_vars": {"PYTHONHASHSEED": "456"}})
    assert other["hash"] == _hash_with_seed("456")
    assert other["ppid"] != facts["ppid"]  # another interpreter for another seed


def test_ld_library_path_reaches_the_dynamic_loader(ray, tmp_path):
    """The loader reads LD_LIBRARY_PATH once, when the process starts: a worker that only
    had it set in os.environ after a fork could not load a library from there."""
    libs = tmp_path / "libs"
    libs.mkdir()
    shutil.copy(_loaded_library("z"), libs / "libminray_probe.so")

    @minray.remote
    def load():
        ctypes.CDLL("libminray_probe.so")
        return "loaded"

    with_path = load.options(runtime_env={"env_vars": {"LD_LIBRARY_PATH": str(libs)}})
    assert minray.get(with_path.remote(), timeout=60) == "loaded"
    with pytest.raises(OSError, match="libminray_probe"):
        minray.get(load.remote(), timeout=60)


def _loaded_library(name: str) -> str:
    """The file of a system library, as this process loaded it."""
    soname = ctypes.util.find_library(name)
    assert soname, f"lib{name} is needed for this test"
    ctypes.CDLL(soname)
    return next(line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()
                if Path(line.split()[-1]).name.startswith(soname))


def test_exits_of_forked_workers_are_seen_with_their_code(ray):
    @minray.remote
    def leave(code):
        os._exit(code)

    with pytest.raises(WorkerCrashedError, match="exit code 9"):
        minray.get(leave.options(max_retries=0).remote(9), timeout=60)

    @minray.remote
    class Victim:
        def pid(self):
            return os.getpid()

        def die(self):
            os.kill(os.getpid(), signal.SIGKILL)

    victim = Victim.remote()
    assert minray.get(victim.pid.remote(), timeout=60) != os.getpid()
    with pytest.raises(ActorDiedError, match="killed by SIGKILL"):
        minray.get(victim.die.remote(), timeout=60)


def test_a_fork_server_that_dies_takes_its_workers_and_the_node_goes_on(ray):
    first = _facts()
    os.kill(first["ppid"], signal.SIGKILL)
    # Asked for at once, before the node may have heard of the death: a fork the dead server
    # never made is exec'd instead, and the actor does not die of it.
    racing = _facts()
    assert racing["ppid"] == os.getpid()
    assert gone_within([first["ppid"], first["pid"]], 30) == []
    after = _facts()  # a new worker, exec'd now: the node does not restart a dead server
    assert after["ppid"] == os.getpid()


def _new_processes(before: set[int]) -> list[psutil.Process]:
    """This process's worker and fork-server processes that were not there before (other
    tests' may be; so may an earlier session's shared-memory reaper, a shell with a `sleep`
    that is no worker)."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.pid not in before and any("minray_worker.py" in a for a in p.cmdline()):
                found.append(p)
        except psutil.NoSuchProcess:
            pass
    return found


def _processes_now() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_shutdown_leaves_no_server_no_worker_and_no_zombie(tmp_path):
    before = _processes_now()
    minray.init(num_cpus=2)
    held = [Probe.remote(), Probe.options(runtime_env={"env_vars": {"PYTHONHASHSEED": "7"}})
            .remote()]  # the second needs a server of its own; handles held keep both alive
    parents = {f["ppid"] for f in minray.get([p.facts.remote() for p in held], timeout=60)}
    held.append(Probe.remote())  # still being forked when shutdown begins
    procs = _new_processes(before)
    assert len(parents - {os.getpid()}) == 2  # two servers, each a parent
    assert parents <= {p.pid for p in procs}
    minray.shutdown()
    for p in procs:  # is_running() is True for a zombie: every process was reaped
        assert not p.is_running(), p


def test_a_fork_server_still_starting_at_shutdown_is_ended():
    before = _processes_now()
    minray.init(num_cpus=1)  # starts the job's fork server, which has not answered yet
    procs = _new_processes(before)
    assert procs
    minray.shutdown()
    for p in procs:
        assert not p.is_running(), p


def test_without_fork_servers_every_worker_is_the_drivers_child(monkeypatch):
    monkeypatch.setenv("MINRAY_FORK_SERVER", "0")
    before = _processes_now()
    minray.init(num_cpus=1)
    assert _facts()["ppid"] == os.getpid()
    assert all(p.ppid() == os.getpid() for p in _new_processes(before))
    minray.shutdown()


PY = sys.executable


@pytest.mark.parametrize("program, forkable", [
    ([PY], True),
    ([PY, "-X", "dev", "-u"], True),
    ([PY, "-Werror"], True),
    ([PY, "-W"], False),  # an option missing its value
    (["/usr/bin/env", "python"], False),  # a wrapper might do something per process
    (["sh", "-c", "exec python \"$@\"", "x"], False),
    ([PY, "-m", "mod"], False),
])
def test_only_a_bare_interpreter_is_forked(program, forkable):
    assert (server_key(program, {}, "/") is not None) is forkable


def test_the_key_holds_what_an_interpreter_reads_at_start():
    base = {"HOME": "/root", "OTHER": "1"}
    key = server_key([PY], base, "/a")
    assert server_key([PY], {**base, "OTHER": "2", "MINRAY_WORKER_ID": "w9"}, "/b") == key
    for name in ("PYTHONPATH", "PYTHONHASHSEED", "LD_LIBRARY_PATH", "LD_PRELOAD",
                 "MALLOC_ARENA_MAX", "GLIBC_TUNABLES", "LC_ALL", "LANG", "TZ", "HOME"):
        assert server_key([PY], {**base, name: "x"}, "/a") != key, name
    assert server_key([PY], {**base, "PATH": "/x"}, "/a") == key  # an absolute program
    assert server_key(["python3"], {**base, "PATH": "/x"}, "/a") != server_key(
        ["python3"], base, "/a")
    relative = {**base, "PYTHONPATH": "src"}  # resolved against the cwd at start
    assert server_key([PY], relative, "/a") != server_key([PY], relative, "/b")


def _env_whose_interpreter_runs(code: str, folder: Path) -> dict:
    """A working_dir env (so a server of its own) whose interpreters run `code` at start."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(code)
    return {"working_dir": str(folder)}


def test_a_fork_server_that_cannot_start_fails_its_env(ray, tmp_path):
    @minray.remote
    def f():
        return "ran"

    env = _env_whose_interpreter_runs("import os\nos._exit(3)\n", tmp_path / "broken")
    with pytest.raises(RuntimeEnvSetupError, match=r"fork server exited \(exit code 3\)"):
        minray.get(f.options(runtime_env=env).remote(), timeout=60)
    assert minray.get(f.remote(), timeout=60) == "ran"


def test_a_stuck_fork_server_is_ended_after_the_register_timeout(ray, tmp_path, monkeypatch):
    monkeypatch.setenv("MINRAY_WORKER_REGISTER_TIMEOUT_SECONDS", "2")

    @minray.remote
    def f():
        return "ran"

    env = _env_whose_interpreter_runs("import time\ntime.sleep(600)\n", tmp_path / "stuck")
    with pytest.raises(RuntimeEnvSetupError, match="did not connect to the node within 2 s"):
        minray.get(f.options(runtime_env=env).remote(), timeout=60)
    assert minray.get(f.remote(), timeout=60) == "ran"


@pytest.mark.parametrize("fork_server", ["1", "0"])
def test_unbuffered_workers_printing_at_once_write_whole_lines(tmp_path, fork_server):
    """Under PYTHONUNBUFFERED each piece of a print would be its own write to the shared
    stdout; two tasks that print together (each waits until the other has started) must
    still give whole lines."""
    import subprocess
    import textwrap

    script = textwrap.dedent(f"""
        import os, time, minray as ray

        @ray.remote
        def chatter(name, other):
            open(os.path.join({str(tmp_path)!r}, name), "w").close()
            deadline = time.monotonic() + 30
            while not os.path.exists(os.path.join({str(tmp_path)!r}, other)):
                assert time.monotonic() < deadline, "the other task never started"
                time.sleep(0.001)
            for i in range(300):
                print("line", i, "from", name)

        ray.init(num_cpus=2)
        ray.get([chatter.remote("a", "b"), chatter.remote("b", "a")])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1",
                                           "MINRAY_FORK_SERVER": fork_server})
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.splitlines()) == sorted(
        f"line {i} from {name}" for name in "ab" for i in range(300))
