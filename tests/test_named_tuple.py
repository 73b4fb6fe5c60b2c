"""minray.named_tuple.Record: what a message or value declared with it does, as a named tuple
would (the worker's protocol rests on it)."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from minray.named_tuple import Record


class Point(Record):
    """A record with a default."""

    x: int
    y: int
    label: str | None = None


class Empty(Record):
    """A record without fields, as a message that says only its kind."""


def test_fields_by_position_name_and_default():
    p = Point(1, y=2)
    assert (p.x, p.y, p.label) == (1, 2, None) == tuple(p)
    assert p == (1, 2, None) and p[1] == 2 and len(p) == 3
    assert Point(1, 2, "a").label == "a"
    assert Point._fields == ("x", "y", "label") and Point.__doc__ == "A record with a default."
    assert Empty() == () and Empty._fields == ()


def test_wrong_calls_fail_as_a_function_call_would():
    with pytest.raises(TypeError, match=r"missing argument 'y'"):
        Point(1)
    with pytest.raises(TypeError, match=r"takes 3 arguments but 4 were given"):
        Point(1, 2, "a", "b")
    with pytest.raises(TypeError, match=r"unexpected or repeated arguments \['z'\]"):
        Point(1, 2, z=3)
    with pytest.raises(TypeError, match=r"unexpected or repeated arguments \['x'\]"):
        Point(1, 2, x=3)


def test_records_are_immutable_and_carry_no_dict():
    p = Point(1, 2)
    with pytest.raises(AttributeError):
        p.x = 5
    with pytest.raises(AttributeError):
        p.other = 5
    assert not hasattr(p, "__dict__")


def test_pickling_matching_replacing_and_repr():
    p = Point(1, 2, "a")
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(p, protocol=protocol))
        assert type(back) is Point and back == p
    match p:
        case Point(1, y, label=label):
            assert (y, label) == (2, "a")
        case _:
            pytest.fail("a positional and keyword class pattern did not match")
    assert p._replace(y=5) == Point(1, 5, "a") and p == Point(1, 2, "a")
    with pytest.raises(TypeError):
        p._replace(z=1)
    assert p._asdict() == {"x": 1, "y": 2, "label": "a"}
    assert repr(p) == "Point(x=1, y=2, label='a')"
    assert type(copy.copy(p)) is Point and copy.deepcopy(p) == p
    assert json.loads(json.dumps(p)) == [1, 2, "a"]  # as a named tuple: a JSON array
