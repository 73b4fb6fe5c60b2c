"""Fresh `bytes` and `bytearray` objects for large values read out of segments, backed by
transparent huge pages where the kernel offers them (Linux, THP "always" or "madvise").

Filling fresh memory costs a page fault for every 4 KiB page; for 200 MB that takes longer
than the copy itself (about 150 ms against 60 ms with 2 MiB pages on a 2-core VM). So the
object is made the way C code makes one it is about to fill, its memory untouched; its pages
are advised, and the caller fills it through a writable view before anyone else sees it.
"""

from __future__ import annotations

import ctypes
import mmap

_ADVICE = getattr(mmap, "MADV_HUGEPAGE", None)  # None where the OS has no such advice
_madvise = ctypes.CDLL(None, use_errno=True).madvise if _ADVICE is not None else None
if _madvise is not None:
    _madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_make = {bytes: ctypes.pythonapi.PyBytes_FromStringAndSize,
         bytearray: ctypes.pythonapi.PyByteArray_FromStringAndSize}
for _new in _make.values():
    _new.restype = ctypes.py_object
    _new.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)


def new(kind: type[bytes] | type[bytearray], size: int) -> tuple[bytes | bytearray, memoryview]:
    """An unfilled object of `kind` and `size`, and a writable view of its memory. The caller
    fills all of it through the view, and lets go of the view, before using the object."""
    obj = _make[kind](None, size)
    if kind is bytes:
        array = (ctypes.c_char * size).from_address(
            ctypes.cast(ctypes.c_char_p(obj), ctypes.c_void_p).value)
    else:
        array = (ctypes.c_char * size).from_buffer(obj)
    if _madvise is not None:
        start = ctypes.addressof(array)
        first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE  # madvise wants whole pages
        end = (start + size) // mmap.PAGESIZE * mmap.PAGESIZE
        if end > first:
            _madvise(first, end - first, _ADVICE)  # advice: a failure only loses the speed-up
    return obj, memoryview(array).cast("B")
