"""Lanes: jobs that run one after another, in the order given, on long-lived shared threads.

An upload's writes and its hash each go down a lane: the event loop hands a block over and
goes on reading the socket; the lane's thread takes block after block while there are some
(no round trip to the event loop per block, and no thread started per request: on a busy
machine each wake-up and each new thread costs milliseconds). A lane holds a thread of the
shared pool only while it has work."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

LANE_THREADS = 32
"""Threads of the shared pool: lanes busy at once beyond this wait for a thread."""

_POOL = ThreadPoolExecutor(LANE_THREADS, thread_name_prefix="regtui-lane")


class Lane:
    """Runs what is submitted in order, one job at a time, on a thread of the shared pool (or
    of ``pool``: jobs that may block long, kept from taking the threads of the others)."""

    def __init__(self, pool: ThreadPoolExecutor | None = None) -> None:
        self._jobs: deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._running = False
        self._pool = _POOL if pool is None else pool

    def submit(self, function: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            self._jobs.append((future, function, args))
            if self._running:
                return future
            self._running = True
        self._pool.submit(self._run)
        return future

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._running = False
                    return
                future, function, args = self._jobs.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = function(*args)
            except BaseException as exc:  # handed to whoever waits for the job
                future.set_exception(exc)
            else:
                future.set_result(result)
