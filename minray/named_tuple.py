"""`Record`: a named tuple, declared as `typing.NamedTuple` is (annotated fields, defaults),
which minray uses for its messages and records (runtime_env, which imports nothing of minray,
keeps typing's).

typing.NamedTuple compiles a constructor for each class and builds it twice, ~0.1 ms a class:
the ~30 a worker defines cost ~3.5 ms of every worker's start, and the driver's `init` defines
~20 more. A Record class costs ~15 µs: one shared constructor, and a property per field.
Instances behave as named tuples do: fields by name and position, `match` patterns, pickling,
`_replace`, `_asdict`.
"""

from __future__ import annotations

from operator import itemgetter


class _RecordType(type):
    def __new__(mcls, name: str, bases: tuple, namespace: dict):
        namespace.setdefault("__slots__", ())  # no per-instance dict, as a named tuple
        cls = super().__new__(mcls, name, bases, namespace)
        if bases == (tuple,):  # Record itself
            return cls
        fields = tuple(cls.__annotations__)
        cls._fields = cls.__match_args__ = fields
        cls._defaults = tuple(namespace[f] for f in fields if f in namespace)
        for index, field in enumerate(fields):  # replaces the defaults' class attributes
            setattr(cls, field, property(itemgetter(index), doc=f"field {index}"))
        return cls


class Record(tuple, metaclass=_RecordType):
    _fields: tuple[str, ...]
    _defaults: tuple

    def __new__(cls, *args, **kwargs):
        if kwargs or len(args) != len(cls._fields):
            args = cls._completed(args, kwargs)
        return tuple.__new__(cls, args)

    @classmethod
    def _completed(cls, args: tuple, kwargs: dict) -> list:
        """All fields' values, from positions, names and defaults; a TypeError as a function
        call would raise."""
        fields = cls._fields
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments but "
                            f"{len(args)} were given")
        first_default = len(fields) - len(cls._defaults)
        values = list(args)
        for index in range(len(args), len(fields)):
            field = fields[index]
            if field in kwargs:
                values.append(kwargs.pop(field))
            elif index >= first_default:
                values.append(cls._defaults[index - first_default])
            else:
                raise TypeError(f"{cls.__name__}() missing argument {field!r}")
        if kwargs:
            raise TypeError(f"{cls.__name__}() got unexpected or repeated arguments "
                            f"{sorted(kwargs)}")
        return values

    def __getnewargs__(self) -> tuple:
        return tuple(self)

    def __repr__(self) -> str:
        pairs = ", ".join(f"{f}={v!r}" for f, v in zip(self._fields, self, strict=True))
        return f"{type(self).__name__}({pairs})"

    def _replace(self, **changes):
        values = [changes.pop(f, v) for f, v in zip(self._fields, self, strict=True)]
        return type(self)(*values, **changes)

    def _asdict(self) -> dict:
        return dict(zip(self._fields, self, strict=True))
