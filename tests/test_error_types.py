"""A task's exception reaches the driver with its meaning: its own type when the driver can
rebuild it, and otherwise a RayTaskError that names it, with its message and traceback."""

from __future__ import annotations

import builtins
import os

import pytest

import minray
from minray.exceptions import RayError, RayTaskError


def _builtin_errors() -> list[type]:
    """Built-in exception types a task can raise with one message argument."""
    out = []
    for value in vars(builtins).values():
        if isinstance(value, type) and issubclass(value, Exception):
            try:
                value("message")
            except TypeError:  # UnicodeDecodeError and friends want five arguments
                continue
            out.append(value)
    return out


def test_every_builtin_exception_is_caught_by_its_own_type(ray):
    @ray.remote(max_retries=0)
    def fail(name):
        raise getattr(__import__("builtins"), name)("message")

    errors = _builtin_errors()
    assert MemoryError in errors and OSError in errors
    refs = [fail.remote(cls.__name__) for cls in errors]
    for cls, ref in zip(errors, refs, strict=True):
        with pytest.raises(cls) as info:
            ray.get(ref, timeout=60)
        assert isinstance(info.value, RayTaskError), cls
        assert "message" in str(info.value)


def test_generator_exit_in_a_task_is_an_error_not_a_dead_worker(ray):
    @ray.remote(max_retries=0)
    def fail():
        raise GeneratorExit("closing")

    with pytest.raises(GeneratorExit):
        ray.get(fail.remote(), timeout=60)


def test_an_exception_that_cannot_be_rebuilt_arrives_as_a_ray_error_naming_it(ray):
    class NeedsTwo(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a} and {b}")

    @ray.remote
    def fail():
        raise NeedsTwo("left", "right")

    with pytest.raises(RayError) as info:
        ray.get(fail.remote(), timeout=60)
    err = info.value
    assert isinstance(err, RayTaskError) and not isinstance(err, TypeError)
    assert err.cause_type == "NeedsTwo"
    assert err.cause_message == "left and right"
    assert "NeedsTwo: left and right" in str(err)


def test_an_exception_class_only_the_task_can_import(ray, tmp_path):
    (tmp_path / "only_here.py").write_text(
        "class OnlyHereError(Exception):\n    pass\n\n"
        "def fail():\n    raise OnlyHereError('from the working_dir')\n")

    @ray.remote(runtime_env={"working_dir": str(tmp_path)})
    def fail():
        import only_here

        only_here.fail()

    with pytest.raises(RayTaskError) as info:
        ray.get(fail.remote(), timeout=60)
    assert info.value.cause is None  # the driver cannot import only_here
    assert info.value.cause_type == "OnlyHereError"
    assert info.value.cause_message == "from the working_dir"
    assert "OnlyHereError: from the working_dir" in str(info.value)


@pytest.mark.parametrize("actor", [False, True])
def test_the_traceback_shows_the_users_frames_not_minrays(ray, actor):
    def inner():
        raise ValueError("deep")

    def outer():
        inner()

    if actor:
        @ray.remote
        class Failing:
            def run(self):
                outer()

        ref = Failing.remote().run.remote()
    else:
        ref = ray.remote(max_retries=0)(lambda: outer()).remote()
    with pytest.raises(ValueError) as info:
        ray.get(ref, timeout=60)
    text = str(info.value)
    frames = [line.strip() for line in text.splitlines() if line.strip().startswith("File ")]
    assert [f.rsplit(" in ", 1)[1] for f in frames] == (
        ["run", "outer", "inner"] if actor else ["<lambda>", "outer", "inner"]), text
    package = os.path.dirname(minray.__file__)
    assert not any(package in frame for frame in frames), text
