"""The `pip` field: forms, validation, isolation, caching, failures, timeouts, real pip."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from procs import demo_value, processes_mentioning, run_in
from runtime_env import RuntimeEnv, SetupError, prepare
from runtime_env.cache import Cache
from runtime_env.expansion import expansion_env
from runtime_env.plugins.installers import BUILD_MARK
from runtime_env.setup import Setup
from wheels import DEMO, SilentServer, local


def test_list_form_importable_in_worker_not_in_driver(wheel_dir):
    wheel = next(wheel_dir.glob("*.whl"))
    ctx = prepare(RuntimeEnv(pip=[str(wheel)]))
    assert demo_value(ctx) == "one 1.0"
    assert importlib.util.find_spec(DEMO) is None
    assert Path(ctx.py_executable[0]).parent.parent.name == "venv"
    assert ctx.env_vars["VIRTUAL_ENV"] in ctx.py_executable[0]


def test_base_environment_stays_importable(wheel_dir):
    ctx = prepare(RuntimeEnv(pip=[*local(wheel_dir), DEMO]))
    # psutil is in the driver's environment, not in the pip env: --system-site-packages.
    out = run_in(ctx, f"import psutil, {DEMO}, sys; print(sys.prefix != sys.base_prefix)")
    assert out == "True"


def test_requirements_file_is_read_on_the_driver(wheel_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("requirements.txt").write_text(
        f"# local only\n--no-index\n--find-links {wheel_dir}\n\n{DEMO}==1.0  # pinned\n")
    env = RuntimeEnv(pip="requirements.txt")
    assert env["pip"] == {"packages": ["--no-index", f"--find-links {wheel_dir}", f"{DEMO}==1.0"],
                          "pip_check": False}
    Path("requirements.txt").unlink()  # the spec is a pure value now
    assert demo_value(prepare(env)) == "one 1.0"


def test_dict_form_with_options_and_check(wheel_dir, tmp_path):
    log = tmp_path / "setup.log"
    env = RuntimeEnv(pip={"packages": [DEMO], "pip_check": True,
                          "pip_install_options": local(wheel_dir)})
    assert demo_value(prepare(env, log_path=str(log))) == "one 1.0"
    text = log.read_text()
    assert "pip install" in text and "pip check" in text


def test_normalised_value_validates_to_itself(wheel_dir, tmp_path):
    req = tmp_path / "r.txt"
    req.write_text(f"{DEMO}\n")
    for value in ([DEMO], str(req), {"packages": [DEMO], "pip_version": "23.0"},
                  {"packages": str(req), "pip_install_options": ["--no-index"]}):
        once = RuntimeEnv(pip=value)
        assert RuntimeEnv(**once) == once
    assert RuntimeEnv(pip={"packages": [], "pip_version": "23.0"})["pip"]["pip_version"] == "==23.0"


@pytest.mark.parametrize("fields, error, words", [
    ({"pip": 3}, TypeError, "'pip'"),
    ({"pip": [DEMO, 3]}, TypeError, "'pip'"),
    ({"pip": {"pkgs": [DEMO]}}, ValueError, "unknown key"),
    ({"pip": {"pip_check": True}}, ValueError, "'packages'"),
    ({"pip": {"packages": [DEMO], "pip_check": "yes"}}, TypeError, "pip_check"),
    ({"pip": {"packages": [DEMO], "pip_version": "not a version!"}}, ValueError, "pip_version"),
    ({"pip": {"packages": [DEMO], "pip_install_options": "--no-index"}}, TypeError, "options"),
    ({"pip": "no/such/requirements.txt"}, ValueError, "does not exist"),
    ({"pip": [DEMO], "conda": {"dependencies": []}}, ValueError, "conda"),
    ({"pip": [DEMO], "uv": [DEMO]}, ValueError, "uv"),
])
def test_validation_errors_at_the_call_site(fields, error, words):
    with pytest.raises(error, match=words):
        RuntimeEnv(**fields)


def test_two_conflicting_versions_side_by_side(two_versions):
    one, two = two_versions
    ctx1 = prepare(RuntimeEnv(pip=[*local(one), f"{DEMO}==1.0"]))
    ctx2 = prepare(RuntimeEnv(pip=[*local(two), f"{DEMO}==2.0"]))
    assert ctx1.py_executable != ctx2.py_executable
    assert demo_value(ctx1) == "one 1.0"
    assert demo_value(ctx2) == "two 2.0"


def test_cached_prepare_reuses_the_env(wheel_dir, tmp_path, isolated_cache):
    log = tmp_path / "setup.log"
    env = RuntimeEnv(pip=[*local(wheel_dir), DEMO])
    first = prepare(env, log_path=str(log))
    second = prepare(RuntimeEnv(**env), log_path=str(log))
    assert first.py_executable == second.py_executable
    assert log.read_text().count(BUILD_MARK) == 1
    assert "using cached environment" in log.read_text()
    assert [e.field for e in isolated_cache.entries()] == ["pip"]


def test_variables_are_expanded_at_create_time_and_keyed(two_versions, monkeypatch):
    one, two = two_versions
    env = RuntimeEnv(pip=["--no-index", "--find-links ${MY_WHEELS}", DEMO])
    monkeypatch.setenv("MY_WHEELS", str(one))
    assert demo_value(prepare(env)) == "one 1.0"
    monkeypatch.setenv("MY_WHEELS", str(two))
    assert demo_value(prepare(env)) == "two 2.0"


def test_working_dir_variable_has_both_spellings(tmp_path):
    from runtime_env.plugins.working_dir import WorkingDirPlugin

    wd = tmp_path / "wd"
    wd.mkdir()
    setup = Setup(cache=Cache(), log_path=None, deadline=None)
    folder = WorkingDirPlugin().create(RuntimeEnv(working_dir=str(wd))["working_dir"], setup)
    env = expansion_env(setup)
    assert env["RAY_RUNTIME_ENV_CREATE_WORKING_DIR"] == str(folder)
    assert env["MINRAY_RUNTIME_ENV_CREATE_WORKING_DIR"] == str(folder)


def test_requirement_not_found_names_field_command_output_and_log(wheel_dir, tmp_path,
                                                                  isolated_cache):
    log = tmp_path / "setup.log"
    env = RuntimeEnv(pip=[*local(wheel_dir), "mr-no-such-package-anywhere"])
    with pytest.raises(SetupError) as info:
        prepare(env, log_path=str(log))
    err = info.value
    assert err.field == "pip"
    assert "pip install" in " ".join(err.command)
    assert "mr-no-such-package-anywhere" in err.output_tail
    assert err.log_path == str(log) and str(log) in str(err)
    assert "mr-no-such-package-anywhere" in log.read_text()
    assert isolated_cache.entries("pip") == []  # a failed build publishes nothing


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_hung_index_is_killed_at_the_setup_timeout(installer, monkeypatch, tmp_path):
    monkeypatch.setenv("MINRAY_PIP_INSTALLER", installer)
    with SilentServer() as server:
        env = RuntimeEnv(pip={"packages": ["mr-package-from-a-hung-index"],
                              "pip_install_options": ["--index-url", server.url]})
        start = time.monotonic()
        with pytest.raises(SetupError, match=r"timed out \(setup_timeout_seconds\)") as info:
            prepare(env, timeout=2, log_path=str(tmp_path / "setup.log"))
        assert time.monotonic() - start < 15
        assert info.value.field == "pip"
        assert processes_mentioning(server.url) == []


def test_real_pip_when_asked(wheel_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MINRAY_PIP_INSTALLER", "pip")
    log = tmp_path / "setup.log"
    ctx = prepare(RuntimeEnv(pip={"packages": [DEMO], "pip_check": True,
                                  "pip_install_options": local(wheel_dir)}),
                  log_path=str(log))
    assert demo_value(ctx) == "one 1.0"
    assert "-m pip install" in log.read_text() and "-m pip check" in log.read_text()
    assert run_in(ctx, "import pip, sys; print(pip.__file__.startswith(sys.prefix))") == "True"


def test_pip_version_already_satisfied_needs_no_index(wheel_dir, tmp_path):
    plain = prepare(RuntimeEnv(pip={"packages": [], "pip_version": ">=1"}))
    version = run_in(plain, "import pip; print(pip.__version__)")
    log = tmp_path / "setup.log"
    env = RuntimeEnv(pip={"packages": [DEMO], "pip_version": f"=={version}",
                          "pip_install_options": local(wheel_dir)})
    ctx = prepare(env, log_path=str(log))
    assert demo_value(ctx) == "one 1.0"
    assert run_in(ctx, "import pip; print(pip.__version__)") == version
    assert "already satisfied" in log.read_text()


def test_pip_version_that_needs_the_index_fails_clearly(wheel_dir):
    env = RuntimeEnv(pip={"packages": [DEMO], "pip_version": "==0.1",
                          "pip_install_options": local(wheel_dir)})
    with pytest.raises(SetupError) as info:
        prepare(env)
    assert "pip==0.1" in " ".join(info.value.command)


BUILDER = """
import sys
from runtime_env import RuntimeEnv, prepare
ctx = prepare(RuntimeEnv(pip=sys.argv[1:]), log_path=sys.argv[0] + '.log')
import subprocess
out = subprocess.run([*ctx.py_executable, '-c', 'import {pkg}; print({pkg}.VALUE)'],
                     env=ctx.process_env(), capture_output=True, text=True, check=True)
print(out.stdout.strip())
"""


def test_four_processes_build_one_new_env_once(wheel_dir, tmp_path):
    procs = []
    for i in range(4):
        script = tmp_path / f"builder{i}.py"
        script.write_text(BUILDER.format(pkg=DEMO))
        procs.append(subprocess.Popen([sys.executable, str(script), *local(wheel_dir), DEMO],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env={**os.environ, "PYTHONPATH": _repo_path()}))
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    assert [o.strip() for o, _ in outs] == ["one"] * 4
    logs = [(tmp_path / f"builder{i}.py.log").read_text() for i in range(4)]
    assert sum(log.count(BUILD_MARK) for log in logs) == 1
    assert len(Cache().entries("pip")) == 1


def _repo_path() -> str:
    repo = str(Path(__file__).resolve().parent.parent)
    return os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
