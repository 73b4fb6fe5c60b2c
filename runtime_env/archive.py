"""Unpacking zips (and wheels, which are zips) safely into a cache entry.

Every entry is checked before anything is written: a name that is absolute or climbs out with
`..`, or a symlink entry whose target lies outside the folder, refuses the whole archive, so a
hostile zip can write nothing outside its cache entry (and the half-built entry is removed by
the cache). The single top-level directory rule is Ray's: when every entry of a zip lies in one
directory, that directory's contents are the package; otherwise the whole zip is.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
import zipfile

_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeArchiveError(ValueError):
    """An archive entry would land outside the folder it is unpacked into."""


class BadArchiveError(ValueError):
    """Not a readable zip, or larger than allowed."""


def _clean_name(name: str) -> str:
    """The entry's path relative to the archive root, or UnsafeArchiveError."""
    norm = name.replace("\\", "/")
    if not norm or "\0" in norm or norm.startswith("/") or _DRIVE.match(norm):
        raise UnsafeArchiveError(f"entry {name!r} has an absolute path")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"entry {name!r} would be written outside its folder")
    return "/".join(parts)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _mode(info: zipfile.ZipInfo) -> int:
    """Files keep their executable bit; everything is readable and writable by the owner."""
    unix = info.external_attr >> 16 if info.create_system == 3 else 0
    return 0o755 if unix & 0o111 else 0o644


def single_top_level(names: list[str]) -> str | None:
    """The one directory holding every entry, if there is one (Ray's rule)."""
    tops = {n.split("/", 1)[0] for n in names if n}
    if len(tops) != 1:
        return None
    top = tops.pop()
    # It must be a directory: some entry lies below it.
    return top if any(n.startswith(top + "/") for n in names) else None


def unpacked_size(path: str | os.PathLike) -> int:
    try:
        with zipfile.ZipFile(path) as zf:
            return sum(i.file_size for i in zf.infolist())
    except (zipfile.BadZipFile, OSError) as e:
        raise BadArchiveError(f"{os.fspath(path)} is not a readable zip file: {e}") from None


def extract(path: str | os.PathLike, dest: str | os.PathLike, *, strip_top: bool,
            max_bytes: int | None = None) -> None:
    """Unpack the zip at `path` into the existing folder `dest`.

    `strip_top` applies the single top-level directory rule. Raises UnsafeArchiveError for an
    entry escaping `dest`, BadArchiveError for a broken zip or one over `max_bytes` unpacked.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BadArchiveError(f"{os.fspath(path)} is not a readable zip file: {e}") from None
    with zf:
        infos = zf.infolist()
        names = [_clean_name(i.filename) for i in infos]  # refuses before writing anything
        total = sum(i.file_size for i in infos)
        if max_bytes is not None and total > max_bytes:
            raise BadArchiveError(f"unpacks to {total / 2**20:.1f} MiB, over the limit of "
                                  f"{max_bytes / 2**20:.0f} MiB")
        top = single_top_level(names) if strip_top else None
        root = os.path.realpath(dest)
        links_made = False
        for info, name in zip(infos, names, strict=True):
            if top is not None:
                name = name[len(top) + 1:] if name != top else ""
            if not name:
                continue
            target = os.path.join(root, *name.split("/"))
            if links_made and not _inside(root, os.path.realpath(target)):
                raise UnsafeArchiveError(f"entry {info.filename!r} would be written outside "
                                         f"its folder (through a symlink)")
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if _is_symlink(info):
                link = zf.read(info).decode("utf-8", errors="replace")
                resolved = os.path.realpath(os.path.join(os.path.dirname(target), link))
                if posixpath.isabs(link) or _DRIVE.match(link) or not _inside(root, resolved):
                    raise UnsafeArchiveError(f"symlink entry {info.filename!r} points outside "
                                             f"its folder (to {link!r})")
                if os.path.lexists(target):
                    os.unlink(target)
                os.symlink(link, target)
                links_made = True
                continue
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            os.chmod(target, _mode(info))


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)

