"""Early and durable writeback of what a writer wrote.

``sync_file_range(2)`` with ``SYNC_FILE_RANGE_WRITE`` starts the disk write of a range and
returns without waiting, so a blob's bytes go to disk while the rest of it is still being
received (the kernel would otherwise start writing back only after
``dirty_expire_centisecs``, 30 s, or at the ``fsync``: receive, then write). That alone leaves
the ``fsync`` that acknowledges a blob the disk's own cache to flush (on a virtual disk, the
host's copy of every byte: measured 0.4-1.8 s after a 1 GiB upload): :func:`durable_writeback`
(``fdatasync(2)``) every ``SYNC_EVERY`` bytes and at the end of a request, in the background,
flushes it as the upload goes, and the closing ``fsync`` finds next to nothing left.

A background ``fdatasync`` may be the one that meets a write error, and the kernel reports a
writeback error once per open file (``errseq``): a descriptor opened after it, as the closing
request's is, would ``fsync`` without error. So every background sync's outcome is kept in the
file's :class:`DurableWrites`, which the commit settles before its own ``fsync``: a failure
fails the commit, nothing is acknowledged that did not reach the disk. Durability is unchanged:
nothing is acknowledged before its ``fsync``.

``sync_file_range`` is Linux only (a no-op elsewhere, or where libc lacks the call).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

SYNC_FILE_RANGE_WRITE = 2
"""From ``<fcntl.h>``: start writeback of the range's dirty pages, do not wait."""
SYNC_EVERY = 16 << 20
"""A writer starts a background ``fdatasync`` each time its file grows past a multiple of this."""
SYNC_TAIL = 1 << 20
"""At its end a writer starts one for what it wrote since its last one, from this many bytes."""
SYNC_THREADS = 8
SYNC_POOL = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="regtui-sync")
"""The threads of the syncs' lanes: an ``fdatasync`` may wait long for a busy disk, and must
not hold a thread the writes and hashes a request's answer waits for would take (their lanes
share :mod:`~embedded_registry.storage.driver.lanes`' pool). Uploads syncing at once beyond
this wait their turn; the commit's ``fsync`` covers what none did yet."""
FAULT_ENV = "REGTUI_FAIL_AT"
"""For tests of failures only: ``fdatasync`` (comma-separated with other points) makes every
background :func:`durable_writeback` fail with EIO, as a disk's write error would (the
``fsync`` of the commit itself is not touched: as when the background sync consumed the
error)."""


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
    are ignored here: this call does not consume them (it does not wait), the next
    ``fdatasync`` or ``fsync`` of the file reports them."""
    if _SYNC_FILE_RANGE is not None and length > 0:
        _SYNC_FILE_RANGE(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def _fault(point: str) -> bool:
    wanted = os.environ.get(FAULT_ENV)
    return wanted is not None and point in wanted.split(",")


def durable_writeback(fd: int, outcome: Future[None]) -> None:
    """``fdatasync(fd)`` (in a worker thread); its outcome into ``outcome``.

    When it fails, the file is also emptied (best effort): its pages may be lost on disk
    while the page cache still shows them, and a process started after a crash, which has
    no record of this failure (its own ``fsync`` would not report it), must not take the file
    for whole: an empty upload matches no digest but the empty one."""
    if not outcome.set_running_or_notify_cancel():
        return
    try:
        if _fault("fdatasync"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.fdatasync(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):  # the disk may refuse this too: the record stays
            os.ftruncate(fd, 0)
        outcome.set_exception(exc)
    else:
        outcome.set_result(None)


class DurableWrites:
    """The background syncs of one file (on the event loop's side: ``add`` and ``settle``
    run there). A failure stays: every later ``settle`` raises it too."""

    def __init__(self) -> None:
        self._pending: list[Future[None]] = []
        self._failure: OSError | None = None

    def add(self, outcome: Future[None]) -> None:
        """Keep ``outcome`` (those already done well are dropped: a session of many requests
        keeps a few)."""
        self._reap()
        self._pending.append(outcome)

    def _reap(self) -> None:
        kept = []
        for outcome in self._pending:
            if not outcome.done():
                kept.append(outcome)
            elif outcome.cancelled():
                continue
            elif self._failure is None and (error := outcome.exception()) is not None:
                self._failure = error if isinstance(error, OSError) else OSError(str(error))
        self._pending = kept

    async def settle(self) -> None:
        """Wait for every background sync so far; raise the first that failed."""
        while self._pending:
            # Their failures are returned (``_reap`` takes them from the syncs' futures); a
            # cancelled wait leaves the syncs running.
            waiters = [asyncio.wrap_future(outcome) for outcome in self._pending]
            await asyncio.shield(asyncio.gather(*waiters, return_exceptions=True))
            self._reap()
        if self._failure is not None:
            raise self._failure
