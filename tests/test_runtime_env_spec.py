"""RuntimeEnv as a value: validation, canonical hash, inheritance, job merging, env_vars."""

import os

import pytest

import runtime_env as renv
from minray.runtime_env import RuntimeEnv, RuntimeEnvConfig
from runtime_env.expansion import expand_or_empty


def test_runtime_env_is_a_validated_dict():
    env = RuntimeEnv(env_vars={"A": "1"}, config=RuntimeEnvConfig(setup_timeout_seconds=9))
    assert isinstance(env, dict) and env["env_vars"] == {"A": "1"}
    assert env.config().timeout == 9 and env.config()["eager_install"] is True
    assert RuntimeEnv.deserialize(env.serialize()) == env


def test_unknown_fields_list_the_known_ones():
    with pytest.raises(ValueError) as info:
        renv.parse({"working_dri": "."})
    message = str(info.value)
    assert "working_dri" in message
    for known in ("env_vars", "working_dir", "py_modules", "pip", "uv", "conda", "config"):
        assert known in message


@pytest.mark.parametrize("bad, error, field", [
    ({"env_vars": ["A=1"]}, TypeError, "env_vars"),
    ({"env_vars": {"A": None}}, TypeError, "env_vars"),
    ({"excludes": "*.log"}, TypeError, "excludes"),
    ({"config": {"setup_timeout_seconds": "10"}}, TypeError, "setup_timeout_seconds"),
    ({"config": {"eager_install": "yes"}}, TypeError, "eager_install"),
    ({"config": {"timeout": 3}}, ValueError, "timeout"),
    ({1: "x"}, TypeError, "field names"),
])
def test_wrong_types_name_the_field(bad, error, field):
    with pytest.raises(error, match=field):
        renv.parse(bad)


def test_hash_is_canonical_and_ignores_config():
    a = renv.parse({"env_vars": {"A": "1", "B": "2"}, "config": {"setup_timeout_seconds": 5}})
    b = renv.parse({"env_vars": {"B": "2", "A": "1"}})
    c = renv.parse({"env_vars": {"A": "1", "B": "3"}})
    assert a.env_hash() == b.env_hash() != c.env_hash()
    assert renv.parse(None).is_empty() and renv.parse({"config": {}}).is_empty()


def test_inheritance_merges_env_vars_and_overrides_the_rest():
    parent = renv.parse({"env_vars": {"A": "a", "B": "b"}, "py_executable": "python -X dev"})
    child = renv.parse({"env_vars": {"B": "new", "C": "c"}, "py_executable": "python"})
    merged = renv.inherit(parent, child)
    assert merged["env_vars"] == {"A": "a", "B": "new", "C": "c"}
    assert merged["py_executable"] == child["py_executable"]
    assert renv.inherit(parent, renv.parse({})) == parent


def test_job_and_driver_envs_merge_and_conflicts_are_errors(monkeypatch):
    job = renv.parse({"env_vars": {"A": "a"}})
    driver = renv.parse({"env_vars": {"B": "b"}})
    assert renv.merge_job(job, driver)["env_vars"] == {"A": "a", "B": "b"}
    clash = renv.parse({"env_vars": {"A": "other"}})
    with pytest.raises(ValueError, match="conflict.*MINRAY_OVERRIDE_JOB_RUNTIME_ENV"):
        renv.merge_job(job, clash)
    monkeypatch.setenv("RAY_OVERRIDE_JOB_RUNTIME_ENV", "1")
    assert renv.merge_job(job, clash)["env_vars"] == {"A": "other"}


def test_env_var_expansion():
    node = {"HOME": "/home/u", "EMPTY": ""}
    assert expand_or_empty("${HOME}/lib:${MISSING}:$HOME", node) == "/home/u/lib::$HOME"


def test_prepare_expands_against_the_node_environment(monkeypatch):
    monkeypatch.setenv("BASE_PATH", "/opt/base")
    ctx = renv.prepare(renv.parse({"env_vars": {"P": "${BASE_PATH}:/mine", "Q": "${NOPE}"}}))
    assert ctx.env_vars == {"P": "/opt/base:/mine", "Q": ""}


def test_job_env_inheritance_reaches_nested_tasks_and_actors(monkeypatch):
    import minray as ray

    monkeypatch.setenv("NODE_VAR", "node")
    ray.init(num_cpus=2, runtime_env={"env_vars": {"JOB": "job", "X": "${NODE_VAR}-x"}})

    @ray.remote
    def read():
        return {k: os.environ.get(k) for k in ("JOB", "X", "TASK", "CHILD")}

    @ray.remote(runtime_env={"env_vars": {"TASK": "task"}})
    def parent():
        own = read.remote()
        child = read.options(runtime_env={"env_vars": {"CHILD": "child"}}).remote()
        return ray.get([own, child])

    @ray.remote
    class Holder:
        def read(self):
            return ray.get(read.remote())

    own, child = ray.get(parent.remote())
    assert own == {"JOB": "job", "X": "node-x", "TASK": "task", "CHILD": None}
    assert child == {"JOB": "job", "X": "node-x", "TASK": "task", "CHILD": "child"}
    assert ray.get(read.remote())["TASK"] is None
    assert ray.get(Holder.remote().read.remote())["JOB"] == "job"
    ray.shutdown()


def test_eager_install_false_prepares_nothing_until_first_use(tmp_path):
    import minray as ray

    log_marker = {"env_vars": {"M": "1"}, "config": {"eager_install": False}}
    ray.init(num_cpus=1, runtime_env=log_marker)
    from minray import core

    node = core.current()
    assert node.job_env.launch is None and not node.job_env.preparing
    assert ray.get(ray.remote(lambda: os.environ["M"]).remote()) == "1"
    assert node.job_env.launch is not None
    ray.shutdown()
