"""Remote packages: zip and wheel URIs fetched through smart_open, once, into the cache.

A remote URI stays in the spec as given; the cache entry is keyed by the hash of the URI, so
the second environment that names it downloads nothing (as in Ray, the URI is the identity:
publish a changed package under a new URI). Storage clients are optional extras, imported only
when a URI of theirs is fetched; a missing one is an error that names the extra to install.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from runtime_env import archive
from runtime_env.masking import mask
from runtime_env.packaging import max_size_bytes

if TYPE_CHECKING:
    from runtime_env.setup import Setup

# scheme -> (module the transport needs, extra of minray that installs it)
CLIENTS: dict[str, tuple[str | None, str | None]] = {
    "http": ("requests", None),
    "https": ("requests", None),
    "s3": ("boto3", "s3"),
    "gs": ("google.cloud.storage", "gs"),
    "azure": ("azure.storage.blob", "azure"),
    "file": (None, None),
}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_CHUNK = 1 << 20
DEFAULT_HTTP_TIMEOUT = 60.0


def scheme_of(value: str) -> str | None:
    m = _SCHEME.match(value)
    return m.group(1).lower() if m else None


def is_remote(value: str) -> bool:
    return scheme_of(value) in CLIENTS


def is_wheel(uri: str) -> bool:
    return urlsplit(uri).path.endswith(".whl")


def check_uri(uri: str, field_name: str, *, wheels: bool) -> str:
    """Call-site check of a remote URI: it must name a .zip (or, for py_modules, a .whl)."""
    path = urlsplit(uri).path
    kinds = ".zip or .whl" if wheels else ".zip"
    if not (path.endswith(".zip") or (wheels and path.endswith(".whl"))):
        raise ValueError(f"runtime_env field '{field_name}': remote URI {uri} must "
                         f"point to a {kinds} file")
    return uri


def _importable(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_client(scheme: str) -> str | None:
    """Why URIs of `scheme` cannot be fetched here (a client is not installed), or None."""
    needed, extra = CLIENTS[scheme]
    for module in ("smart_open", needed):
        if module and not _importable(module):
            install = f'pip install "minray[{extra}]"' if extra else f"pip install {module}"
            return (f"{scheme}:// URIs need the Python package '{module}', which is not "
                    f"installed: {install}")
    return None


def _transport_params(scheme: str, timeout: float | None) -> dict[str, Any]:
    if scheme in ("http", "https"):
        return {"timeout": timeout if timeout and timeout > 0 else DEFAULT_HTTP_TIMEOUT}
    if scheme == "azure":
        conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if not conn:
            raise RuntimeError("azure:// URIs need the AZURE_STORAGE_CONNECTION_STRING "
                               "environment variable")
        from azure.storage.blob import BlobServiceClient

        return {"client": BlobServiceClient.from_connection_string(conn)}
    return {}


def download(uri: str, dest: Path, timeout: float | None = None) -> None:
    """Stream the object at `uri` into the file `dest`."""
    import smart_open

    scheme = scheme_of(uri) or "file"
    params = _transport_params(scheme, timeout)
    with (smart_open.open(uri, "rb", compression="disable", transport_params=params) as src,
          open(dest, "wb") as out):
        shutil.copyfileobj(src, out, _CHUNK)


def cache_key(uri: str) -> str:
    return "remote-" + hashlib.sha256(uri.encode()).hexdigest()[:32]


def fetch(uri: str, field_name: str, setup: Setup) -> Path:
    """The cache folder holding the unpacked package at `uri`, downloading it the first time.

    Failures are SetupErrors naming the URI: a missing client, a failing download, a broken or
    unsafe zip (whose partial entry the cache removes).
    """
    wheel = is_wheel(uri)

    def build(path: Path) -> None:
        problem = missing_client(scheme_of(uri) or "file")
        if problem:
            raise setup.fail(f"cannot fetch {mask(uri)}: {problem}")
        download_to = setup.cache.scratch(field_name, path.name)  # beside the entry
        built.append(path)
        setup.step("download", mask(uri))
        try:
            try:
                download(uri, download_to, setup.remaining())
            except Exception as e:  # any transport error is the user's answer
                raise setup.fail(f"cannot download {uri}: {_reason(e)}") from None
            setup.step("unpack", f"{download_to.stat().st_size} bytes")
            try:
                archive.extract(download_to, path, strip_top=not wheel,
                                max_bytes=max_size_bytes(field_name))
            except (archive.UnsafeArchiveError, archive.BadArchiveError) as e:
                raise setup.fail(f"refusing {uri}: {e}") from None
        finally:
            download_to.unlink(missing_ok=True)

    def damaged(problem: str) -> None:
        setup.log(f"cache entry damaged ({problem}): fetching {mask(uri)} again")

    built: list[Path] = []
    path = setup.cache.get_or_create(field_name, cache_key(uri), build,
                                     meta={"uri": mask(uri)}, timeout=setup.remaining(),
                                     on_damage=damaged)
    setup.used(field_name, cache_key(uri), built=bool(built))
    return path


def _reason(e: Exception) -> str:
    """The first line of an error (SetupError masks the URLs in it: transports echo them)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
