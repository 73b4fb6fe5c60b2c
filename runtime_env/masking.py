"""Passwords out of what minray writes: the one function that masks credentials in URLs.

Index URLs (`--index-url https://user:token@host/simple`), find-links and remote package URIs
may carry a password, and they reach commands, installer output, errors, logs and the CLI.
Everything minray writes about an env passes through `mask` first.
"""

from __future__ import annotations

import re

# scheme://userinfo@ : the userinfo runs to the last "@" before the path, query, fragment,
# whitespace or a character a URL cannot hold there (quotes, brackets), so a password with
# a raw "@" in it is masked whole.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)"
                       r"(?P<userinfo>[^/?#\s\"`<>\[\]{}|\\^]*)@")


def _masked(m: re.Match) -> str:
    user, colon, _ = m.group("userinfo").partition(":")
    # user:password keeps the user; a lone token (https://TOKEN@host) is all secret
    return f"{m.group('scheme')}{user}:***@" if colon else f"{m.group('scheme')}***@"


def mask(text: str) -> str:
    """`text` with the password of every `scheme://user:password@host` URL replaced by `***`
    (`user:***@`), and a user-only token (`scheme://token@host`) replaced whole (`***@`)."""
    if "@" not in text:  # the common case costs one scan
        return text
    return _USERINFO.sub(_masked, text)


def mask_all(value):
    """A JSON-like value (dicts, lists, strings) with every string masked, e.g. a cache
    entry's metadata, which holds the requirement lines."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: mask_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_all(v) for v in value]
    return value
