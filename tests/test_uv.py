"""The `uv` field: the `uv pip` flavour of `pip`, with uv_version and uv_check."""

from __future__ import annotations

import importlib.util
import subprocess
import time
from pathlib import Path

import pytest

from procs import demo_value, processes_mentioning
from runtime_env import RuntimeEnv, SetupError, prepare
from runtime_env.plugins.installers import uv_bin
from runtime_env.plugins.uv import satisfies
from wheels import DEMO, SilentServer, local


def current_uv() -> str:
    out = subprocess.run([uv_bin(), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def test_list_form(wheel_dir):
    ctx = prepare(RuntimeEnv(uv=[*local(wheel_dir), DEMO]))
    assert demo_value(ctx) == "one 1.0"
    assert importlib.util.find_spec(DEMO) is None


def test_requirements_file_form(wheel_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("reqs.txt").write_text(f"--no-index\n--find-links {wheel_dir}\n{DEMO}\n")
    env = RuntimeEnv(uv="reqs.txt")
    assert env["uv"]["packages"][-1] == DEMO
    assert demo_value(prepare(env)) == "one 1.0"


def test_dict_form_with_check_and_options(wheel_dir, tmp_path):
    log = tmp_path / "setup.log"
    env = RuntimeEnv(uv={"packages": [DEMO], "uv_check": True,
                         "uv_pip_install_options": local(wheel_dir)})
    assert RuntimeEnv(**env) == env
    assert demo_value(prepare(env, log_path=str(log))) == "one 1.0"
    assert "pip check" in log.read_text()


def test_uv_version_satisfied_by_the_bundled_uv(wheel_dir, tmp_path):
    log = tmp_path / "setup.log"
    env = RuntimeEnv(uv={"packages": [DEMO], "uv_version": f"=={current_uv()}",
                         "uv_pip_install_options": local(wheel_dir)})
    assert demo_value(prepare(env, log_path=str(log))) == "one 1.0"
    assert "using it" in log.read_text()


def test_uv_version_to_install_goes_through_the_installer(wheel_dir, monkeypatch):
    monkeypatch.setenv("UV_OFFLINE", "1")  # no index here: the install must fail, clearly
    env = RuntimeEnv(uv={"packages": [DEMO], "uv_version": "==0.0.1",
                         "uv_pip_install_options": local(wheel_dir)})
    with pytest.raises(SetupError) as info:
        prepare(env)
    assert info.value.field == "uv"
    assert "uv==0.0.1" in info.value.command


def test_version_markers():
    assert satisfies("0.4.0", "==0.4.0", "uv")
    assert not satisfies("0.5.0", "==0.4.0", "uv")
    assert satisfies("0.5.0", "==0.4.0;python_version=='2.7'", "uv")  # marker not for us


@pytest.mark.parametrize("fields, error, words", [
    ({"uv": 3.5}, TypeError, "'uv'"),
    ({"uv": {"packages": [DEMO], "pip_check": True}}, ValueError, "unknown key"),
    ({"uv": {"packages": [DEMO], "uv_check": 1}}, TypeError, "uv_check"),
    ({"uv": {"packages": [DEMO], "uv_version": 4}}, TypeError, "uv_version"),
    ({"uv": "missing-reqs.txt"}, ValueError, "does not exist"),
    ({"uv": [DEMO], "conda": "base"}, ValueError, "conda"),
])
def test_validation_errors(fields, error, words):
    with pytest.raises(error, match=words):
        RuntimeEnv(**fields)


def test_not_found(wheel_dir, tmp_path):
    log = tmp_path / "setup.log"
    with pytest.raises(SetupError) as info:
        prepare(RuntimeEnv(uv=[*local(wheel_dir), "mr-uv-nowhere"]), log_path=str(log))
    assert info.value.field == "uv"
    assert "mr-uv-nowhere" in info.value.output_tail
    assert str(log) in str(info.value)


def test_conflicting_versions_side_by_side(two_versions):
    one, two = two_versions
    assert demo_value(prepare(RuntimeEnv(uv=[*local(one), DEMO]))) == "one 1.0"
    assert demo_value(prepare(RuntimeEnv(uv=[*local(two), DEMO]))) == "two 2.0"


def test_hung_index_times_out():
    with SilentServer() as server:
        env = RuntimeEnv(uv={"packages": ["mr-hung"],
                             "uv_pip_install_options": ["--index-url", server.url]})
        start = time.monotonic()
        with pytest.raises(SetupError, match=r"timed out \(setup_timeout_seconds\)"):
            prepare(env, timeout=2)
        assert time.monotonic() - start < 15
        assert processes_mentioning(server.url) == []
