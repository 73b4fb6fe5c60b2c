"""py_executable, and drivers started by `uv run`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from procs import run_in
from runtime_env import Cache, LaunchContext, RuntimeEnv, SetupError, prepare
from runtime_env.plugins.installers import uv_bin
from runtime_env.plugins.py_executable import PyExecutablePlugin
from runtime_env.setup import Setup
from wheels import local, make_wheel

REPO = Path(__file__).resolve().parent.parent


def test_program_with_arguments():
    ctx = prepare(RuntimeEnv(py_executable="python -X dev"))
    assert ctx.py_executable[1:] == ["-X", "dev"]
    assert os.path.isabs(ctx.py_executable[0])
    assert run_in(ctx, "import sys; print(sys.flags.dev_mode)") == "True"


def test_list_is_normalised_to_a_string():
    env = RuntimeEnv(py_executable=[sys.executable, "-X", "utf8"])
    assert env["py_executable"] == f"{sys.executable} -X utf8"
    assert RuntimeEnv(**env) == env


WRAPPER = "#!/bin/sh\nexport MR_WRAPPED=yes\nexec {python} \"$@\"\n"


def test_relative_script_in_the_drivers_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wrap = tmp_path / "wrap.sh"
    wrap.write_text(WRAPPER.format(python=sys.executable))
    wrap.chmod(0o755)
    ctx = prepare(RuntimeEnv(py_executable="./wrap.sh"))
    assert ctx.py_executable == [str(wrap)]
    assert run_in(ctx, "import os; print(os.environ['MR_WRAPPED'])") == "yes"


def test_relative_script_resolves_against_the_working_dir_first(tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    wrap = wd / "wrap.sh"
    wrap.write_text(WRAPPER.format(python=sys.executable))
    wrap.chmod(0o755)
    launch = LaunchContext(cwd=str(wd))
    setup = Setup(cache=Cache(), log_path=None, deadline=None)
    PyExecutablePlugin().modify("wrap.sh --flag", None, launch, setup)
    assert launch.py_executable == [str(wrap), "--flag"]


def test_python_after_pip_is_the_envs_python(tmp_path):
    make_wheel(tmp_path, "mr_pyexe_demo", "1.0", "VALUE = 3")
    ctx = prepare(RuntimeEnv(pip=[*local(tmp_path), "mr_pyexe_demo"],
                             py_executable="python -X dev"))
    assert "venv" in ctx.py_executable[0]
    assert run_in(ctx, "import mr_pyexe_demo, sys; print(mr_pyexe_demo.VALUE, "
                       "sys.flags.dev_mode)") == "3 True"


def test_uv_run_as_py_executable(tmp_path):
    make_wheel(tmp_path, "mr_uvrun_demo", "1.0", "VALUE = 'via uv run'")
    ctx = prepare(RuntimeEnv(py_executable=f"uv run --offline --no-project --python "
                             f"{sys.executable} --find-links {tmp_path} --with mr_uvrun_demo "
                             "python"))
    assert run_in(ctx, "import mr_uvrun_demo; print(mr_uvrun_demo.VALUE)") == "via uv run"


def test_missing_program_is_a_setup_error():
    with pytest.raises(SetupError, match="not found"):
        prepare(RuntimeEnv(py_executable="mr-no-such-interpreter -u"))


@pytest.mark.parametrize("value, error", [(3, TypeError), ("", ValueError),
                                          ("python 'unclosed", ValueError)])
def test_validation_errors(value, error):
    with pytest.raises(error, match="py_executable"):
        RuntimeEnv(py_executable=value)


# --- drivers started by `uv run` -----------------------------------------------------------
DRIVER = """
import json, os, subprocess, sys
from runtime_env import RuntimeEnv, prepare
from runtime_env.uv_run import under_uv_run

def worker(ctx, code):
    out = subprocess.run([*ctx.py_executable, '-c', code], env=ctx.process_env(),
                         capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip().splitlines()[-1]

probe = "import mr_with_pkg; print(mr_with_pkg.VALUE)"
plain = prepare(RuntimeEnv())
pip = prepare(RuntimeEnv(pip=["--no-index", "--find-links", sys.argv[1], "mr_pip_pkg"]))
print(json.dumps({
    "under_uv_run": under_uv_run(),
    "plain": worker(plain, probe),
    "pip_with": worker(pip, probe),
    "pip_own": worker(pip, "import mr_pip_pkg; print(mr_pip_pkg.VALUE)"),
}))
"""


@pytest.fixture
def uv_run_driver(tmp_path):
    with_dir, pip_dir = tmp_path / "with", tmp_path / "pip"
    make_wheel(with_dir, "mr_with_pkg", "1.0", "VALUE = 'from uv run --with'")
    make_wheel(pip_dir, "mr_pip_pkg", "1.0", "VALUE = 'from pip'")
    project = tmp_path / "project"
    project.mkdir()
    (project / "driver.py").write_text(DRIVER)

    def run(**env_vars) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("UV_RUN", "VIRTUAL_ENV"))}
        env.update(env_vars, PYTHONPATH=str(REPO))
        uv = shutil.which("uv") or uv_bin()
        out = subprocess.run(
            [uv, "run", "--offline", "--no-project", "--python", sys.executable,
             "--find-links", str(with_dir), "--with", "mr_with_pkg", "driver.py", str(pip_dir)],
            cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr
        return {"project": str(project.resolve()), **json.loads(out.stdout.splitlines()[-1])}

    return run


def test_uv_run_driver_workers_inherit_its_environment(uv_run_driver):
    result = uv_run_driver()
    assert result["under_uv_run"] is True
    assert result["plain"] == "from uv run --with"
    assert result["pip_with"] == "from uv run --with"  # pip env layered on the driver's env
    assert result["pip_own"] == "from pip"


@pytest.mark.parametrize("var", ["MINRAY_UV_RUN_RUNTIME_ENV", "RAY_ENABLE_UV_RUN_RUNTIME_ENV"])
def test_uv_run_opt_out(uv_run_driver, var):
    result = uv_run_driver(**{var: "0"})
    assert result["under_uv_run"] is True
    assert "ModuleNotFoundError" in result["plain"]
    assert "ModuleNotFoundError" in result["pip_with"]
    assert result["pip_own"] == "from pip"


def test_workers_use_the_drivers_interpreter_outside_uv_run(monkeypatch):
    from runtime_env.uv_run import worker_python

    monkeypatch.delenv("UV_RUN_RECURSION_DEPTH", raising=False)
    monkeypatch.setenv("MINRAY_UV_RUN_RUNTIME_ENV", "0")
    assert worker_python() == sys.executable
