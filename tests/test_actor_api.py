"""What an actor class and a remote function look like from Python, as in Ray: @method,
class attributes, inheritance, dir(), and arguments checked where `.remote()` is called."""

from __future__ import annotations

import pytest

import minray
from minray.exceptions import ActorClassInheritanceException


@minray.remote
class Shapes:
    SIDES = {"triangle": 3, "square": 4}

    @minray.method(num_returns=2)
    def split(self, text):
        head, _, tail = text.partition(" ")
        return head, tail

    def sides(self, shape):
        return Shapes.SIDES[shape]  # the class attribute, through the decorated class

    @staticmethod
    def double(x):
        return 2 * x

    def twice(self, x):
        return Shapes.double(x)

    def keywords(self, a, *, scale=1):
        return a * scale


def test_method_num_returns_gives_one_ref_per_value(ray):
    shapes = Shapes.remote()
    head, tail = shapes.split.remote("hello big world")
    assert ray.get([head, tail], timeout=60) == ["hello", "big world"]
    one, two, three = shapes.keywords.options(num_returns=3).remote((1, 2, 3))
    assert ray.get([one, two, three], timeout=60) == [1, 2, 3]


def test_method_refuses_unknown_options():
    with pytest.raises(ValueError, match="unknown method option"):
        minray.method(num_retrns=2)
    with pytest.raises(ValueError, match="num_returns must be an int >= 1"):
        minray.method(num_returns=0)


def test_class_and_static_attributes_reach_through_the_actor_class(ray):
    assert Shapes.SIDES["square"] == 4 and Shapes.double(4) == 8  # in the driver
    shapes = Shapes.remote()
    assert ray.get(shapes.sides.remote("triangle"), timeout=60) == 3
    assert ray.get(shapes.twice.remote(21), timeout=60) == 42


def test_inheriting_from_an_actor_class_is_a_clear_error():
    with pytest.raises(ActorClassInheritanceException, match="cannot inherit from actor class"):
        class Squares(Shapes):  # noqa: F841 - the class statement is what fails
            pass
    assert issubclass(ActorClassInheritanceException, TypeError)


def test_dir_of_an_actor_class_shows_its_methods_and_attributes():
    names = dir(Shapes)
    assert {"split", "sides", "double", "SIDES", "remote", "options"} <= set(names)


@minray.remote
def area(width, height, *, unit="m"):
    return f"{width * height} {unit}2"


@pytest.mark.parametrize("args, kwargs, message", [
    ((), {}, "missing a required argument: 'width'"),
    ((1, 2, 3), {}, "too many positional arguments"),
    ((1, 2), {"depth": 2}, "unexpected keyword argument 'depth'"),
    ((1, 2), {"unit": "m", "width": 3}, "multiple values for argument 'width'"),
])
def test_a_task_called_wrongly_fails_at_remote(ray, args, kwargs, message):
    with pytest.raises(TypeError, match=message) as info:
        area.remote(*args, **kwargs)
    assert "area.remote()" in str(info.value)


def test_a_task_called_rightly_runs(ray):
    assert ray.get(area.remote(2, 3), timeout=60) == "6 m2"
    assert ray.get(area.remote(height=2, width=3, unit="cm"), timeout=60) == "6 cm2"


def test_constructor_and_method_arguments_are_checked_at_remote(ray):
    @ray.remote
    class Box:
        def __init__(self, size):
            self.size = size

        def grow(self, by, *rest):
            return self.size + by + sum(rest)

    with pytest.raises(TypeError, match=r"Box.remote\(\): missing a required argument: 'size'"):
        Box.remote()
    box = Box.remote(1)
    with pytest.raises(TypeError, match=r"Box.grow.remote\(\): missing a required argument"):
        box.grow.remote()
    assert ray.get(box.grow.remote(1, 2, 3), timeout=60) == 7  # *rest takes any number
    shapes = Shapes.remote()
    with pytest.raises(TypeError, match="too many positional arguments"):
        shapes.keywords.remote(1, 2)  # scale is keyword-only
    assert ray.get(shapes.keywords.remote(2, scale=3), timeout=60) == 6
