"""Local files -> content-addressed packages in the cache, resolved on the driver.

A package is a folder in the cache named by the hash of what survives the excludes: relative
paths, whether each file is executable, and file contents. An unchanged tree is therefore never
copied twice, and any change to an included file makes a new package (changes to excluded
files do not). On one machine there is nothing to upload, so a package is kept unpacked: the
surviving files are copied straight into the cache entry, no zip in between.

Re-hashing is made cheap by a persistent memo of file digests keyed by (size, mtime_ns,
ctime_ns, inode, device), one small file per tree root under `<cache>/.memo/`. A digest is
memoised only when the file was last changed clearly before the walk began, so a file
rewritten within the file system's timestamp granularity is never taken for unchanged (git's
"racy clean" problem).

The spec then holds `minray-pkg://<field>/<key>`: a pure value naming the cache entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runtime_env import archive
from runtime_env.cache import Cache
from runtime_env.ignore import Rules

PKG_SCHEME = "minray-pkg"
_PKG_URI = re.compile(r"^minray-pkg://([a-z_]+)/([0-9a-f]{32})$")
DEFAULT_MAX_SIZE_MB = 500
_MIB = 1024 * 1024
_FORMAT = b"minray-pkg/1\0"
_MEMO_DIR = ".memo"  # inside the cache root; not a field (holds no *.json manifests)
_CHUNK = 1 << 20


# --- package URIs ------------------------------------------------------------------------
def pkg_uri(field_name: str, key: str) -> str:
    return f"{PKG_SCHEME}://{field_name}/{key}"


def parse_pkg_uri(value: str) -> tuple[str, str] | None:
    """(field, key) of a package URI, None if `value` is not one."""
    m = _PKG_URI.match(value)
    return (m.group(1), m.group(2)) if m else None


def is_pkg_uri(value: str) -> bool:
    return value.startswith(PKG_SCHEME + "://")


# --- size limit --------------------------------------------------------------------------
def size_limit_var(field_name: str) -> str:
    return f"MINRAY_RUNTIME_ENV_{field_name.upper()}_MAX_SIZE_MB"


def max_size_bytes(field_name: str) -> int:
    """Largest package allowed: MINRAY_RUNTIME_ENV_<FIELD>_MAX_SIZE_MB, else 500 MiB."""
    raw = os.environ.get(size_limit_var(field_name))
    try:
        return int(float(raw) * _MIB) if raw else DEFAULT_MAX_SIZE_MB * _MIB
    except ValueError:
        raise ValueError(f"{size_limit_var(field_name)}={raw!r} is not a number of MiB") from None


# --- the walk ----------------------------------------------------------------------------
@dataclass(frozen=True)
class FileEntry:
    rel: str  # posix path inside the package
    src: str  # where to read it (symlinks followed)
    mode: int  # 0o755 or 0o644: only the executable bit is part of the identity
    size: int
    stamp: tuple[int, int, int, int, int]  # size, mtime_ns, ctime_ns, inode, device


@dataclass
class Tree:
    root: str
    started_ns: int  # wall clock before the first stat: see `DigestMemo.trusted`
    dirs: list[str] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def _file_entry(rel: str, src: str, st: os.stat_result) -> FileEntry:
    mode = 0o755 if st.st_mode & 0o111 else 0o644
    return FileEntry(rel, src, mode, st.st_size,
                     (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev))


def walk(root: str, excludes: Sequence[str] = (), prefix: str = "") -> Tree:
    """The folders and files under `root` that survive the rules, named `prefix` + rel path.

    Symlinks are followed (as Ray does); a link back to a folder being walked is skipped, and
    so are dangling links and special files.
    """
    tree = Tree(root, time.time_ns())
    root_st = os.stat(root)
    stack = [(root, "", Rules.root(excludes), frozenset({(root_st.st_dev, root_st.st_ino)}))]
    while stack:
        folder, rel, rules, ancestors = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as e:
            raise ValueError(f"cannot read folder {folder}: {e.strerror}") from None
        rules = rules.enter(folder, rel, {e.name for e in entries})
        for entry in entries:
            path_rel = rel + entry.name
            try:
                st = entry.stat()
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                ident = (st.st_dev, st.st_ino)
                if ident in ancestors or rules.excluded(path_rel, entry.name, True):
                    continue
                tree.dirs.append(prefix + path_rel)
                stack.append((entry.path, path_rel + "/", rules, ancestors | {ident}))
            elif stat.S_ISREG(st.st_mode) and not rules.excluded(path_rel, entry.name, False):
                tree.files.append(_file_entry(prefix + path_rel, entry.path, st))
    return tree


def check_size(tree: Tree, field_name: str, source: str) -> None:
    """A ValueError naming the largest files when the package would be over the limit."""
    limit = max_size_bytes(field_name)
    total = tree.size
    if total <= limit:
        return
    largest = sorted(tree.files, key=lambda f: f.size, reverse=True)[:5]
    listing = ", ".join(f"{f.rel} ({f.size / _MIB:.1f} MiB)" for f in largest)
    raise ValueError(
        f"runtime_env field '{field_name}': {source} holds {total / _MIB:.1f} MiB after "
        f"excludes, over the limit of {limit / _MIB:.0f} MiB (set "
        f"{size_limit_var(field_name)} to change it). Largest files: {listing}. Leave files "
        f"out with 'excludes' (gitignore patterns, e.g. \"excludes\": [\"data/\", \"*.ckpt\"]) "
        f"or a .minrayignore (or .rayignore) file.")


# --- digests and their memo ----------------------------------------------------------------
def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class DigestMemo:
    """File digests of one tree root, kept across processes in the cache."""

    # A digest is memoised only if the file's last change is this much older than the walk:
    # more than the timestamp granularity (coarse kernel clock ticks, or whole seconds).
    FINE_MARGIN_NS = 50_000_000
    COARSE_MARGIN_NS = 2_000_000_000

    def __init__(self, cache_root: Path, tree_root: str):
        name = hashlib.sha256(os.path.realpath(tree_root).encode()).hexdigest()[:24]
        self.path = Path(cache_root) / _MEMO_DIR / f"{name}.memo"
        try:
            with open(self.path) as f:
                self._old: dict[str, list] = json.load(f)
        except (OSError, ValueError):
            self._old = {}
        self._seen: dict[str, list] = {}
        self._dirty = False

    def digest(self, entry: FileEntry, started_ns: int) -> str:
        rec = self._old.get(entry.rel)
        if rec is not None and len(rec) == 6 and tuple(rec[:5]) == entry.stamp:
            self._seen[entry.rel] = rec
            return rec[5]
        digest = file_digest(entry.src)
        if self.trusted(entry.stamp, started_ns):
            self._seen[entry.rel] = [*entry.stamp, digest]
            self._dirty = True
        return digest

    @classmethod
    def trusted(cls, stamp: tuple[int, ...], started_ns: int) -> bool:
        _, mtime, ctime, _, _ = stamp
        coarse = mtime % 1_000_000_000 == 0 and ctime % 1_000_000_000 == 0
        margin = cls.COARSE_MARGIN_NS if coarse else cls.FINE_MARGIN_NS
        return max(mtime, ctime) < started_ns - margin

    def save(self) -> None:
        """Write the memo atomically if it learnt something (a lost race only costs a re-read)."""
        if not self._dirty:
            return
        data = self._seen
        if len(self._old) <= 2 * len(self._seen) + 1000:  # keep other walks' files, bounded
            data = {**self._old, **self._seen}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(
            f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}")
        try:
            with open(tmp, "w") as f:
                json.dump(data, f, separators=(",", ":"))
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)


def tree_key(tree: Tree, digests: dict[str, str]) -> str:
    """The package's identity: paths, executable bits and contents, in a canonical order."""
    items = [(d, "d", "") for d in tree.dirs]
    items += [(f.rel, "f", f"{f.mode:o}:{digests[f.rel]}") for f in tree.files]
    items.sort()
    h = hashlib.sha256(_FORMAT)
    for rel, kind, what in items:
        h.update(f"{kind}\0{rel}\0{what}\0".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:32]


# --- storing packages ----------------------------------------------------------------------
def _copy_verified(entry: FileEntry, dest: Path, digest: str) -> None:
    """Copy while hashing, so the entry holds exactly what its key says."""
    h = hashlib.sha256()
    with open(entry.src, "rb") as src, open(dest, "wb") as out:
        while chunk := src.read(_CHUNK):
            h.update(chunk)
            out.write(chunk)
    if h.hexdigest() != digest:
        raise ValueError(f"{entry.src} changed while it was being packaged; try again")
    os.chmod(dest, entry.mode)


def store_tree(cache: Cache, field_name: str, tree: Tree, digests: dict[str, str]) -> str:
    """Put the tree into the cache (once) and return its key."""
    key = tree_key(tree, digests)

    def build(path: Path) -> None:
        for d in sorted(tree.dirs):
            (path / d).mkdir(parents=True, exist_ok=True)
        for f in tree.files:
            dest = path / f.rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            _copy_verified(f, dest, digests[f.rel])

    cache.get_or_create(field_name, key, build,
                        meta={"source": tree.root, "files": len(tree.files)})
    return key


def package_dir(root: str, field_name: str, excludes: Sequence[str], cache: Cache, *,
                prefix: str = "") -> str:
    """Package a local folder (contents under `prefix`) and return its package URI."""
    tree = walk(root, excludes, prefix)
    check_size(tree, field_name, root)
    memo = DigestMemo(cache.root, root)
    digests = {f.rel: memo.digest(f, tree.started_ns) for f in tree.files}
    memo.save()
    return pkg_uri(field_name, store_tree(cache, field_name, tree, digests))


def package_file(path: str, field_name: str, cache: Cache) -> str:
    """Package a single file (a module `x.py`) as a folder holding just it."""
    tree = Tree(os.path.dirname(path), time.time_ns())
    tree.files.append(_file_entry(os.path.basename(path), path, os.stat(path)))
    check_size(tree, field_name, path)
    digests = {f.rel: file_digest(f.src) for f in tree.files}
    return pkg_uri(field_name, store_tree(cache, field_name, tree, digests))


def package_archive(path: str, field_name: str, cache: Cache, *, wheel: bool) -> str:
    """Unpack a local zip (single top-level directory rule) or wheel (as is) into the cache.

    Keyed by the archive's bytes. `excludes` does not apply, as in Ray.
    """
    started = time.time_ns()
    memo = DigestMemo(cache.root, path)
    digest = memo.digest(_file_entry("", path, os.stat(path)), started)
    memo.save()
    kind = b"whl" if wheel else b"zip"
    key = hashlib.sha256(_FORMAT + kind + b"\0" + digest.encode()).hexdigest()[:32]
    limit = max_size_bytes(field_name)

    def build(dest: Path) -> None:
        size = archive.unpacked_size(path)
        if size > limit:
            raise archive.BadArchiveError(
                f"unpacks to {size / _MIB:.1f} MiB, over the limit of {limit / _MIB:.0f} "
                f"MiB (set {size_limit_var(field_name)} to change it)")
        archive.extract(path, dest, strip_top=not wheel, max_bytes=limit)

    try:
        cache.get_or_create(field_name, key, build, meta={"source": path})
    except (archive.UnsafeArchiveError, archive.BadArchiveError) as e:
        raise type(e)(f"runtime_env field '{field_name}': {path}: {e}") from None
    return pkg_uri(field_name, key)
