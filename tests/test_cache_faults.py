"""A cache that never lies: damaged entries, gc beside running drivers, lock files, odd roots."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import zipfile

import pytest

import minray
from cache_helpers import (
    Builder,
    lock_holder,
    minray_cli,
    published_by_an_exited_process,
    python,
    waits_on_a_flock,
)
from minray.exceptions import RuntimeEnvSetupError
from pkgtools import write_tree
from procs import wait_for
from runtime_env import locks, parse
from runtime_env.cache import Cache
from runtime_env.plugins.installers import site_packages, venv_python
from wheels import local, make_wheel

PKG = "mr_cache_pkg"


@pytest.fixture(autouse=True)
def own_sessions_folder(tmp_path_factory, monkeypatch):
    """Sessions of these tests' drivers apart from other tests': another process's pruning of
    old sessions can remove a live one whose random suffix holds "_" (minray/node/session.py)."""
    monkeypatch.setenv("MINRAY_TMPDIR", str(tmp_path_factory.mktemp("sessions")))


def pip_env(wheel_dir):
    return {"pip": {"packages": [PKG], "pip_install_options": local(wheel_dir)}}


def run_once(runtime_env) -> tuple[str, str]:
    """What a task of a new session with this runtime_env imports (value, file)."""

    @minray.remote
    def imported():
        import mr_cache_pkg

        return mr_cache_pkg.VALUE, mr_cache_pkg.__file__

    minray.init(num_cpus=1, runtime_env=runtime_env)
    try:
        return minray.get(imported.remote(), timeout=120)
    finally:
        minray.shutdown()


@pytest.fixture
def env_and_other_copy(tmp_path, monkeypatch):
    """A pip env holding VALUE 'env', on a driver that can import another copy ('other'),
    which a damaged env would fall back to: its environment is layered after the env's own."""
    wheels = tmp_path / "wheels"
    make_wheel(wheels, PKG, "1.0", "VALUE = 'env'")
    site = tmp_path / "driver-env" / "site-packages"
    with zipfile.ZipFile(make_wheel(tmp_path / "other", PKG, "0.9", "VALUE = 'other'")) as z:
        z.extractall(site)
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    return pip_env(wheels)


def damage(kind: str, cache: Cache) -> None:
    (entry,) = cache.entries("pip")
    venv = entry.path / "venv"
    if kind == "python deleted":
        venv_python(venv).unlink()
    elif kind == "package deleted":
        shutil.rmtree(site_packages(venv) / PKG)
        out = subprocess.run([venv_python(venv), "-c", f"import {PKG}; print({PKG}.VALUE)"],
                             capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "other"  # what a worker would import, unchecked
    elif kind == "manifest truncated":
        manifest = cache.root / "pip" / f"{entry.key}.json"
        manifest.write_bytes(manifest.read_bytes()[:40])
    else:
        shutil.rmtree(entry.path)


@pytest.mark.parametrize("kind", ["python deleted", "package deleted", "manifest truncated",
                                  "entry folder deleted"])
def test_a_damaged_pip_env_is_rebuilt_and_never_replaced_by_another_copy(
        kind, env_and_other_copy, isolated_cache):
    value, _ = run_once(env_and_other_copy)
    assert value == "env"
    damage(kind, isolated_cache)
    value, file = run_once(env_and_other_copy)
    assert value == "env" and file.startswith(str(isolated_cache.root))
    assert [e.field for e in isolated_cache.entries()] == ["pip"]  # listed, collectable again


def test_a_damaged_package_whose_source_is_gone_is_a_setup_error_naming_it(tmp_path,
                                                                           isolated_cache):
    project = write_tree(tmp_path / "project", {"helper.py": "X = 1\n", "data.txt": "d"})
    uri = parse({"working_dir": str(project)})["working_dir"]
    shutil.rmtree(project)
    entry = isolated_cache.path("working_dir", uri.rsplit("/", 1)[1])
    (entry / "helper.py").unlink()

    @minray.remote(runtime_env={"working_dir": uri})
    def uses_helper():
        import helper

        return helper.X

    minray.init(num_cpus=1)
    with pytest.raises(RuntimeEnvSetupError, match="was damaged") as info:
        minray.get(uses_helper.remote(), timeout=60)
    assert f"{entry} lacks helper.py" in str(info.value)


DRIVER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import minray as ray

    env, module, progress, go = json.loads(sys.argv[1]), sys.argv[2], *map(Path, sys.argv[3:])
    ray.init(num_cpus=1, runtime_env=env)

    @ray.remote
    class Probe:
        def value(self):
            return __import__(module).VALUE

    def in_a_new_worker():
        probe = Probe.remote()
        try:
            return ray.get(probe.value.remote(), timeout=60)
        finally:
            ray.kill(probe)

    print("ready", in_a_new_worker(), flush=True)
    starts = 0
    deadline = time.monotonic() + 120
    while not go.exists():
        assert time.monotonic() < deadline, "never told to stop"
        if progress.name != "-":
            assert in_a_new_worker() == "env"
            starts += 1
            progress.write_text(str(starts))
        else:
            time.sleep(0.01)
    print("after", in_a_new_worker(), starts, flush=True)
""")


def start_driver(env: dict, module: str, progress, go):
    return python(DRIVER, json.dumps(env), module, progress, go, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, text=True)


def test_gc_of_a_running_drivers_env_keeps_its_next_workers_starting(tmp_path, isolated_cache):
    wheels = tmp_path / "wheels"
    make_wheel(wheels, PKG, "1.0", "VALUE = 'env'")
    unused = published_by_an_exited_process(isolated_cache.root, "pip", "unused")
    go = tmp_path / "go"
    driver = start_driver(pip_env(wheels), PKG, "-", go)
    assert driver.stdout.readline().split() == ["ready", "env"]

    gc = minray_cli("env", "gc", "--max-size-gb", "0")
    assert gc.returncode == 0 and "1 entry removed" in gc.stdout, gc.stdout + gc.stderr
    assert not unused.exists()

    go.touch()
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 0, err
    assert out.split() == ["after", "env", "0"]


def test_gc_in_a_loop_beside_drivers_starting_workers_fails_no_task(tmp_path, isolated_cache):
    wheels = tmp_path / "wheels"
    make_wheel(wheels, PKG, "1.0", "VALUE = 'env'")
    project = write_tree(tmp_path / "project", {"wd_module.py": "VALUE = 'env'\n"})
    root = isolated_cache.root
    go = tmp_path / "stop"
    progress = [tmp_path / "pip.progress", tmp_path / "wd.progress"]
    drivers = []  # started one by one, each ready before the next
    for env, module, done in [(pip_env(wheels), PKG, progress[0]),
                              ({"working_dir": str(project)}, "wd_module", progress[1])]:
        drivers.append(start_driver(env, module, done, go))
        assert drivers[-1].stdout.readline().split() == ["ready", "env"], drivers[-1].stderr.read()
    seeded = [published_by_an_exited_process(root, f, "unused") for f in ("pip", "working_dir")]

    def starts() -> list[int]:
        return [int(p.read_text() or 0) if p.exists() else 0 for p in progress]

    before = starts()
    rounds, removed = 0, []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline or min(
            now - then for now, then in zip(starts(), before, strict=True)) < 5:
        assert time.monotonic() < deadline + 60, "the drivers stopped starting workers"
        for driver in drivers:
            assert driver.poll() is None, driver.communicate()[1]
        removed += Cache(root).gc(limit_bytes=0)
        rounds += 1
    go.touch()
    for driver in drivers:
        out, err = driver.communicate(timeout=120)
        assert driver.returncode == 0, err
        assert out.split()[:2] == ["after", "env"]
    assert rounds > 1 and sorted(e.path for e in removed) == sorted(seeded)


def test_gc_removes_the_lock_files_and_leftovers_of_what_it_removes(tmp_path, isolated_cache):
    root = isolated_cache.root
    published_by_an_exited_process(root, "pip", "one")
    published_by_an_exited_process(root, "working_dir", "two")
    Builder(root, "pip", "killed", tmp_path).kill()  # kill -9 mid-build: folder, lock, lease
    assert {p.name for p in (root / "pip").iterdir()} >= {"one.lock", "killed", "killed.lock"}

    gc = minray_cli("env", "gc", "--max-size-gb", "0")
    assert "2 entries removed" in gc.stdout, gc.stdout + gc.stderr
    assert [p.name for p in (root / "pip").iterdir()] == []
    assert [p.name for p in (root / "working_dir").iterdir()] == []


class StallingZip(http.server.BaseHTTPRequestHandler):
    """Sends the first part of a zip, then nothing more: a download that never ends."""

    stop = threading.Event()

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 22))
        self.end_headers()
        self.wfile.write(b"PK" + b"\0" * (1 << 19))
        self.wfile.flush()
        self.stop.wait(60)

    def log_message(self, *args):
        pass


def test_gc_removes_the_partial_download_of_a_killed_driver(isolated_cache):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StallingZip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/project.zip"
    folder = isolated_cache.root / "working_dir"
    driver = python("import sys; from runtime_env import parse, prepare; "
                    "prepare(parse({'working_dir': sys.argv[1]}))", url)
    try:
        wait_for(lambda: any(folder.glob("*.scratch")), "the download to begin")
        driver.kill()  # kill -9 mid-download: its scratch file stays behind
        driver.wait(30)
        assert any(folder.glob("*.scratch"))
        gc = minray_cli("env", "gc")
        assert gc.returncode == 0, gc.stderr
        assert [p.name for p in folder.iterdir()] == []
    finally:
        StallingZip.stop.set()
        server.shutdown()
        server.server_close()


def test_gc_neither_waits_for_a_builder_nor_touches_its_entry(tmp_path, isolated_cache):
    root = isolated_cache.root
    old = published_by_an_exited_process(root, "pip", "old")
    builder = Builder(root, "pip", "new", tmp_path)

    gc = minray_cli("env", "gc", "--max-size-gb", "0", timeout=60)  # would wait 120 s
    assert "1 entry removed" in gc.stdout, gc.stdout + gc.stderr
    assert not old.exists()
    assert builder.proc.poll() is None and (root / "pip" / "new" / "data").exists()

    builder.finish()
    assert isolated_cache.use("pip", "new") is None


def test_a_waiter_on_a_deleted_lock_file_locks_the_file_that_replaces_it(tmp_path):
    lock, holding, release = tmp_path / "e.lock", tmp_path / "holding", tmp_path / "release"
    with locks.locked(lock):
        waiter = lock_holder(lock, holding, release)
        wait_for(lambda: waits_on_a_flock(waiter.pid), "the waiter blocking on the lock", 30)
        lock.unlink()  # as gc does when it removes an entry, while holding its lock
    wait_for(holding.exists, "the waiter taking the lock", 30)
    with pytest.raises(TimeoutError), locks.locked(lock, timeout=0):
        pass  # the waiter holds the file the path names now: nobody else gets in
    release.touch()
    assert waiter.wait(60) == 0


@pytest.mark.parametrize("installer, relative", [("uv", False), ("pip", False), ("uv", True)])
def test_a_cache_dir_that_does_not_exist_yet_with_space_and_non_ascii(installer, relative,
                                                                      tmp_path, monkeypatch):
    name = "not here yet/cache dir é ü 缓存"
    root = tmp_path / name
    monkeypatch.chdir(tmp_path)  # a relative root is the driver's cwd's, workers start elsewhere
    monkeypatch.setenv("MINRAY_CACHE_DIR", name if relative else str(root))
    monkeypatch.setenv("MINRAY_PIP_INSTALLER", installer)
    wheels = tmp_path / "wheels"
    make_wheel(wheels, PKG, "1.0", "VALUE = 'env'")
    value, file = run_once({**pip_env(wheels), "working_dir": str(wheels)})
    assert value == "env" and file.startswith(str(root / "pip"))
