"""`breakpoint()` in a task, through a pseudo-terminal: the driver's terminal gets the task's
pdb while other tasks go on; a driver without a terminal says to run `minray debug`, which
attaches; PYTHONBREAKPOINT=0 turns it off."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pexpect
import pexpect.popen_spawn
import pytest

PROMPT = r"\(Pdb\) "
TIMEOUT = 60  # seconds any one wait may take on a loaded machine; nothing here sleeps

DRIVER = textwrap.dedent("""\
    import minray

    minray.init(num_cpus=2)

    @minray.remote
    def stopper(x):
        y = x + 1
        breakpoint()
        return y * 2

    @minray.remote
    def other():
        return "finished"

    stopped = stopper.remote(20)
    print("other task:", minray.get(other.remote()), flush=True)
    print("result:", minray.get(stopped), flush=True)
""")

ACTOR_DRIVER = textwrap.dedent("""\
    import minray

    @minray.remote
    class Account:
        def __init__(self):
            self.balance = 100

        def withdraw(self, amount):
            import pdb
            pdb.set_trace()
            self.balance -= amount
            return self.balance

    account = Account.remote()
    print("balance:", minray.get(account.withdraw.remote(30)), flush=True)
""")


@pytest.fixture
def env(tmp_path):
    """The drivers' environment: sessions of their own, so `minray debug` finds theirs."""
    return {**os.environ, "MINRAY_TMPDIR": str(tmp_path / "sessions")}


def _script(tmp_path, text: str) -> str:
    path = tmp_path / "driver.py"
    path.write_text(text)
    return str(path)


def test_breakpoint_gives_the_drivers_terminal_a_pdb_while_other_tasks_run(tmp_path, env):
    child = pexpect.spawn(sys.executable, [_script(tmp_path, DRIVER)], env=env,
                          timeout=TIMEOUT, encoding="utf-8")
    try:
        # The other task finishes while the first one is stopped: its line appears before
        # anyone types anything, in any order with the debugger's.
        seen = set()
        while len(seen) < 3:
            seen.add(child.expect([r"minray: stopper \(pid \d+\) stopped in breakpoint\(\) "
                                   r"at .*driver.py:8 in stopper\(\)", PROMPT,
                                   "other task: finished"]))
        child.sendline("p x, y")
        child.expect(r"\(20, 21\)")
        child.expect(PROMPT)
        child.sendline("c")
        child.expect("result: 42")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_pdb_set_trace_in_an_actor_method_and_q_lets_it_go_on(tmp_path, env):
    child = pexpect.spawn(sys.executable, [_script(tmp_path, ACTOR_DRIVER)], env=env,
                          timeout=TIMEOUT, encoding="utf-8")
    try:
        child.expect(r"actor Account \(pid \d+\) stopped in breakpoint\(\) at .* in withdraw")
        child.expect(PROMPT)
        child.sendline("p self.balance, amount")
        child.expect(r"\(100, 30\)")
        child.expect(PROMPT)
        child.sendline("q")  # as in Ray: quitting lets the call go on
        child.expect("balance: 70")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_a_driver_without_a_terminal_says_how_and_minray_debug_attaches(tmp_path, env):
    driver = pexpect.popen_spawn.PopenSpawn([sys.executable, _script(tmp_path, DRIVER)],
                                            env=env, timeout=TIMEOUT, encoding="utf-8")
    try:
        driver.expect(r"stopper \(pid \d+\) stopped in breakpoint\(\).*run `minray debug`")
        debug = pexpect.spawn(sys.executable, ["-m", "minray.cli", "debug"], env=env,
                              timeout=TIMEOUT, encoding="utf-8")
        try:
            debug.expect(r"attached to stopper \(pid \d+\)")
            debug.expect(PROMPT)
            debug.sendline("p y")
            debug.expect("21")
            debug.expect(PROMPT)
            debug.sendline("c")
            debug.expect(pexpect.EOF)
        finally:
            debug.close(force=True)
        assert debug.exitstatus == 0
        driver.expect("result: 42")
        driver.expect(pexpect.EOF)
    finally:
        if driver.proc.poll() is None:
            driver.kill(9)
    assert driver.proc.wait(TIMEOUT) == 0


def test_minray_debug_with_nothing_waiting_says_so(env):
    out = subprocess.run([sys.executable, "-m", "minray.cli", "debug"], env=env,
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 1
    assert "no task is waiting in a breakpoint" in out.stderr


def test_pythonbreakpoint_0_skips_breakpoints_in_tasks(tmp_path, env):
    out = subprocess.run([sys.executable, _script(tmp_path, DRIVER)],
                         env={**env, "PYTHONBREAKPOINT": "0"}, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    assert "result: 42" in out.stdout
    assert "breakpoint" not in out.stderr
