"""What Ray users type out of habit: addresses of the local node, `ray.runtime_env` after
`import minray as ray`, RuntimeEnv's accessors, and misspelt fields that get a suggestion."""

import subprocess
import sys

import pytest

import minray
import runtime_env as renv


@pytest.mark.parametrize("call", [lambda: minray.init("auto"), lambda: minray.init("local"),
                                  lambda: minray.init(address=None), lambda: minray.init(),
                                  lambda: minray.init("http://127.0.0.1:8265")])
def test_local_addresses_start_the_local_node(call):
    info = call()
    try:
        assert minray.get(minray.put(7)) == 7 and info["num_cpus"] >= 1
    finally:
        minray.shutdown()


@pytest.mark.parametrize("address, says", [
    ("ray://10.0.0.1:10001", "Ray Client address"),
    ("ray://127.0.0.1:10001", "Ray Client address"),
    ("10.0.0.1:6379", "remote cluster"),
    ("http://head.example:8265", "remote cluster"),
])
def test_a_cluster_address_is_a_clear_error_pointing_to_ray(address, says):
    with pytest.raises(ValueError, match=says) as info:
        minray.init(address)
    assert "use Ray itself" in str(info.value) and address in str(info.value)
    assert not minray.is_initialized()


def test_ray_runtime_env_needs_no_second_import():
    """`import minray as ray; ray.runtime_env.RuntimeEnv(...)` in a fresh interpreter."""
    code = ("import minray as ray\n"
            "env = ray.runtime_env.RuntimeEnv(env_vars={'A': '1'}, pip=['emoji'])\n"
            "print(type(env).__name__, env.env_vars()['A'], env.pip_config()['packages'])\n"
            "print(ray.job_submission.JobStatus.SUCCEEDED)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["RuntimeEnv 1 ['emoji']", "SUCCEEDED"]


def test_runtime_env_has_rays_accessors(tmp_path):
    (tmp_path / "mod.py").write_text("X = 1\n")
    env = minray.runtime_env.RuntimeEnv(
        working_dir=str(tmp_path), py_modules=[str(tmp_path / "mod.py")],
        env_vars={"A": "1"}, pip={"packages": ["emoji"], "pip_check": True})
    assert env.working_dir().startswith("minray-pkg://working_dir/")
    assert [m.split("/")[2] for m in env.py_modules()] == ["py_modules"]
    assert env.env_vars() == {"A": "1"}
    assert env.pip_config() == {"packages": ["emoji"], "pip_check": True}
    assert env.conda_config() is None and env.to_dict() == dict(env)
    assert minray.runtime_env.RuntimeEnv.deserialize(env.serialize()) == env
    conda = minray.runtime_env.RuntimeEnv(conda={"dependencies": ["pip"]})
    assert '"dependencies"' in conda.conda_config() and conda.conda_env_name() is None


@pytest.mark.parametrize("spec, hint", [
    ({"env_var": {"A": "1"}}, "did you mean 'env_vars'?"),
    ({"workdir": "."}, "did you mean 'working_dir'?"),
    ({"pip": {"packages": [], "pip_chek": True}}, "did you mean 'pip_check'?"),
    ({"config": {"setup_timeout": 5}}, "did you mean 'setup_timeout_seconds'?"),
    ({"pip": "requests"}, "give a list: {'pip': ['requests']}"),
])
def test_misspellings_get_a_suggestion(spec, hint):
    with pytest.raises(ValueError) as info:
        renv.parse(spec)
    assert hint in str(info.value)


def test_a_missing_requirements_file_gets_no_package_hint():
    with pytest.raises(ValueError) as info:
        renv.parse({"pip": "requirements-dev.txt"})
    assert "does not exist" in str(info.value) and "give a list" not in str(info.value)
