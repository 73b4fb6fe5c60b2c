"""The pytest plugin (minray/pytest_plugin.py), run the way users run it: pytest sessions of
their own (pytester), in a subprocess each, with and without pytest-xdist."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

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


def _build_logs(sessions: Path, what: str) -> list[Path]:
    """The setup logs, of every node started, that record building an env for `what`."""
    return [log for log in sessions.glob("minray-*/session_*/logs/runtime_env_setup-*.log")
            if any("building new environment" in line and what in line
                   for line in log.read_text().splitlines())]


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
    result.stdout.fnmatch_lines(["*a minray node is already running in this process*"])


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


def test_under_xdist_workers_share_the_cache_and_build_each_env_once(pytester, sessions,
                                                                      tmp_path):
    wheel = demo_wheel(tmp_path / "wheels", "1.0", "one")
    env = {"pip": [str(wheel)]}
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        @pytest.mark.runtime_env({env!r})
        def test_uses_the_package(minray_node, n):
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
    logs = list(sessions.glob("minray-*/session_*/logs/runtime_env_setup-*.log"))
    assert len({log.parent.parent for log in logs}) >= 2, "each test ran a node of its own"
    assert len(_build_logs(sessions, wheel.name)) == 1, "one node built the env, others used it"
