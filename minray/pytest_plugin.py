"""pytest fixtures for integration tests of code that uses minray (and later Ray): a running
local node, with a runtime env from a marker or a parameter. Installing minray installs the
plugin (entry point `pytest11`); `-p no:minray` turns it off.

    @pytest.mark.runtime_env({"pip": ["emoji"]})
    def test_emoji(minray_node):
        ...

A node's env is prepared before the test starts, so an env that cannot be set up fails the
tests that need it at setup, with the setup log in the report. Under pytest-xdist each worker
runs its own node (its own session folder and socket) while all of them share the env cache
(MINRAY_CACHE_DIR), whose per-entry locks build each env once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

MARKER = "runtime_env"
_LOG_LINES = 200  # of the setup log, in the report of a failed setup


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("minray", "minray: local nodes for tests")
    group.addoption("--minray-runtime-env", metavar="JSON",
                    help="the runtime env of minray_session_node (default: none)")
    group.addoption("--minray-num-cpus", type=int, metavar="N",
                    help="CPUs of each node the fixtures start (default: the machine's)")
    group.addoption("--minray-strict", action="store_true",
                    help="strict mode (MINRAY_STRICT=1): refuse what Ray would refuse, so the "
                         "code under test also runs on a cluster")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("minray_strict", False):
        import os

        os.environ["MINRAY_STRICT"] = "1"  # workers and pytest-xdist's workers inherit it
    config.addinivalue_line("markers", f"{MARKER}(env): the runtime env (a dict) of the node "
                                       "that the minray_node fixture starts for this test")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A runtime_env marker on a test that starts no node of its own would be silently ignored
    (minray_session_node's env is the session's): say so instead."""
    if item.get_closest_marker(MARKER) is not None and \
            "minray_node" not in getattr(item, "fixturenames", ()):
        pytest.fail(f"{item.nodeid}: @pytest.mark.{MARKER} sets the env of the minray_node "
                    f"fixture, which this test does not use (minray_session_node takes its env "
                    f"from minray_session_runtime_env or --minray-runtime-env)", pytrace=False)


@pytest.fixture
def minray_node(request: pytest.FixtureRequest):
    """A running local node for one test, shut down after it. Its runtime env comes from the
    test's `@pytest.mark.runtime_env({...})`, or from an indirect parameter
    (`@pytest.mark.parametrize("minray_node", [{...}], indirect=True)`). Yields the minray
    module."""
    yield from _node(request, _requested_env(request), "minray_node")


@pytest.fixture(scope="session")
def minray_session_runtime_env(request: pytest.FixtureRequest) -> dict | None:
    """The runtime env of minray_session_node: `--minray-runtime-env JSON`, or override this
    fixture in your conftest.py."""
    text = request.config.getoption("minray_runtime_env")
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise pytest.UsageError(f"--minray-runtime-env is not JSON: {e}") from None


@pytest.fixture(scope="session")
def minray_session_node(request: pytest.FixtureRequest, minray_session_runtime_env):
    """One node shared by every test of the session (of each xdist worker), shut down at the
    end. Yields the minray module."""
    yield from _node(request, minray_session_runtime_env, "minray_session_node")


def _requested_env(request: pytest.FixtureRequest) -> dict | None:
    marker = request.node.get_closest_marker(MARKER)
    param = getattr(request, "param", None)
    if marker is not None and param is not None:
        pytest.fail(f"{request.node.nodeid}: give minray_node's runtime env either as a "
                    f"@pytest.mark.{MARKER} marker or as a parameter, not both", pytrace=False)
    if marker is None:
        return param
    if len(marker.args) != 1 or marker.kwargs:
        pytest.fail(f"{request.node.nodeid}: @pytest.mark.{MARKER} takes one runtime env "
                    f"dict, e.g. @pytest.mark.{MARKER}({{'pip': ['emoji']}})", pytrace=False)
    return marker.args[0]


_running_fixture: str | None = None  # the fixture whose node runs in this process, if any


def _node(request: pytest.FixtureRequest, env: dict | None, fixture: str):
    import minray

    if minray.is_initialized():
        pytest.fail(f"a minray node is already running in this process: {_why_busy(fixture)}",
                    pytrace=False)
    global _running_fixture
    info = minray.init(num_cpus=request.config.getoption("minray_num_cpus"), runtime_env=env)
    _running_fixture = fixture
    try:
        if env:
            _prepare_now(minray, info)
        yield minray
    finally:
        _running_fixture = None
        minray.shutdown()


def _why_busy(wanted: str) -> str:
    """What to do when `wanted` finds the process's only node taken."""
    if _running_fixture == "minray_session_node":
        return (f"minray_session_node's, which runs until the session ends, so {wanted} "
                f"cannot start one; run the tests that use minray_node in a pytest run of "
                f"their own (select them with -k or -m), or let them use minray_session_node")
    if _running_fixture:
        return (f"{_running_fixture}'s; a test can use minray_node or minray_session_node, "
                f"not both")
    return (f"one the code under test started and did not shut down; {wanted} needs the "
            f"process's only node")


def _prepare_now(minray, info: dict) -> None:
    """Run a no-op task in the job's env, so that setup fails here, naming its log."""

    def noop():
        return None

    try:
        minray.get(minray.remote(noop).remote())
    except minray.exceptions.RuntimeEnvSetupError as e:
        log = Path(info["session_dir"]) / "logs" / f"runtime_env_setup-{info['job_id']}.log"
        pytest.fail(f"the runtime env could not be set up:\n{e}\n\n"
                    f"--- the last {_LOG_LINES} lines of {log} ---\n{_tail(log)}",
                    pytrace=False)


def _tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-_LOG_LINES:])
    except OSError as e:
        return f"(the log cannot be read: {e})"
