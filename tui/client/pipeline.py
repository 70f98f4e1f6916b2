"""Many small requests to one registry, pipelined over a few kept-alive connections, read
synchronously without asyncio, httpx or the auth code (together most of a short command's time).

What it is for: ``regtui sync`` run again over unchanged sources asks hundreds of small
questions (a tag list per repository, a digest per tag) and moves nothing. Through the full
client each costs ~0.35 ms of CPU (httpx's request and response objects, the event loop) and the
imports ~0.15 s; here a request is a few lines of bytes written with the others of its batch
(HTTP/1.1 pipelining: ``depth`` requests written at once, their answers read in order), the
batches of ``connections`` connections in their own threads (the socket calls release the GIL,
the registry answers them concurrently).

Only the plain case of :mod:`tui.client.quick` is spoken (no credentials anywhere, no proxy, no
``--ca-cert``, not Docker Hub; see :func:`tui.client.quick.plain_origin`): nothing is sent but the
request line, ``Host``, ``User-Agent`` and ``Accept``, never a credential. Anything else in an
answer (a head that is not plain HTTP/1.x, an encoded or oversized body, a connection closed with
requests unanswered, a timeout) raises :class:`NotPlain`: the caller then asks the full client,
which says in its own words what is wrong. Each answer has ``timeout`` seconds from the end of
the previous one.
"""

from __future__ import annotations

import threading
import time
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from tui.client.quick import _body, _connect, _head, _Reader

if TYPE_CHECKING:
    import socket

__all__ = ["Answer", "NotPlain", "Request", "fetch_all"]

Answer = namedtuple("Answer", ["status", "headers", "body"])
"""``status`` (int), ``headers`` (lower-cased ``bytes`` names -> ``bytes``), ``body`` (bytes)."""

Request = tuple[str, str, str]
"""``(method, target, accept)``: ``target`` the path and query, already quoted."""

DEPTH = 32
"""Requests written at once on a connection before its answers are read (a few KiB each way:
within every socket buffer, so neither side ever waits on the other's reading)."""
CONNECTIONS = 4


class NotPlain(Exception):
    """An answer (or a failure) the pipeline does not read: the full client is asked instead."""


T = TypeVar("T")


def in_threads(work: Callable[[T], object], items: Sequence[T]) -> None:
    """``work`` on each of ``items``, each in a thread of its own (in this one when there is
    one item); the first failure is raised here, once every thread is done."""
    failures: list[BaseException] = []

    def run(item: T) -> None:
        try:
            work(item)
        except BaseException as error:  # handed to the caller's thread below
            failures.append(error)

    if len(items) <= 1:
        for item in items:
            run(item)
    else:
        threads = [threading.Thread(target=run, args=(item,), daemon=True) for item in items]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]


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
    answers: list[Answer | None] = [None] * len(requests)
    lanes = [list(range(lane, len(requests), connections)) for lane in range(connections)]
    lanes = [lane for lane in lanes if lane]

    def run(lane: list[int]) -> None:
        _lane(scheme, host, requests, lane, answers, insecure, timeout, depth)

    try:
        in_threads(run, lanes)
    except (OSError, ValueError) as error:  # refused, reset, TLS, timeout, not HTTP
        if isinstance(error, NotPlain):
            raise
        raise NotPlain(f"{type(error).__name__}: {error}") from error
        if isinstance(error, (OSError, ValueError)):  # refused, reset, TLS, timeout, not HTTP
            raise NotPlain(f"{type(error).__name__}: {error}") from error
        raise error
    return [answer for answer in answers if answer is not None]


def _lane(
    scheme: str,
    host: str,
    requests: Sequence[Request],
    lane: list[int],
    answers: list[Answer | None],
    insecure: bool,
    timeout: float,
    depth: int,
) -> None:
    sock: socket.socket = _connect(scheme, host, insecure, time.monotonic() + timeout)
    with sock:
        reader = _Reader(sock, time.monotonic() + timeout)
        for start in range(0, len(lane), depth):
            batch = lane[start : start + depth]
            sock.settimeout(timeout)
            sock.sendall(b"".join(_request_bytes(host, *requests[i]) for i in batch))
            for position, index in enumerate(batch):
                reader.deadline = time.monotonic() + timeout
                method = requests[index][0]
                status, headers, body = _answer(reader, method)
                last = start + position == len(lane) - 1
                if not last and _closes(headers):
                    raise NotPlain("the registry closes the connection after each answer")
                answers[index] = Answer(status, headers, body)


def _request_bytes(host: str, method: str, target: str, accept: str) -> bytes:
    return (
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: regtui\r\n"
        f"Accept: {accept}\r\n\r\n"
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
