"""Strict mode (MINRAY_STRICT=1 or init(_strict=True)) refuses what minray allows but Ray does
not, naming Ray's rule; without it minray stays permissive. Also Ray's own rules that hold
always: `@remote()` with empty parentheses."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import minray
from minray import strict
from minray.strict import NotPortableError


@pytest.fixture
def strict_mode(monkeypatch):
    monkeypatch.setenv("MINRAY_STRICT", "1")
    yield
    strict.set_enabled(None)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "data.txt").write_text("x")
    pkg = tmp_path / "mylib"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("VALUE = 1\n")
    return tmp_path


def _task():
    @minray.remote
    def f():
        return 1

    return f


def test_a_local_working_dir_per_task_is_refused(strict_mode, project):
    with pytest.raises(NotPortableError, match="local directory only for the job"):
        _task().options(runtime_env={"working_dir": str(project)})
    _task().options(runtime_env={"working_dir": "s3://bucket/project.zip"})  # remote: fine


def test_local_py_modules_per_actor_are_refused(strict_mode, project):
    @minray.remote
    class A:
        pass

    with pytest.raises(NotPortableError, match="py_modules entry"):
        A.options(runtime_env={"py_modules": [str(project / "mylib")]})


def test_eager_install_per_task_is_refused(strict_mode):
    with pytest.raises(NotPortableError, match="eager_install"):
        _task().options(runtime_env={"config": {"eager_install": False}})


def test_local_files_in_a_requirements_file_are_refused(strict_mode, tmp_path):
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("requests\n./wheels/mylib-1.0-py3-none-any.whl\n")
    with pytest.raises(NotPortableError, match="requirements.txt:2"):
        minray.init(runtime_env={"pip": str(reqs)})


def test_without_strict_mode_minray_allows_them(project):
    # the same per-task local working_dir works (a deliberate difference from Ray)
    minray.init(num_cpus=1)

    @minray.remote
    def read():
        return open("data.txt").read()

    assert minray.get(read.options(runtime_env={"working_dir": str(project)}).remote(),
                      timeout=60) == "x"


def test_init_strict_turns_it_on(project):
    try:
        minray.init(num_cpus=1, _strict=True)
        with pytest.raises(NotPortableError):
            _task().options(runtime_env={"working_dir": str(project)})
    finally:
        strict.set_enabled(None)


def test_strict_mode_drops_unfinished_tasks_at_exit_as_ray_does(tmp_path):
    script = textwrap.dedent(f"""
        import os, time, minray as ray

        @ray.remote
        def stuck():
            while not os.path.exists({str(tmp_path / "never")!r}):
                time.sleep(0.05)

        stuck.remote()
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "MINRAY_STRICT": "1"})
    assert out.returncode == 0, out.stderr
    assert "1 unfinished task(s); on Ray they would be dropped" in out.stderr


def test_empty_parentheses_on_remote_are_refused_as_in_ray():
    with pytest.raises(TypeError, match="empty parentheses"):
        @minray.remote()
        def f():
            pass
    with pytest.raises(AssertionError):  # what Ray raises, for code that catches that
        @minray.remote()
        class A:
            pass
