"""A driver killed with `kill -9` while its env is being built takes its installer along: uv,
pip and what they started are gone within seconds, and the next driver, finding the
half-built entry unpublished, builds it afresh and runs its task in it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from auth_index import AuthIndex
from procs import alive, wait_for
from wheels import make_wheel

PKG = "mr_guarded_pkg"

DRIVER = textwrap.dedent("""
    import json, sys
    import minray
    minray.init(num_cpus=1, runtime_env=json.loads(sys.argv[1]))

    @minray.remote
    def value():
        import mr_guarded_pkg
        return mr_guarded_pkg.VALUE

    print("VALUE", minray.get(value.remote(), timeout=120), flush=True)
""")

BACKEND = textwrap.dedent("""
    # A build backend whose builds wait for a gate: an install that hangs in a child process.
    import os, shutil, time
    GATE, WHEEL, BUILDS = {gate!r}, {wheel!r}, {builds!r}

    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
        with open(BUILDS, "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        while not os.path.exists(GATE):
            time.sleep(0.05)
        shutil.copy(WHEEL, wheel_directory)
        return os.path.basename(WHEEL)
""")


def setup_processes(driver: subprocess.Popen) -> tuple[list, list]:
    """(the driver's guard, its install command with everything that command started)."""
    guard, installer = [], []
    for child in psutil.Process(driver.pid).children():
        try:
            cmdline = " ".join(child.cmdline())
            if "guard.main()" in cmdline:
                guard.append(child)
            elif " install " in cmdline:
                installer += [child, *child.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return guard, installer


class HangingIndex:
    """uv against an index that takes requests and answers none until released."""

    installer = "uv"

    def __init__(self, tmp_path: Path):
        make_wheel(tmp_path / "wheels", PKG, "1.0", "VALUE = 42")
        self.index = AuthIndex(tmp_path / "wheels", "user", "pw").held()
        self.spec = {"pip": {"packages": [PKG],
                             "pip_install_options": ["--index-url", self.index.url()]}}

    def hanging(self, installer: list) -> bool:
        return self.index.waiting > 0 and bool(installer)

    def release(self) -> None:
        self.index.release()

    def close(self) -> None:
        self.index.close()


class HangingBuild:
    """uv building a local source package whose build backend (a child of uv) waits."""

    installer = "uv"

    def __init__(self, tmp_path: Path):
        wheel = make_wheel(tmp_path / "wheel", PKG, "1.0", "VALUE = 42")
        self.gate, self.builds = tmp_path / "gate", tmp_path / "builds"
        src = tmp_path / "src"
        src.mkdir()
        (src / "pyproject.toml").write_text(
            '[build-system]\nrequires = []\nbuild-backend = "waiting_backend"\n'
            'backend-path = ["."]\n')
        (src / "waiting_backend.py").write_text(BACKEND.format(
            gate=str(self.gate), wheel=str(wheel), builds=str(self.builds)))
        self.spec = {"pip": [str(src)]}

    def hanging(self, installer: list) -> bool:
        return self.builds.exists() and len(installer) >= 2  # the installer and its backend

    def release(self) -> None:
        self.gate.touch()

    def close(self) -> None:
        pass


class HangingPipBuild(HangingBuild):
    """The same with real pip (`MINRAY_PIP_INSTALLER=pip`), whose backend runs in a child too."""

    installer = "pip"


@pytest.mark.parametrize("case", [HangingIndex, HangingBuild, HangingPipBuild],
                         ids=["uv, an index that never answers",
                              "uv, a build backend that never ends",
                              "real pip, a build backend that never ends"])
def test_a_killed_drivers_installer_dies_with_it_and_the_next_driver_builds_the_env(
        case, tmp_path, isolated_cache):
    hang = case(tmp_path)
    env = {**os.environ, "MINRAY_PIP_INSTALLER": hang.installer, "PIP_NO_CACHE_DIR": "1",
           "UV_CACHE_DIR": str(tmp_path / "uv-cache"), "MINRAY_TMPDIR": str(tmp_path)}
    argv = [sys.executable, "-c", DRIVER, json.dumps(hang.spec)]
    try:
        driver = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: hang.hanging(setup_processes(driver)[1]), "the install to hang")
            guard, installer = setup_processes(driver)
        finally:
            driver.send_signal(signal.SIGKILL)
            driver.wait()
        assert len(guard) == 1
        wait_for(lambda: not alive([*installer, *guard]),
                 "the installer, its children and the guard to be gone", timeout=10)
        # The half-built entry is there, unpublished: no driver may take it for complete.
        assert [p.name for p in (isolated_cache.root / "pip").iterdir() if p.is_dir()]
        assert isolated_cache.entries("pip") == []

        hang.release()
        again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
        assert "VALUE 42" in again.stdout, again.stdout + again.stderr
        assert len(isolated_cache.entries("pip")) == 1
    finally:
        hang.close()


EXITING_DRIVER = textwrap.dedent("""
    import subprocess, sys
    from runtime_env import guard

    # A command in a session of its own, as Setup.run starts them, whose child is orphaned at
    # once (its subshell exits): only the process group still holds it.
    cmd = subprocess.Popen(["sh", "-c", "(sleep 1000 &); echo started; exec sleep 1000"],
                           stdout=subprocess.PIPE, text=True, start_new_session=True)
    guard.watch(cmd.pid)
    cmd.stdout.readline()
    print(cmd.pid, flush=True)
    sys.stdin.readline()  # then return, as a driver whose script ends mid-build
""")


def test_a_driver_that_ends_normally_takes_its_commands_and_their_orphans_along():
    driver = subprocess.Popen([sys.executable, "-c", EXITING_DRIVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    group = int(driver.stdout.readline())
    members = []
    for p in psutil.process_iter(["pid", "ppid"]):
        try:
            if os.getpgid(p.pid) == group:
                members.append(p)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    orphans = [p for p in members if p.pid != group and p.info["ppid"] != group]
    assert len(members) == 2 and len(orphans) == 1  # the command, and the sleep it left
    driver.stdin.write("\n")
    driver.stdin.flush()
    assert driver.wait(timeout=60) == 0
    wait_for(lambda: not alive(members), "the command and its orphan to be gone", timeout=10)
