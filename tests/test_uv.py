"""The `uv` field: the `uv pip` flavour of `pip`, with uv_version and uv_check."""

from __future__ import annotations

import importlib.util
import subprocess
import time
from pathlib import Path

import pytest

from conftest import run_in
from runtime_env import RuntimeEnv, SetupError, prepare
from runtime_env.plugins.installers import uv_bin
from runtime_env.plugins.uv import satisfies
from wheels import SilentServer, local, make_wheel, processes_mentioning

PKG = "mr_uv_demo"


@pytest.fixture
def wheel_dir(tmp_path):
    d = tmp_path / "wheels"
    make_wheel(d, PKG, "1.0", "VALUE = 'uv-one'")
    return d


def value_in(ctx) -> str:
    return run_in(ctx, f"import {PKG}; print({PKG}.VALUE)")


def current_uv() -> str:
    out = subprocess.run([uv_bin(), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def test_list_form(wheel_dir):
    ctx = prepare(RuntimeEnv(uv=[*local(wheel_dir), PKG]))
    assert value_in(ctx) == "uv-one"
    assert importlib.util.find_spec(PKG) is None


def test_requirements_file_form(wheel_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("reqs.txt").write_text(f"--no-index\n--find-links {wheel_dir}\n{PKG}\n")
    env = RuntimeEnv(uv="reqs.txt")
    assert env["uv"]["packages"][-1] == PKG
    assert value_in(prepare(env)) == "uv-one"


def test_dict_form_with_check_and_options(wheel_dir, tmp_path):
    log = tmp_path / "setup.log"
    env = RuntimeEnv(uv={"packages": [PKG], "uv_check": True,
                         "uv_pip_install_options": local(wheel_dir)})
    assert RuntimeEnv(**env) == env
    assert value_in(prepare(env, log_path=str(log))) == "uv-one"
    assert "pip check" in log.read_text()


def test_uv_version_satisfied_by_the_bundled_uv(wheel_dir, tmp_path):
    log = tmp_path / "setup.log"
    env = RuntimeEnv(uv={"packages": [PKG], "uv_version": f"=={current_uv()}",
                         "uv_pip_install_options": local(wheel_dir)})
    assert value_in(prepare(env, log_path=str(log))) == "uv-one"
    assert "using it" in log.read_text()


def test_uv_version_to_install_goes_through_the_installer(wheel_dir, monkeypatch):
    monkeypatch.setenv("UV_OFFLINE", "1")  # no index here: the install must fail, clearly
    env = RuntimeEnv(uv={"packages": [PKG], "uv_version": "==0.0.1",
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
    ({"uv": {"packages": [PKG], "pip_check": True}}, ValueError, "unknown key"),
    ({"uv": {"packages": [PKG], "uv_check": 1}}, TypeError, "uv_check"),
    ({"uv": {"packages": [PKG], "uv_version": 4}}, TypeError, "uv_version"),
    ({"uv": "missing-reqs.txt"}, ValueError, "does not exist"),
    ({"uv": [PKG], "conda": "base"}, ValueError, "conda"),
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


def test_conflicting_versions_side_by_side(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    make_wheel(one, PKG, "1.0", "VALUE = 'a'")
    make_wheel(two, PKG, "2.0", "VALUE = 'b'")
    assert value_in(prepare(RuntimeEnv(uv=[*local(one), PKG]))) == "a"
    assert value_in(prepare(RuntimeEnv(uv=[*local(two), PKG]))) == "b"


def test_hung_index_times_out():
    with SilentServer() as server:
        env = RuntimeEnv(uv={"packages": ["mr-hung"],
                             "uv_pip_install_options": ["--index-url", server.url]})
        start = time.monotonic()
        with pytest.raises(SetupError, match="timed out"):
            prepare(env, timeout=2)
        assert time.monotonic() - start < 15
        assert processes_mentioning(server.url) == []
