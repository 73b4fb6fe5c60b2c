"""What no runtime_env may hold, checked at the call site whatever the field.

A bad value must be a ValueError/TypeError where it is typed, naming the field, never a hang or
a broken session later: a NUL byte cannot go into a path, an argv or an environment variable
(Popen raises), and workers receive the spec in one environment variable, which Linux caps.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping

from runtime_env.masking import mask

# Linux's MAX_ARG_STRLEN: the longest string (argument, or NAME=value) exec takes, NUL included.
MAX_ENV_STRING = 128 * 1024 - 1
_A_KEY = object()  # in a path: the NUL is in a dict's key, not its value
MAX_MESSAGE = 1000  # a message quoting a huge value keeps its head and says how much is left


def did_you_mean(names: list[str], known: list[str]) -> str:
    """' (did you mean 'env_vars'?)' for the first misspelt name that is close to a known one,
    else ''. difflib is loaded only for an error."""
    import difflib

    for name in names:
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        if close:
            return f" (did you mean {close[0]!r}?)"
    return ""


def reject_nul(value: object, where: str) -> None:
    """Raise ValueError if a string anywhere in `value` (dicts, lists, paths) has a NUL byte.
    Iterative and cycle-safe: a value nested deeply or holding itself is walked, not recursed.
    Each item keeps (its key, its parent's entry); the path is spelled out only for the error."""
    stack: list[tuple[object, tuple | None]] = [(value, None)]
    seen: set[int] = set()
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            if "\0" in item:
                raise ValueError(f"{where}{_path(at)} contains a NUL byte, which no path, "
                                 f"command or environment variable can hold")
            continue
        if isinstance(item, os.PathLike) and not isinstance(item, (list, tuple, Mapping)):
            stack.append((os.fspath(item), at))
            continue
        if not isinstance(item, (list, tuple, Mapping)) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Mapping):
            for k, v in item.items():
                stack += [(k, (_A_KEY, at)), (v, (k, at))]
        else:
            stack.extend((v, (i, at)) for i, v in enumerate(item))


def _path(at: tuple | None) -> str:
    """`['packages'][0]` from the chain of (key, parent) entries."""
    suffix = ""
    if at is not None and at[0] is _A_KEY:
        suffix, at = ": a key", at[1]
    parts = []
    while at is not None:
        key, at = at
        parts.append(f"[{str.__repr__(key) if isinstance(key, str) else key}]"
                     if isinstance(key, (str, int)) else f"[<{type(key).__name__}>]")
    return "".join(reversed(parts)) + suffix


@contextlib.contextmanager
def about(where: str) -> Iterator[None]:
    """Make any error raised while checking `where` a ValueError/TypeError that names it, with
    passwords masked: a user's object whose __repr__ raises, a value nested too deeply or
    holding itself, an unreadable file, all answer at the call site like a wrong type."""
    try:
        yield
    except (TypeError, ValueError) as e:
        message = _text(e)
        if where not in message:
            message = f"{where}: {message}"
        raise (TypeError if isinstance(e, TypeError) else ValueError)(message) from None
    except RecursionError:
        raise ValueError(f"{where} is nested too deeply, or contains itself") from None
    except OSError as e:
        raise ValueError(f"{where}: {_text(e)}") from None
    except Exception as e:  # noqa: BLE001 - a user's object misbehaving is still a bad value
        raise TypeError(f"{where}: reading the value raised {type(e).__name__}: {_text(e)}; "
                        f"give plain str, list and dict values") from e


def _text(error: BaseException) -> str:
    """An error's message, masked and cut to a readable length (even if its __str__ raises)."""
    try:
        text = mask(str(error))
    except Exception:  # noqa: BLE001 - a user's exception that cannot say what it is
        return type(error).__name__
    if len(text) > MAX_MESSAGE:
        text = f"{text[:MAX_MESSAGE]}... ({len(text) - MAX_MESSAGE} more characters)"
    return text


def check_size(spec: dict) -> None:
    """Workers get the spec as JSON in one environment variable: refuse one too big for it,
    naming the field that takes the most room."""
    size = len(json.dumps(spec, sort_keys=True))
    if size > MAX_ENV_STRING:
        field = max(spec, key=lambda k: len(json.dumps(spec[k])))
        raise ValueError(f"runtime_env field '{field}' makes the runtime_env {size // 1024} KiB "
                         f"as JSON, over the {(MAX_ENV_STRING + 1) // 1024} KiB an environment "
                         f"variable can hold, and workers receive it in one; put large data in "
                         f"a file (working_dir) instead")
