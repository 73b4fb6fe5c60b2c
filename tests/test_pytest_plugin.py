"""The pytest plugin (minray/pytest_plugin.py), run the way users run it: pytest sessions of
their own (pytester), in a subprocess each, with and without pytest-xdist."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

from cache_helpers import minray_cli
from wheels import DEMO, demo_wheel

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
BROKEN_ENV = {"pip": {"packages": ["no-such-package-anywhere"],
                      "pip_install_options": ["--no-index"]}}


def _plugin_args() -> list[str]:
    """Installed, minray's entry point loads the plugin; from a checkout not installed since
    the plugin was added, load it by name."""
    installed = importlib.metadata.entry_points(group="pytest11")
    if any(ep.value == "minray.pytest_plugin" for ep in installed):
        return []
    return ["-p", "minray.pytest_plugin"]


@pytest.fixture
def sessions(tmp_path, monkeypatch) -> Path:
    """The session folders (and setup logs) of the nodes the inner runs start."""
    folder = tmp_path / "sessions"
    monkeypatch.setenv("MINRAY_TMPDIR", str(folder))
    return folder


def _session_folders(sessions: Path) -> list[Path]:
    """One folder per node started (not the `session_latest` link to the last one)."""
    return [folder for folder in sessions.glob("minray-*/session_*") if not folder.is_symlink()]


def _setup_logs(sessions: Path) -> list[Path]:
    return [log for folder in _session_folders(sessions)
            for log in folder.glob("logs/runtime_env_setup-*.log")]


def _build_logs(sessions: Path, what: str) -> list[Path]:
    """The setup logs, of every node started, that record building an env for `what`."""
    return [log for log in _setup_logs(sessions)
            if any("building new environment" in line and what in line
                   for line in log.read_text().splitlines())]


def _cached_logs(sessions: Path) -> list[Path]:
    """The setup logs of the nodes that found their env in the cache."""
    return [log for log in _setup_logs(sessions) if "using cached environment" in log.read_text()]


def test_the_entry_point_names_the_plugin():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"minray": "minray.pytest_plugin"}


def test_marker_and_parameter_give_the_env_and_each_node_ends_with_its_test(pytester,
                                                                            sessions):
    pytester.makepyfile("""
        import os
        import pytest

        def color_in_a_task(ray):
            @ray.remote
            def color():
                return os.environ.get("COLOR")
            return ray.get(color.remote())

        @pytest.mark.runtime_env({"env_vars": {"COLOR": "blue"}})
        def test_marker(minray_node):
            assert color_in_a_task(minray_node) == "blue"

        def test_no_node_is_left_running():
            import minray
            assert not minray.is_initialized()

        @pytest.mark.parametrize("minray_node, expected",
                                 [({"env_vars": {"COLOR": "red"}}, "red"), (None, None)],
                                 indirect=["minray_node"])
        def test_parameter(minray_node, expected):
            assert color_in_a_task(minray_node) == expected
    """)
    result = pytester.runpytest_subprocess(*_plugin_args())
    result.assert_outcomes(passed=4)


def test_session_node_is_shared_and_cannot_be_mixed_with_a_test_node(pytester, sessions):
    pytester.makeconftest("""
        import pytest

        @pytest.fixture(scope="session")
        def minray_session_runtime_env():
            return {"env_vars": {"SHARED": "yes"}}
    """)
    pytester.makepyfile("""
        import os

        jobs = []

        def shared_in_a_task(ray):
            @ray.remote
            def shared():
                return os.environ.get("SHARED")
            return ray.get(shared.remote())

        def test_first(minray_session_node):
            jobs.append(minray_session_node.get_runtime_context().get_job_id())
            assert shared_in_a_task(minray_session_node) == "yes"

        def test_second_uses_the_same_node(minray_session_node):
            assert [minray_session_node.get_runtime_context().get_job_id()] == jobs
            assert shared_in_a_task(minray_session_node) == "yes"

        def test_a_node_of_its_own_meanwhile(minray_node):
            pass
    """)
    result = pytester.runpytest_subprocess(*_plugin_args())
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([
        "*a minray node is already running in this process: minray_session_node's, which "
        "runs until the session ends, so minray_node cannot start one; run the tests that use "
        "minray_node in a pytest run of their own*"])


def test_session_env_from_the_command_line(pytester, sessions):
    pytester.makepyfile("""
        import os

        def test_env(minray_session_node):
            @minray_session_node.remote
            def mode():
                return os.environ.get("MODE")
            assert minray_session_node.get(mode.remote()) == "ci"
    """)
    result = pytester.runpytest_subprocess(
        *_plugin_args(), "--minray-runtime-env", '{"env_vars": {"MODE": "ci"}}')
    result.assert_outcomes(passed=1)


def test_minray_strict_turns_strict_mode_on(pytester, sessions, tmp_path):
    (tmp_path / "project").mkdir()
    pytester.makepyfile(f"""
        import pytest
        from minray.strict import NotPortableError

        def test_local_working_dir_per_task(minray_node):
            @minray_node.remote
            def f():
                return 1
            with pytest.raises(NotPortableError, match="only for the job"):
                f.options(runtime_env={{"working_dir": {str(tmp_path / "project")!r}}})
    """)
    pytester.runpytest_subprocess(*_plugin_args(), "--minray-strict").assert_outcomes(passed=1)
    pytester.runpytest_subprocess(*_plugin_args()).assert_outcomes(failed=1)


def test_a_failed_setup_fails_its_tests_with_the_setup_log(pytester, sessions):
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.runtime_env({BROKEN_ENV!r})
        def test_needs_the_broken_env(minray_node):
            pass

        def test_other_tests_go_on(minray_node):
            pass
    """)
    result = pytester.runpytest_subprocess(*_plugin_args())
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_needs_the_broken_env*",
        "*the runtime env could not be set up:*",
        "*--- the last 200 lines of *runtime_env_setup-*.log ---*",
        "*[[]pip[]] $ *install*",  # a line of the log itself: the installer's command
    ])
    assert "no-such-package-anywhere" in result.stdout.str()


def test_a_marker_on_a_test_without_minray_node_is_an_error(pytester, sessions):
    """Not silently ignored: the session node's env is the session's, not the marker's."""
    pytester.makepyfile("""
        import pytest

        @pytest.mark.runtime_env({"env_vars": {"A": "1"}})
        def test_marker_but_the_session_node(minray_session_node):
            pass
    """)
    result = pytester.runpytest_subprocess(*_plugin_args())
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.runtime_env sets the env of the minray_node "
                                 "fixture, which this test does not use*"])


def test_a_failed_session_env_fails_each_test_using_it_with_the_log(pytester, sessions):
    """The session node is tried once; every test that needs it reports why it failed."""
    pytester.makepyfile("""
        def test_one(minray_session_node):
            pass

        def test_two(minray_session_node):
            pass

        def test_without_a_node():
            pass
    """)
    result = pytester.runpytest_subprocess(*_plugin_args(), "--minray-runtime-env",
                                           json.dumps(BROKEN_ENV))
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_one*",
                                 "*the runtime env could not be set up:*",
                                 "*--- the last 200 lines of *runtime_env_setup-*.log ---*",
                                 "*ERROR at setup of test_two*",
                                 "*the runtime env could not be set up:*"])
    assert len(_session_folders(sessions)) == 1, "one node, started once"


def _both_workers_start_together(barrier: Path) -> str:
    """An inner conftest: the first test on each xdist worker waits for the other worker's,
    so that two nodes ask for the same env at the same time."""
    return f"""
        import os
        import time
        from pathlib import Path

        import pytest

        ARRIVED = Path({str(barrier)!r})
        waited = []

        @pytest.fixture
        def both_workers_start_together():
            if waited:
                return
            waited.append(True)
            (ARRIVED / os.environ["PYTEST_XDIST_WORKER"]).touch()
            deadline = time.monotonic() + 120
            while len(list(ARRIVED.iterdir())) < 2:
                if time.monotonic() > deadline:
                    pytest.fail("the other xdist worker never started a test")
                time.sleep(0.05)
    """


def test_under_xdist_workers_share_the_cache_and_build_each_env_once(pytester, sessions,
                                                                      tmp_path):
    wheel = demo_wheel(tmp_path / "wheels", "1.0", "one")
    env = {"pip": [str(wheel)]}
    (tmp_path / "barrier").mkdir()
    pytester.makeconftest(_both_workers_start_together(tmp_path / "barrier"))
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        @pytest.mark.runtime_env({env!r})
        def test_uses_the_package(both_workers_start_together, minray_node, n):
            @minray_node.remote
            def value():
                import {DEMO}
                return {DEMO}.VALUE
            assert minray_node.get(value.remote()) == "one"

        @pytest.mark.runtime_env({BROKEN_ENV!r})
        def test_needs_the_broken_env(minray_node):
            pass
    """)
    result = pytester.runpytest_subprocess(*_plugin_args(), "-n", "2")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*the runtime env could not be set up:*",
                                 "*--- the last 200 lines of *runtime_env_setup-*.log ---*"])
    assert sorted(p.name for p in (tmp_path / "barrier").iterdir()) == ["gw0", "gw1"]
    assert len(_session_folders(sessions)) == 5, "each test ran a node of its own"
    assert len(_build_logs(sessions, wheel.name)) == 1, "one node built the env, others used it"
    assert len(_cached_logs(sessions)) == 3


def test_the_readme_ci_recipe_warm_the_cache_then_run_the_tests(pytester, sessions, tmp_path):
    """`minray env build SPEC` before `pytest -n 2`: the tests build nothing, they use the
    cache the warm-up step filled (the README's CI recipe)."""
    wheel = demo_wheel(tmp_path / "wheels", "1.0", "one")
    env = {"pip": [str(wheel)], "env_vars": {"MODE": "ci"}}
    warm = minray_cli("env", "build", json.dumps(env), timeout=300)
    assert warm.returncode == 0 and warm.stdout.startswith("built env "), warm.stderr
    pytester.makepyfile(f"""
        import os
        import pytest

        @pytest.mark.parametrize("n", range(2))
        @pytest.mark.runtime_env({env!r})
        def test_uses_the_package(minray_node, n):
            @minray_node.remote
            def value():
                import {DEMO}
                return {DEMO}.VALUE, os.environ["MODE"]
            assert minray_node.get(value.remote()) == ("one", "ci")
    """)
    result = pytester.runpytest_subprocess(*_plugin_args(), "-n", "2")
    result.assert_outcomes(passed=2)
    assert _build_logs(sessions, wheel.name) == []
    assert len(_cached_logs(sessions)) == 2
