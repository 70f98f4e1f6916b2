"""Early writeback of what a writer wrote: ``sync_file_range(2)`` with
``SYNC_FILE_RANGE_WRITE`` starts the disk write of a range and returns without waiting, so a
blob's bytes go to disk while the rest of it is still being received, and the ``fsync`` that
acknowledges the blob only waits for the last of them (the kernel would otherwise start
writing back only after ``dirty_expire_centisecs``, 30 s, or at that ``fsync``: receive, then
write). Durability is unchanged: nothing is acknowledged before its ``fsync``.

Linux only (a no-op elsewhere, or where libc lacks the call)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

SYNC_FILE_RANGE_WRITE = 2
"""From ``<fcntl.h>``: start writeback of the range's dirty pages, do not wait."""


def _load() -> Callable[[int, int, int, int], int] | None:
    if os.uname().sysname != "Linux":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols: libc's
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_SYNC_FILE_RANGE = _load()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``length`` bytes of ``fd`` from ``offset`` to disk; do not wait. Errors
    are ignored: the ``fsync`` before the acknowledgement reports them."""
    if _SYNC_FILE_RANGE is not None and length > 0:
        _SYNC_FILE_RANGE(fd, offset, length, SYNC_FILE_RANGE_WRITE)
