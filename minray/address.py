"""Which addresses mean "this machine": minray runs one local node and no cluster.

`init(address=...)`, `JobSubmissionClient(address)` and `minray job --address` take what a Ray
script passes for a local cluster (`auto`, `local`, Ray's local dashboard or GCS address) and
refuse the rest at once, saying that a remote cluster needs Ray itself.
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOCAL_NAMES = ("", "auto", "local")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")


def check_local(address: str | None, what: str) -> None:
    """Return if `address` names this machine's node; else raise ValueError saying why not."""
    if address is None:
        return
    if not isinstance(address, str):
        raise TypeError(f"{what}: address must be a str or None, got {type(address).__name__}")
    text = address.strip()
    if text.lower() in LOCAL_NAMES:
        return
    if text.lower().startswith("ray://"):
        raise ValueError(f"{what}: {address!r} is a Ray Client address; minray runs on this "
                         f"machine only and has no client server, so that cluster needs real "
                         f"Ray: use Ray itself (pip install 'ray[default]'; import ray).")
    host = urlsplit(text if "://" in text else f"//{text}").hostname
    if host in _LOOPBACK_HOSTS or (host or "").startswith("127."):
        return
    raise ValueError(f"{what}: {address!r} is a remote cluster; minray runs on this machine "
                     f"only (use address None, 'auto' or 'local'), so that cluster needs real "
                     f"Ray: use Ray itself (pip install 'ray[default]'; import ray).")
