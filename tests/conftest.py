"""Shared fixtures: an isolated cache per test, a node for the tests that ask for one, and
folders of wheels of the demo package (wheels.DEMO)."""

from __future__ import annotations

import pytest

from runtime_env import Cache
from wheels import demo_wheel


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own MINRAY_CACHE_DIR, so tests never share built environments."""
    root = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("MINRAY_CACHE_DIR", str(root))
    return Cache(root)


@pytest.fixture(scope="session", autouse=True)
def own_session_folders(tmp_path_factory):
    """Nodes keep their session folders under this run's tmp, one root per xdist worker: the
    suite does not prune the user's own sessions in /tmp/minray-<uid>, and two workers' nodes
    do not prune one root at once (minray's pruning stats every session folder and fails if
    another process removes one meanwhile: a known race of concurrent drivers)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINRAY_TMPDIR", str(tmp_path_factory.mktemp("sessions")))
        yield


@pytest.fixture(autouse=True)
def no_node_outlives_its_test():
    """A test that fails half-way must not leave its node to the next test."""
    yield
    import minray

    minray.shutdown()


@pytest.fixture
def ray():
    """A fresh local node with 2 CPUs for one test, shut down after it."""
    import minray

    minray.init(num_cpus=2)
    yield minray
    minray.shutdown()


@pytest.fixture
def wheel_dir(tmp_path):
    """A folder holding one wheel: the demo package 1.0, whose VALUE is 'one'."""
    folder = tmp_path / "wheels"
    demo_wheel(folder, "1.0", "one")
    return folder


@pytest.fixture
def two_versions(tmp_path):
    """Two folders, one wheel each: the demo package 1.0 (VALUE 'one') and 2.0 (VALUE 'two')."""
    one, two = tmp_path / "one", tmp_path / "two"
    demo_wheel(one, "1.0", "one")
    demo_wheel(two, "2.0", "two")
    return one, two
