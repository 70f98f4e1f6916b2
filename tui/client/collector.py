"""The cyclic garbage collector paused while many long-lived objects are made at once.

A parse of a report of megabytes, or the rows of a repository of 10,000 tags, allocates
hundreds of thousands of objects that all live on. Every few hundred allocations the collector
runs, and now and then over every object not frozen: a tenth of a second of a thread that holds
the interpreter (the app's event loop waits). :func:`collector_paused` keeps it off meanwhile;
process-wide and counted, so that pauses in several threads or tasks at once restore it once,
and leave it off if it was off. Objects are still freed when nothing refers to them: only the
search for reference cycles waits.

A pause over objects that live on (a screen's rows) ends with :func:`freeze_and_resume`: what
exists then is moved out of the collector's reach (``gc.freeze``) without a collection first, so
the collector never walks them (a collection over the young objects made during a long pause
walks them all at once). Whoever freezes so unfreezes and collects once its objects are garbage.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused", "freeze_and_resume"]

_pauses = 0
_lock = threading.Lock()
_was_enabled = False


def _pause() -> None:
    global _pauses, _was_enabled
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1


def _resume() -> None:
    global _pauses
    with _lock:
        _pauses -= 1
        if _pauses == 0 and _was_enabled:
            gc.enable()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Automatic garbage collection off until the block ends (see the module docstring)."""
    _pause()
    try:
        yield
    finally:
        _resume()


@contextmanager
def freeze_and_resume() -> Iterator[None]:
    """:func:`collector_paused`, and everything that exists when the block ends frozen before
    the collector resumes."""
    _pause()
    try:
        yield
    finally:
        try:
            gc.freeze()
        finally:
            _resume()
