"""The `conda` field: existing envs (prefix, name), environment dicts and files, errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from procs import run_in
from runtime_env import RuntimeEnv, SetupError, prepare
from runtime_env.plugins.conda import DRIVER_PYTHON, find_tool, with_python
from wheels import DEMO, make_prefix

OTHER_PYTHON = "2.7" if DRIVER_PYTHON != "2.7" else "3.99"


def make_fake_prefix(path: Path, version: str) -> Path:
    """A conda-like env whose python reports another major.minor."""
    (path / "conda-meta").mkdir(parents=True)
    (path / "bin").mkdir()
    python = path / "bin" / "python"
    python.write_text(f"#!/bin/sh\necho {version}\n")
    python.chmod(0o755)
    return path


def test_existing_prefix(tmp_path, wheel_dir):
    prefix = make_prefix(tmp_path / "envs" / "demo", wheel_dir)
    env = RuntimeEnv(conda=str(prefix))
    assert env["conda"] == str(prefix)
    ctx = prepare(env)
    assert ctx.py_executable == [str(prefix / "bin" / "python")]
    assert ctx.env_vars["CONDA_PREFIX"] == str(prefix)
    out = run_in(ctx, f"import {DEMO}, os, sys; print({DEMO}.VALUE, sys.prefix)")
    assert out == f"one {prefix}"
    assert importlib.util.find_spec(DEMO) is None


def test_existing_env_by_name(tmp_path, wheel_dir, monkeypatch):
    root = tmp_path / "conda"
    make_prefix(root / "envs" / "mr-named", wheel_dir)
    monkeypatch.setenv("CONDA_PREFIX", str(root))  # as in conda's base env
    env = RuntimeEnv(conda="mr-named")
    assert env["conda"] == "mr-named"
    ctx = prepare(env)
    assert ctx.env_vars["CONDA_DEFAULT_ENV"] == "mr-named"
    assert run_in(ctx, f"import {DEMO}; print({DEMO}.VALUE)") == "one"


def test_unknown_name_is_a_setup_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDA_PREFIX", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no conda binary to ask either
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.delenv("MAMBA_EXE", raising=False)
    with pytest.raises(SetupError, match="'mr-missing' not found"):
        prepare(RuntimeEnv(conda="mr-missing"))


def test_python_mismatch_of_a_prefix_at_the_call_site(tmp_path):
    prefix = make_fake_prefix(tmp_path / "old", OTHER_PYTHON)
    with pytest.raises(ValueError, match=f"Python {OTHER_PYTHON}.*{DRIVER_PYTHON}"):
        RuntimeEnv(conda=str(prefix))


def test_python_mismatch_of_a_named_env_at_setup(tmp_path, monkeypatch):
    make_fake_prefix(tmp_path / "envs" / "mr-old", OTHER_PYTHON)
    monkeypatch.setenv("CONDA_PREFIX", str(tmp_path))
    env = RuntimeEnv(conda="mr-old")  # a name cannot be checked until setup
    with pytest.raises(SetupError, match=f"Python {OTHER_PYTHON}") as info:
        prepare(env)
    assert info.value.field == "conda"


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "nope", "does not exist"),
    (lambda p: (p / "plain").mkdir() or p / "plain", "no conda-meta"),
])
def test_bad_prefixes(tmp_path, make, words):
    with pytest.raises(ValueError, match=words):
        RuntimeEnv(conda=str(make(tmp_path)))


def test_environment_file_is_read_into_a_dict(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("environment.yml").write_text(
        "name: demo\nchannels: [conda-forge]\ndependencies:\n  - numpy\n  - pip:\n"
        "    - ${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}/pkg.whl\n")
    env = RuntimeEnv(conda="environment.yml")
    assert env["conda"] == {"name": "demo", "channels": ["conda-forge"], "dependencies": [
        "numpy", {"pip": ["${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}/pkg.whl"]}]}
    assert RuntimeEnv(**env) == env


@pytest.mark.parametrize("fields, error, words", [
    ({"conda": 7}, TypeError, "'conda'"),
    ({"conda": {"dependencies": "numpy"}}, TypeError, "dependencies"),
    ({"conda": {"dependencies": [3]}}, TypeError, "dependency"),
    ({"conda": "missing.yml"}, ValueError, "does not exist"),
    ({"conda": "bad name!"}, ValueError, "not an env name"),
    ({"conda": {"dependencies": []}, "pip": ["x"]}, ValueError, "pip"),
])
def test_validation_errors(fields, error, words):
    with pytest.raises(error, match=words):
        RuntimeEnv(**fields)


def test_python_is_added_unless_named():
    assert with_python({"dependencies": ["numpy"]})["dependencies"] == [
        f"python={DRIVER_PYTHON}", "numpy"]
    assert with_python({"dependencies": ["python=3.12", "numpy"]})["dependencies"] == [
        "python=3.12", "numpy"]
    assert with_python({})["dependencies"] == [f"python={DRIVER_PYTHON}"]


def test_creating_without_any_conda_tool_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.delenv("MAMBA_EXE", raising=False)
    with pytest.raises(SetupError, match="conda, mamba or micromamba") as info:
        prepare(RuntimeEnv(conda={"dependencies": ["numpy"]}))
    assert info.value.field == "conda"
    assert "micromamba" in str(info.value)


# The hosts of conda's default channels (conda-forge and anaconda's defaults).
CHANNEL_HOSTS = ("https://conda.anaconda.org/", "https://repo.anaconda.com/")


def skip_unless_a_channel_answers(seconds: float = 10) -> None:
    """Skip within seconds, saying why, when no default channel can be reached: the conda
    tool would otherwise retry for minutes, then fail the test for want of a network."""
    import urllib.error
    import urllib.request

    errors = []
    for url in CHANNEL_HOSTS:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=seconds)
            return
        except urllib.error.HTTPError:  # it answered, if only to refuse a bare HEAD
            return
        except (OSError, ValueError) as e:
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
    pytest.skip(f"creating a conda env needs its channels, and none answered within "
                f"{seconds:.0f} s ({'; '.join(errors)})")


@pytest.mark.skipif(find_tool() is None,
                    reason="no conda, mamba or micromamba on PATH or in CONDA_EXE/MAMBA_EXE")
def test_create_from_a_dict_with_a_real_tool(tmp_path):  # pragma: no cover - needs conda
    skip_unless_a_channel_answers()
    ctx = prepare(RuntimeEnv(conda={"dependencies": []}), log_path=str(tmp_path / "log"))
    out = run_in(ctx, "import sys; print('%d.%d' % sys.version_info[:2], sys.prefix)")
    assert out.startswith(DRIVER_PYTHON)
