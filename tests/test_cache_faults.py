"""A cache that never lies: damaged entries, gc beside running drivers, lock files, odd roots."""

from __future__ import annotations

import pytest
from cache_helpers import lock_holder, wait_for, waits_on_a_flock

from runtime_env import locks


def test_a_waiter_on_a_deleted_lock_file_locks_the_file_that_replaces_it(tmp_path):
    lock, holding, release = tmp_path / "e.lock", tmp_path / "holding", tmp_path / "release"
    with locks.locked(lock):
        waiter = lock_holder(lock, holding, release)
        wait_for(lambda: waits_on_a_flock(waiter.pid), 30, "the waiter blocking on the lock")
        lock.unlink()  # as gc does when it removes an entry, while holding its lock
    wait_for(holding.exists, 30, "the waiter taking the lock")
    with pytest.raises(TimeoutError), locks.locked(lock, timeout=0):
        pass  # the waiter holds the file the path names now: nobody else gets in
    release.touch()
    assert waiter.wait(60) == 0
