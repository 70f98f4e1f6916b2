"""The server's heap between the PATCHes of an upload.

Every byte of an upload arrives in a fresh ``bytes`` of up to 256 KiB (asyncio's ``recv``),
freed once written and hashed. glibc hands the freed top of its heap back to the kernel as soon
as more than ``M_TRIM_THRESHOLD`` is free there (dynamically ~512 KiB), and takes it again with
the next pieces: every page faulted in and zeroed anew, most of all between the PATCHes of a
chunked push, where everything an upload held is freed at once (measured: 37,000 page
faults per 256 MiB chunked push, 17,000 monolithic; with :func:`tune`, none and 3,000, and a
sixth less of the server's CPU time). :func:`tune` keeps up to
``KEEP`` bytes of free heap and serves the recv buffers from the heap (``mmap`` only from
``MMAP_FROM``); :func:`release` gives what is free back once an upload is finished, so the
server's memory at rest is what it was.

glibc only (elsewhere both are no-ops)."""

from __future__ import annotations

import ctypes
import os
from typing import Any

KEEP = 32 << 20
"""Free heap kept between an upload's requests (more than one upload holds in flight)."""
MMAP_FROM = 4 << 20
"""Allocations from this size on get their own mapping (the recv buffers stay below)."""
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _libc() -> Any:
    try:  # glibc says its version here; platform.libc_ver() would read the whole binary
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
    except (ValueError, OSError):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def tune() -> None:
    """Keep freed heap for the next pieces (at the server's start)."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_FROM)
        _LIBC.mallopt(_M_TRIM_THRESHOLD, KEEP)


def release() -> None:
    """Give the free heap back to the kernel (after an upload is finished)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
