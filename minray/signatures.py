"""Checking a call's arguments where `.remote()` is called, as Ray does, not in the worker.

`inspect.Signature.bind` costs ~5 us; most calls are positional and a count settles them, so
the check binds only when keywords are passed or the count is wrong (to get its message).
"""

from __future__ import annotations

import inspect

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class CallCheck:
    """A signature reduced to what binding needs: names, kinds and whether a default exists
    (annotations and default values are dropped, so it pickles small and always)."""

    __slots__ = ("_signature", "_min", "_max", "_count_settles")

    def __init__(self, signature: inspect.Signature, *, drop_first: bool = False):
        params = list(signature.parameters.values())[1 if drop_first else 0:]
        params = [p.replace(annotation=inspect.Parameter.empty,
                            default=None if p.default is not p.empty else p.empty)
                  for p in params]
        self._signature = inspect.Signature(params)
        positional = [p for p in params if p.kind in _POSITIONAL]
        self._min = sum(p.default is p.empty for p in positional)
        varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
        self._max = float("inf") if varargs else len(positional)
        # with required keyword-only parameters, a positional-only call must fail: bind it
        self._count_settles = not any(p.kind is p.KEYWORD_ONLY and p.default is p.empty
                                      for p in params)

    @classmethod
    def of(cls, target, *, drop_first: bool = False) -> CallCheck | None:
        """The check for a callable, or None when Python cannot tell its signature."""
        try:
            return cls(inspect.signature(target), drop_first=drop_first)
        except (TypeError, ValueError):
            return None

    def __call__(self, owner: str, method: str | None, args: tuple, kwargs: dict) -> None:
        """Raise TypeError naming `owner.method.remote()` (or `owner.remote()`) if the call
        does not fit; the name is only built then, off the hot path."""
        if not kwargs and self._count_settles and self._min <= len(args) <= self._max:
            return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as e:
            what = owner if method is None else f"{owner}.{method}"
            raise TypeError(f"{what}.remote(): {e}") from None
