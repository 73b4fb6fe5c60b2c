"""Functions defined in a script, pickled so that a worker rebuilds them with the standard
library alone.

cloudpickle pickles such a function (one defined in `__main__`, inside another function, or
in a module registered to travel by value) by value, and its pickle names cloudpickle's own
rebuilders: loading one imports cloudpickle, which costs a new worker about half a Python
start (dataclasses, inspect, logging, platform). minray's exporter (remote_function.py) keeps
cloudpickle's decisions - which functions travel by value, which globals, submodules and
closure go with them, which functions share globals - and swaps only the rebuilders for the
two below, with the code as `marshal` writes it. Whatever else the pickle holds (a class
defined in the script, say) stays cloudpickle's, and the worker imports cloudpickle then.
"""

from __future__ import annotations

import marshal
import sys
import types

_PYTHON = sys.implementation.cache_tag  # marshalled code loads only in the same Python


def plain(reduced: tuple, make_function, function_setstate) -> tuple | None:
    """cloudpickle's reduction of a function (`make_function` and `function_setstate` are its
    rebuilders), as one that `make` and `fill` rebuild; None when it is not of that shape."""
    if len(reduced) != 6 or reduced[0] is not make_function or reduced[5] is not \
            function_setstate:
        return None
    _, (code, base_globals, _name, _defaults, closure), (attrs, slots), *_ = reduced
    try:
        code_bytes = marshal.dumps(code)
    except ValueError:  # a code object built by hand with constants marshal cannot write
        return None
    cells = slots.get("__closure__") or ()
    values, empty = [], []
    for i, cell in enumerate(cells):
        try:
            values.append(cell.cell_contents)
        except ValueError:  # a free variable not yet bound when the function was pickled
            values.append(None)
            empty.append(i)
    slots = {**slots, "__closure__": (tuple(values), tuple(empty))}
    return (make, (_PYTHON, code_bytes, base_globals, None if closure is None else len(closure)),
            (attrs, slots), None, None, fill)


def make(python: str, code: bytes, base_globals: dict, cells: int | None) -> types.FunctionType:
    """The function's skeleton: its code, its module's shared globals and empty cells."""
    if python != _PYTHON:
        raise RuntimeError(f"a function defined in a {python} driver cannot run in this "
                           f"{_PYTHON} worker: driver and workers must run the same Python "
                           f"version, as in Ray")
    closure = None if cells is None else tuple(types.CellType() for _ in range(cells))
    return types.FunctionType(marshal.loads(code), base_globals, None, None, closure)


def fill(fn: types.FunctionType, state: tuple[dict, dict]) -> None:
    """The rest, once everything it refers to (itself included) exists: its globals, closure,
    defaults, names and attributes."""
    attrs, slots = state
    fn.__dict__.update(attrs)
    slots = dict(slots)
    fn.__globals__.update(slots.pop("__globals__"))
    fn.__globals__["__builtins__"] = __builtins__
    values, empty = slots.pop("__closure__")
    for i, (cell, value) in enumerate(zip(fn.__closure__ or (), values, strict=True)):
        if i not in empty:
            cell.cell_contents = value
    slots.pop("_cloudpickle_submodules", None)  # imported while loading: their job is done
    for name, value in slots.items():
        setattr(fn, name, value)
