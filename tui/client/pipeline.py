"""Many small requests to registries, pipelined over a few kept-alive connections each, read
synchronously without asyncio, httpx or the auth code (together most of a short command's time).

What it is for: ``regtui sync`` run again over unchanged sources asks hundreds of small
questions (a tag list per repository, a digest per tag) and moves nothing. Through the full
client each costs ~0.35 ms of CPU (httpx's request and response objects, the event loop) and the
imports ~0.15 s; here a request is a few lines of bytes written with the others waiting for its
connection (HTTP/1.1 pipelining: up to ``depth`` requests in flight, their answers read in
order), on ``connections`` connections per origin, each read in a thread of its own (the socket
calls release the GIL, and the registry answers the connections in parallel: Distribution's Go
server on every core).

:class:`Pipelines` takes requests as the caller learns what to ask (the digests of a
repository's tags as soon as its tag list arrives): no phase waits for the slowest answer of
the one before, and every connection stays open for the whole run. Each answer is handed to its
callback in the caller's thread (:meth:`Pipelines.drain`), so the caller's state needs no lock.
A request goes to the connection of its origin with the fewest unanswered.

The sync check speaks only the plain case of :mod:`tui.client.quick` (no credentials anywhere,
no proxy, no ``--ca-cert``, not Docker Hub; see :func:`tui.client.quick.plain_origin`): nothing
is sent but the request line, ``Host``, ``User-Agent`` and ``Accept``. :mod:`tui.client.bulk`
(the app's tag details) also passes a TLS context (``--ca-cert``) and an ``Authorization`` per
request, the client's own for the registry's origin, the only one it connects to. Anything else
in an answer (a head that is not plain HTTP/1.x, an encoded or oversized body, a connection
closed with requests unanswered, a timeout) raises :class:`NotPlain`: the caller then asks the
full client, which says in its own words what is wrong. Each answer has ``timeout`` seconds
from the end of the previous one on its connection (or from the request's sending, on an idle
connection).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque, namedtuple
from collections.abc import Callable, Sequence

from tui.client.quick import _body, _connect, _head, _Reader

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads both)
if TYPE_CHECKING:
    import ssl

__all__ = ["Answer", "NotPlain", "Origin", "Pipelines", "Request", "fetch_all"]

Answer = namedtuple("Answer", ["status", "headers", "body"])
"""``status`` (int), ``headers`` (lower-cased ``bytes`` names -> ``bytes``), ``body`` (bytes)."""

Request = tuple[str, str, str] | tuple[str, str, str, str]
"""``(method, target, accept)``, or ``(method, target, accept, authorization)``: ``target``
the path and query, already quoted; ``authorization`` the value of an ``Authorization`` header
(a caller that has credentials for this very origin, see :mod:`tui.client.bulk`)."""

Origin = tuple[str, str, bool]
"""``(scheme, HOST[:PORT], insecure)``."""

OnAnswer = Callable[[Answer], None]

DEPTH = 32
"""Requests in flight at most on a connection (a few KiB each way: within every socket buffer,
so neither side ever waits on the other's reading)."""
CONNECTIONS = 4
"""Connections per origin: a registry answers each in parallel (Distribution's Go server on
every core; 2 to 4 keep a 2-core machine's busy), and each costs a thread here."""


class NotPlain(Exception):
    """An answer (or a failure) the pipeline does not read: the full client is asked instead."""


class _Lane:
    """One connection to an origin, its requests written and its answers read in its thread."""

    def __init__(self, origin: Origin, lock: threading.RLock) -> None:
        self.origin = origin
        self.pending: deque[tuple[Request, OnAnswer]] = deque()
        """Requests not yet written (under the pipelines' lock, as the rest)."""
        self.unanswered = 0
        """Requests handed to this lane whose answer is not yet handled."""
        self.ready = threading.Condition(lock)
        """Notified when requests wait for the lane, or the pipelines close."""
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None


class Pipelines:
    """Requests to any number of origins, pipelined on ``connections`` kept-alive connections
    each (opened as they are first needed). Each answer goes to its callback in the thread that
    read it, one callback at a time (under the pipelines' lock: a callback may ask more, and
    the caller's state needs no lock of its own); :meth:`drain` waits until none is awaited."""

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        connections: int = CONNECTIONS,
        depth: int = DEPTH,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self.tls = tls
        """The TLS context of HTTPS connections (``None``: the system's, or none with
        ``insecure``)."""
        self.connections = connections
        self.depth = depth
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        """Notified when no answer is awaited any more, or on a failure."""
        self._lanes: dict[Origin, list[_Lane]] = {}
        self._closed = False
        self._awaited = 0
        self._failure: BaseException | None = None
        self._current: _Lane | None = None
        """The connection whose answer's callback runs (under the lock), if one does."""

    def __enter__(self) -> Pipelines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ask(self, origin: Origin, request: Request, on_answer: OnAnswer) -> None:
        """``request`` to ``origin``; its answer goes to ``on_answer``."""
        self.ask_all(origin, [request], [on_answer])

    def ask_all(
        self,
        origin: Origin,
        requests: Sequence[Request],
        on_answers: Sequence[OnAnswer],
        *,
        spread: bool = False,
    ) -> None:
        """Several requests at once: from a callback of a connection to ``origin`` that has
        room for them all, on that connection (its thread sends them once the callback
        returns: no other thread is woken), unless ``spread``; else each to the connection
        with the fewest unanswered (``spread``: what the registry should answer in parallel,
        a catalog's tag lists)."""
        with self._lock:
            if self._closed:
                raise NotPlain("asked after the pipelines closed")
            lanes = self._lanes.get(origin)
            if lanes is None:
                lanes = [_Lane(origin, self._lock) for _ in range(self.connections)]
                self._lanes[origin] = lanes
            current = self._current
            here = (
                not spread
                and current is not None
                and current.origin == origin
                and current.unanswered + len(requests) <= self.depth
            )
            woken: set[int] = set()
            for request, on_answer in zip(requests, on_answers, strict=True):
                if here:
                    assert current is not None
                    lane = current
                else:
                    at = min(range(len(lanes)), key=lambda n: lanes[n].unanswered)
                    lane = lanes[at]
                    woken.add(at)
                lane.unanswered += 1
                lane.pending.append((request, on_answer))
            self._awaited += len(requests)
            for at in woken:
                lane = lanes[at]
                if lane.thread is None:
                    lane.thread = threading.Thread(
                        target=self._run, args=(lane,), name=f"pipeline {origin[1]}", daemon=True
                    )
                    lane.thread.start()
                elif lane is not current:
                    lane.ready.notify()

    def drain(self) -> None:
        """Wait until no answer is awaited; a failure (or an answer the pipeline does not read)
        raises :class:`NotPlain`, a callback's exception goes up as it is."""
        with self._lock:
            while self._awaited and self._failure is None and not self._closed:
                self._idle.wait()
            failure = self._failure
        if isinstance(failure, NotPlain):
            raise failure
        if isinstance(failure, (OSError, ValueError)):  # refused, reset, TLS, timeout
            raise NotPlain(f"{type(failure).__name__}: {failure}") from failure
        if failure is not None:
            raise failure

    def close(self) -> None:
        """Every connection closed (a read under way is cut short), every thread ended."""
        with self._lock:
            self._closed = True
            lanes = [lane for lanes in self._lanes.values() for lane in lanes]
            for lane in lanes:
                lane.ready.notify()
            self._idle.notify_all()  # a drain under way returns
        for lane in lanes:
            sock = lane.sock
            if sock is not None:
                with contextlib.suppress(OSError):  # closed already
                    sock.shutdown(socket.SHUT_RDWR)
        for lane in lanes:
            if lane.thread is not None:
                lane.thread.join()

    def _run(self, lane: _Lane) -> None:
        """A lane's thread: write what waits (up to ``depth`` in flight), read one answer,
        hand it to its callback and take what waits now (one hold of the lock for both), and
        again; idle while nothing is asked of it."""
        in_flight: deque[tuple[Request, OnAnswer]] = deque()
        reader: _Reader | None = None
        scheme, host, insecure = lane.origin
        try:
            with self._lock:
                batch = self._next(lane, in_flight)
            while batch is not None:
                if batch:
                    if lane.sock is None:
                        deadline = time.monotonic() + self.timeout
                        lane.sock = _connect(scheme, host, insecure, deadline, self.tls)
                        reader = _Reader(lane.sock, deadline)
                    lane.sock.settimeout(self.timeout)
                    lane.sock.sendall(b"".join(_request_bytes(host, *r) for r, _ in batch))
                    in_flight += batch
                assert reader is not None and lane.sock is not None
                request, on_answer = in_flight.popleft()
                method = request[0]
                reader.deadline = time.monotonic() + self.timeout
                status, headers, body = _answer(reader, method)
                with self._lock:
                    if _closes(headers):
                        if in_flight or lane.pending:
                            raise NotPlain("the registry closes the connection after each answer")
                        lane.sock.close()
                        lane.sock, reader = None, None  # the next request opens another
                    if self._failure is None and not self._closed:
                        self._current = lane
                        try:
                            on_answer(Answer(status, headers, body))
                        finally:
                            self._current = None
                    lane.unanswered -= 1
                    self._awaited -= 1
                    if not self._awaited:
                        self._idle.notify_all()
                    batch = self._next(lane, in_flight)
        except BaseException as error:  # handed to the caller's thread (drain)
            with self._lock:
                if self._failure is None and not self._closed:
                    self._failure = error
                self._idle.notify_all()
        finally:
            if lane.sock is not None:
                lane.sock.close()

    def _next(
        self, lane: _Lane, in_flight: deque[tuple[Request, OnAnswer]]
    ) -> list[tuple[Request, OnAnswer]] | None:
        """What the lane writes next (perhaps nothing: an answer is still to read), waiting
        while it has nothing to do; ``None`` once the pipelines close. Under the lock."""
        while not lane.pending and not in_flight and not self._closed:
            lane.ready.wait()
        if self._closed:
            return None
        room = min(len(lane.pending), self.depth - len(in_flight))
        return [lane.pending.popleft() for _ in range(room)]


def fetch_all(
    scheme: str,
    host: str,
    requests: Sequence[Request],
    *,
    insecure: bool = False,
    timeout: float = 30.0,
    connections: int = CONNECTIONS,
    depth: int = DEPTH,
) -> list[Answer]:
    """The answer to each of ``requests`` (in their order) from ``scheme://host``; raises
    :class:`NotPlain` for anything but plain answers (see the module)."""
    places: list[Answer | None] = [None] * len(requests)

    def keep(at: int) -> OnAnswer:
        def kept(answer: Answer) -> None:
            places[at] = answer

        return kept

    with Pipelines(timeout=timeout, connections=connections, depth=depth) as pipelines:
        pipelines.ask_all(
            (scheme, host, insecure), requests, [keep(n) for n in range(len(requests))]
        )
        pipelines.drain()
    return [answer for answer in places if answer is not None]


def _request_bytes(
    host: str, method: str, target: str, accept: str, authorization: str = ""
) -> bytes:
    credentials = f"Authorization: {authorization}\r\n" if authorization else ""
    return (
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: regtui\r\n"
        f"Accept: {accept}\r\n{credentials}\r\n"
    ).encode("ascii")


def _closes(headers: dict[bytes, bytes]) -> bool:
    return b"close" in headers.get(b"connection", b"").lower()


def _answer(reader: _Reader, method: str) -> tuple[int, dict[bytes, bytes], bytes]:
    while True:
        head = _head(reader)
        if head is None:
            raise NotPlain("not a plain HTTP/1.1 answer")
        status, headers = head
        if 100 <= status < 200 and status != 101:
            continue  # an informational answer: the real one follows
        break
    if method == "HEAD" or status in (204, 304):
        return status, headers, b""  # no body, whatever Content-Length says
    if headers.get(b"content-encoding", b"identity").lower() != b"identity":
        raise NotPlain("an encoded body")
    if b"content-length" not in headers and b"transfer-encoding" not in headers:
        raise NotPlain("a body that ends with the connection")
    body = _body(reader, headers)
    if body is None:
        raise NotPlain("a body too long or malformed")
    return status, headers, body
