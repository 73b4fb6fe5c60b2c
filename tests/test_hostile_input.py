"""Hostile runtime_envs are refused where they are typed: `init`, `@remote`, `.options` each
raise a ValueError/TypeError naming the field within seconds, and the session goes on."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import pytest


class Raises:
    """A value whose every description raises, as a broken user object might."""

    def __str__(self):
        raise RuntimeError("no str")

    def __repr__(self):
        raise RuntimeError("no repr")

    def __fspath__(self):
        raise RuntimeError("no path")


class UnreadableMapping(Mapping):
    def __getitem__(self, key):
        raise RuntimeError("no items")

    def __iter__(self):
        raise RuntimeError("no keys")

    def __len__(self):
        return 1


def itself(kind):
    value = kind()
    if kind is list:
        value.append(value)
    else:
        value["self"] = value
    return value


def nested(depth: int) -> list:
    outer = inner = []
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


# (what is wrong, the runtime_env (made in tmp_path), the error, the field its message names)
CASES = [
    ("env_vars value with a NUL", lambda tmp: {"env_vars": {"A": "x\0y"}}, ValueError,
     "env_vars"),
    ("env_vars name with a NUL", lambda tmp: {"env_vars": {"A\0": "x"}}, ValueError,
     "env_vars"),
    ("env_vars name empty", lambda tmp: {"env_vars": {"": "x"}}, ValueError, "env_vars"),
    ("env_vars name with =", lambda tmp: {"env_vars": {"A=B": "x"}}, ValueError, "env_vars"),
    ("env_vars name an int", lambda tmp: {"env_vars": {1: "x"}}, TypeError, "env_vars"),
    ("env_vars value an int", lambda tmp: {"env_vars": {"A": 1}}, TypeError, "env_vars"),
    ("env_vars a list", lambda tmp: {"env_vars": ["A=1"]}, TypeError, "env_vars"),
    ("env_vars value of 200 KiB", lambda tmp: {"env_vars": {"A": "x" * 200_000}}, ValueError,
     "env_vars"),
    ("env_vars value that cannot be printed", lambda tmp: {"env_vars": {"A": Raises()}},
     TypeError, "env_vars"),
    ("env_vars that cannot be read", lambda tmp: {"env_vars": UnreadableMapping()}, TypeError,
     "env_vars"),
    ("env_vars holding itself", lambda tmp: {"env_vars": itself(dict)}, TypeError, "env_vars"),
    ("pip entry with a line break", lambda tmp: {"pip": ["requests\nevil-package"]},
     ValueError, "pip"),
    ("uv option with a line break", lambda tmp: {"uv": {"packages": ["x"],
                                                       "uv_pip_install_options": ["-i\nx"]}},
     ValueError, "uv"),
    ("working_dir with a NUL", lambda tmp: {"working_dir": f"{tmp}\0x"}, ValueError,
     "working_dir"),
    ("working_dir an int", lambda tmp: {"working_dir": 5}, TypeError, "working_dir"),
    ("working_dir a list", lambda tmp: {"working_dir": [str(tmp)]}, TypeError, "working_dir"),
    ("working_dir empty", lambda tmp: {"working_dir": ""}, ValueError, "working_dir"),
    ("working_dir a path that raises", lambda tmp: {"working_dir": Raises()}, TypeError,
     "working_dir"),
    ("py_modules entry with a NUL", lambda tmp: {"py_modules": [f"{tmp}\0x"]}, ValueError,
     "py_modules"),
    ("py_modules a dict", lambda tmp: {"py_modules": {"a": 1}}, TypeError, "py_modules"),
    ("py_modules a str", lambda tmp: {"py_modules": str(tmp)}, TypeError, "py_modules"),
    ("py_modules entry None", lambda tmp: {"py_modules": [None]}, TypeError, "py_modules"),
    ("py_modules holding itself", lambda tmp: {"py_modules": itself(list)}, TypeError,
     "py_modules"),
    ("pip package with a NUL", lambda tmp: {"pip": ["emoji\0"]}, ValueError, "pip"),
    ("pip option with a NUL",
     lambda tmp: {"pip": {"packages": ["a"], "pip_install_options": ["--pre\0"]}},
     ValueError, "pip"),
    ("pip options a str",
     lambda tmp: {"pip": {"packages": ["a"], "pip_install_options": "--pre"}},
     TypeError, "pip"),
    ("pip packages a dict", lambda tmp: {"pip": {"packages": {"a": 1}}}, TypeError, "pip"),
    ("pip_check an int", lambda tmp: {"pip": {"packages": [], "pip_check": 1}}, TypeError,
     "pip"),
    ("pip requirements file with a NUL", lambda tmp: {"pip": f"{tmp}/req\0.txt"}, ValueError,
     "pip"),
    ("pip holding itself", lambda tmp: {"pip": itself(list)}, TypeError, "pip"),
    ("pip nested 10000 deep", lambda tmp: {"pip": nested(10_000)}, ValueError, "pip"),
    ("pip package that cannot be printed", lambda tmp: {"pip": [Raises()]}, TypeError, "pip"),
    ("pip package of 1 MiB", lambda tmp: {"pip": ["a" * (1 << 20)]}, ValueError, "pip"),
    ("uv package with a NUL", lambda tmp: {"uv": ["a\0"]}, ValueError, "uv"),
    ("uv options a str",
     lambda tmp: {"uv": {"packages": ["a"], "uv_pip_install_options": "--pre"}},
     TypeError, "uv"),
    ("uv with pip", lambda tmp: {"uv": ["a"], "pip": ["b"]}, ValueError, "uv"),
    ("conda name with a NUL", lambda tmp: {"conda": "env\0"}, ValueError, "conda"),
    ("conda dependency with a NUL", lambda tmp: {"conda": {"dependencies": ["numpy\0"]}},
     ValueError, "conda"),
    ("conda dependency an object", lambda tmp: {"conda": {"dependencies": [object()]}},
     TypeError, "conda"),
    ("conda holding itself", lambda tmp: {"conda": itself(dict)}, TypeError, "conda"),
    ("conda a list", lambda tmp: {"conda": ["numpy"]}, TypeError, "conda"),
    ("py_executable with a NUL", lambda tmp: {"py_executable": "python\0"}, ValueError,
     "py_executable"),
    ("py_executable empty", lambda tmp: {"py_executable": " "}, ValueError, "py_executable"),
    ("py_executable a list of ints", lambda tmp: {"py_executable": [1]}, TypeError,
     "py_executable"),
    ("py_executable a dict", lambda tmp: {"py_executable": {"a": 1}}, TypeError,
     "py_executable"),
    ("excludes pattern with a NUL", lambda tmp: {"working_dir": str(tmp), "excludes": ["a\0"]},
     ValueError, "excludes"),
    ("excludes a str", lambda tmp: {"working_dir": str(tmp), "excludes": "*.pyc"}, TypeError,
     "excludes"),
    *[(f"setup_timeout_seconds {v!r}", lambda tmp, v=v: {"config": {"setup_timeout_seconds": v}},
       ValueError, "setup_timeout_seconds")
      for v in (-5, 0, 10**400)],
    *[(f"setup_timeout_seconds {v!r}", lambda tmp, v=v: {"config": {"setup_timeout_seconds": v}},
       TypeError, "must be an int")  # as Ray: a float, even a whole one, is refused
      for v in (float("nan"), float("inf"), 1e300, 2.0)],
    ("setup_timeout_seconds a bool", lambda tmp: {"config": {"setup_timeout_seconds": True}},
     TypeError, "setup_timeout_seconds"),
    ("setup_timeout_seconds a str", lambda tmp: {"config": {"setup_timeout_seconds": "10"}},
     TypeError, "setup_timeout_seconds"),
    ("eager_install an int", lambda tmp: {"config": {"eager_install": 1}}, TypeError,
     "eager_install"),
    ("config a str", lambda tmp: {"config": "fast"}, TypeError, "config"),
    ("config option unknown", lambda tmp: {"config": {"retries": 1}}, ValueError, "config"),
    ("config option name an int", lambda tmp: {"config": {1: 2}}, TypeError, "config"),
    ("field name an int", lambda tmp: {1: 2}, TypeError, "runtime_env"),
    ("field unknown", lambda tmp: {"pipp": []}, ValueError, "pipp"),
    ("a list of pairs", lambda tmp: [("pip", [])], TypeError, "runtime_env"),
    ("a str", lambda tmp: "pip", TypeError, "runtime_env"),
    ("an empty str", lambda tmp: "", TypeError, "runtime_env"),
    ("zero", lambda tmp: 0, TypeError, "runtime_env"),
    ("a mapping that cannot be read", lambda tmp: UnreadableMapping(), TypeError,
     "runtime_env"),
]


def outcome_of(call) -> BaseException | None:
    """Run `call` on a thread; fail unless it returns within 5 s; what it raised, or None."""
    outcome: list = []

    def run():
        try:
            call()
        except BaseException as e:  # noqa: BLE001 - the test looks at whatever it was
            outcome.append(e)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(5)
    assert outcome, "the call did not return within 5 s"
    return outcome[0]


def assert_refused(call, error: type, field: str) -> None:
    raised = outcome_of(call)
    assert type(raised) is error, f"expected {error.__name__}, got {raised!r}"
    assert field in str(raised)


@pytest.mark.parametrize("make, error, field",
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_a_hostile_runtime_env_is_refused_at_once_naming_the_field_and_the_session_goes_on(
        make, error, field, tmp_path, monkeypatch):
    import minray

    monkeypatch.setenv("MINRAY_TMPDIR", str(tmp_path))  # its sessions prune no one else's
    env = make(tmp_path)
    assert_refused(lambda: minray.init(num_cpus=1, runtime_env=env), error, field)
    assert not minray.is_initialized()

    minray.init(num_cpus=1)

    def plain():
        return "still works"

    assert_refused(lambda: minray.remote(runtime_env=env)(plain), error, field)
    task = minray.remote(plain)
    assert_refused(lambda: task.options(runtime_env=env), error, field)
    assert minray.get(task.remote(), timeout=60) == "still works"
