"""Values on their way between processes: small ones as pickles inside messages, large ones as
segments (files in the session's shared-memory folder, see minray/node/shm.py).

A stored value is `Data`: the pickle itself (bytes) or a `Segment` naming its file. Large
`bytes`, `bytearray` and `memoryview` values are written raw; other values are pickled with
protocol 5, their out-of-band buffers (numpy arrays) written after the pickle stream, so each
is copied once into the segment and, on the reading side, either once out of it (bytes,
bytearray, into huge pages when large; a memoryview arrives as bytes, as cloudpickle and Ray
give it) or not at all: numpy arrays are read in place from a read-only mapping, as in Ray. A
segment's file stays valid for whoever has it mapped after it is unlinked, so the node frees
values without asking who still reads them.
"""

from __future__ import annotations

import _pickle as pickle  # the C module: a worker starts ~1 ms sooner without pickle.py
import errno
import os
from collections.abc import Callable

from minray import exceptions as exc
from minray.named_tuple import Record

THRESHOLD = 1 << 20  # bytes: values at least this big travel as segments
_HUGE_MIN = 8 << 20  # bytes: values at least this big are read into huge pages (hugepages.py)
_ALIGN = 64  # out-of-band buffers start on this boundary (numpy wants at most 16)
BYTES, BYTEARRAY, PICKLED = "bytes", "bytearray", "pickled"
_RAW = {bytes: BYTES, bytearray: BYTEARRAY, memoryview: BYTES}  # a memoryview: its bytes, as
# cloudpickle and Ray give it back
FOLDER_VAR = "MINRAY_OBJECT_DIR"  # where a worker writes its segments (the node sets it)
POOL = "free"  # the subfolder of freed segment files kept a moment for reuse (minray/node/shm.py)


class Segment(Record):
    """A value in a file: raw bytes (`kind` BYTES or BYTEARRAY) or a pickle stream
    of `stream` bytes followed by its out-of-band buffers at (offset, length)."""

    path: str
    kind: str
    size: int
    stream: int = 0
    buffers: tuple[tuple[int, int], ...] = ()


Data = bytes | Segment
Dump = Callable[..., bytes]  # pickle.dumps or cloudpickle.dumps


def is_large_raw(value) -> bool:
    """A bytes, bytearray or memoryview big enough to travel as a segment (a cheap test)."""
    return type(value) in _RAW and memoryview(value).nbytes >= THRESHOLD


def dumps(value, folder: str | None, dump: Dump = pickle.dumps) -> Data:
    """The value in its travelling form: a segment in `folder` when large (and a folder is
    given), else its pickle. Raises ObjectStoreFullError when the folder has no room."""
    raw = _RAW.get(type(value))
    if raw is not None:
        view = memoryview(value)
        if folder is not None and view.nbytes >= THRESHOLD:
            view = view if view.c_contiguous else memoryview(view.tobytes())
            return _write(folder, raw, [(0, view.cast("B"))], 0)
    buffers: list[pickle.PickleBuffer] = []
    data = dump(value, protocol=5, buffer_callback=buffers.append)
    if not buffers and len(data) < THRESHOLD:
        return data
    views = [b.raw() for b in buffers]
    if folder is None or len(data) + sum(v.nbytes for v in views) < THRESHOLD:
        return dump(value, protocol=5)  # buffers in-band: a small array, or no folder
    parts, offset = [(0, memoryview(data))], len(data)
    for view in views:
        offset = -(-offset // _ALIGN) * _ALIGN
        parts.append((offset, view))
        offset += view.nbytes
    return _write(folder, PICKLED, parts, len(data))


def loads(data: Data):
    """The value back: unpickled, read from its segment, or mapped from it read-only."""
    if type(data) is bytes:
        return pickle.loads(data)
    if data.kind in (BYTES, BYTEARRAY):
        return _read(data)
    view = _map(data.path)
    return pickle.loads(view[:data.stream],
                        buffers=[view[o:o + n] for o, n in data.buffers])


def _read(data: Segment) -> bytes | bytearray:
    """A raw value read from its segment into a new object of exactly its size (a reused
    file may be longer), in huge pages when it is large (minray/hugepages.py)."""
    kind = bytes if data.kind == BYTES else bytearray
    with open(data.path, "rb", buffering=0) as f:
        hugepages = _hugepages() if data.size >= _HUGE_MIN else None
        if hugepages is not None:
            out, view = hugepages.new(kind, data.size)
        elif kind is bytes:
            out = f.read(data.size)
            if len(out) < data.size:
                raise _shorter(data)
            return out
        else:
            out = bytearray(data.size)
            view = memoryview(out)
        with view:
            got = 0
            while got < data.size:  # one read stops short of 2 GiB
                n = f.readinto(view[got:])
                if not n:
                    raise _shorter(data)
                got += n
    return out


def _hugepages():
    """minray.hugepages, imported on use (it imports ctypes); None on a Python without ctypes."""
    try:
        from minray import hugepages
    except ImportError:
        return None
    return hugepages


def _shorter(data: Segment) -> exc.ObjectLostError:
    return exc.ObjectLostError(f"the segment {data.path} is shorter than its {data.size} bytes")


def free(data: Data) -> None:
    """Remove a value's segment (those who have it mapped keep reading it)."""
    if type(data) is Segment:
        try:
            os.unlink(data.path)
        except FileNotFoundError:
            pass


def _map(path: str) -> memoryview:
    """The file mapped read-only, under a shared lock that lives as long as the mapping (the
    mmap object holds a duplicate of the descriptor): the node never reuses a file that someone
    still reads in place (minray/node/shm.py)."""
    import fcntl
    import mmap  # on use: most workers never map a segment

    with open(path, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_SH)
        return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))


def _write(folder: str, kind: str, parts: list[tuple[int, memoryview]], stream: int) -> Segment:
    """Write the parts at their offsets into a new file of `folder` (one copy each), reusing
    a freed file's memory when the pool has one: writing into pages a file already has costs
    about half of having tmpfs allocate new ones. A reused file keeps its length (readers
    read the value's size): truncating would free pages, which costs about as much again."""
    end = parts[-1][0] + parts[-1][1].nbytes
    pool = _pool(folder)
    free = _free_space(folder)
    if end > free + sum(pool.values()):
        raise _full(folder, end, free)
    path = None
    if end > free:  # the pool's files hold memory this value needs
        _drain(folder, pool)
    else:
        path = _claim(folder, pool, end)
    if path is None:
        path = os.path.join(folder, os.urandom(8).hex())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        for offset, view in parts:
            done = 0
            while done < view.nbytes:
                done += os.pwrite(fd, view[done:], offset + done)
    except OSError as e:
        os.unlink(path)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _full(folder, end) from None
        raise
    finally:
        os.close(fd)
    return Segment(path, kind, end, stream, tuple((o, v.nbytes) for o, v in parts[1:]))


def _pool(folder: str) -> dict[str, int]:
    """The pool's files and their sizes (in their names)."""
    try:
        return {name: int(name.split(".")[0]) for name in os.listdir(os.path.join(folder, POOL))}
    except (OSError, ValueError):
        return {}


def _claim(folder: str, pool: dict[str, int], need: int) -> str | None:
    """Take a file from the pool by renaming it to a new segment name (a rename succeeds for
    one taker only): the smallest that holds `need` without doubling it, else the largest
    smaller one (its pages are reused, the rest is added). One much larger would hold its
    surplus memory for the value's life. None if there is none."""
    fits = sorted((n for n in pool if need <= pool[n] <= 2 * need), key=pool.get)
    smaller = sorted((n for n in pool if pool[n] < need), key=pool.get, reverse=True)
    for name in fits or smaller:
        path = os.path.join(folder, os.urandom(8).hex())
        try:
            os.rename(os.path.join(folder, POOL, name), path)
            return path
        except FileNotFoundError:  # taken or expired meanwhile
            continue
    return None


def _drain(folder: str, pool: dict[str, int]) -> None:
    for name in pool:
        try:
            os.unlink(os.path.join(folder, POOL, name))
        except FileNotFoundError:
            pass


def _free_space(folder: str) -> int:
    try:
        st = os.statvfs(folder)
    except FileNotFoundError:
        raise exc.RayError(f"the object folder {folder} is gone: minray was shut down, or "
                           f"something removed it") from None
    return st.f_bavail * st.f_frsize


def _full(folder: str, need: int, free_bytes: int | None = None) -> exc.ObjectStoreFullError:
    if free_bytes is None:
        free_bytes = _free_space(folder)
    return exc.ObjectStoreFullError(
        f"cannot store a value of {_mb(need)}: {folder} has {_mb(free_bytes)} free. minray "
        f"keeps values of {_mb(THRESHOLD)} or more in shared memory; free some (drop "
        f"ObjectRefs you no longer need), or set MINRAY_OBJECT_STORE_DIR to a folder with more "
        f"room (on disk if need be) before minray.init()")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
