"""A first pull of a blob streamed to its client while the cache writes it (as Distribution's
proxy does), with nothing unverified stored and nothing unverified completed.

The fetch (:meth:`embedded_registry.proxy.cache.Mirror._fetch_blob`) writes the upstream's
pieces into an upload session, which hashes them as they pass, and hands each piece to a
:class:`BlobTee` on its way. The client's response (:func:`stream_response`) announces the
upstream's ``Content-Length`` and sends the pieces as they come, **one piece behind**: the last
piece is handed over only once the whole blob is in and its digest and size checked out (the tee
hashes the pieces as they pass; the storage, which verifies them again, then makes the blob
durable and visible without the client waiting for its fsync). When the digest or the size is
wrong, or the upstream breaks off, the upload is dropped and the response is cut short (the
connection closed before ``Content-Length`` bytes): a client never gets a complete wrong blob,
and the storage never holds one. A client that goes away only detaches from the tee: the fetch
goes on and the blob is committed when it verifies (or dropped when not), for the next pull.

A slow client slows the fetch (the tee holds ``TEE_DEPTH`` pieces at most): memory stays
bounded, as with Distribution's proxy.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from aiohttp import web

from embedded_registry import notifications

__all__ = ["TEE_DEPTH", "BlobTee", "stream_response"]

log = logging.getLogger(__name__)

TEE_DEPTH = 4
"""Pieces (each up to the cache's read size) waiting for a slow client before the fetch waits."""
THREADED_HASH = 256 * 1024
"""Pieces this large are hashed in a worker thread (hashlib lets go of the GIL)."""
BLOB_CONTENT_TYPE = "application/octet-stream"


class _Failed:
    """The fetch failed after the response started: the client's stream is cut short."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class BlobTee:
    """The pieces of one blob fetch, for the client that asked for it."""

    def __init__(self, digest: str) -> None:
        self.digest = digest
        algorithm = digest.partition(":")[0]
        self._hasher = hashlib.new(algorithm) if algorithm in ("sha256", "sha512") else None
        self._received = 0
        self._size: int | None = None
        self._ended = False
        self.ready: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        """The size the upstream announced (the response's ``Content-Length``); ``None`` when
        it announced none (the blob is served from the storage once fetched); the fetch's
        error when it failed before its first byte."""
        self._queue: asyncio.Queue[bytes | _Failed | None] = asyncio.Queue(TEE_DEPTH)
        self._held: bytes | None = None
        self._attached = True

    # -- the fetch's side -------------------------------------------------------------------
    def announce(self, size: int | None) -> None:
        self._size = size
        if not self.ready.done():
            self.ready.set_result(size)

    async def piece(self, chunk: bytes) -> None:
        """A piece went to the storage: hashed, and the one held before goes to the client."""
        if self._hasher is not None:
            if len(chunk) >= THREADED_HASH:
                await asyncio.to_thread(self._hasher.update, chunk)
            else:
                self._hasher.update(chunk)
        self._received += len(chunk)
        if self._held is not None:
            await self._put(self._held)
        self._held = chunk

    async def received_all(self) -> None:
        """The whole body is in the upload: when its size and digest check out, the client
        gets the last piece and the end now (the storage still verifies and commits)."""
        if self._hasher is None or self._received != self._size:
            return
        if f"{self.digest.partition(':')[0]}:{self._hasher.hexdigest()}" == self.digest:
            await self._end()

    async def committed(self) -> None:
        """The blob is committed (verified by the storage): the last piece, then the end."""
        await self._end()

    async def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        held, self._held = self._held, None
        if held is not None:
            await self._put(held)
        await self._put(None)

    def failed(self, error: BaseException) -> None:
        """The fetch failed: the client gets the error before its response started, a stream
        cut short after (unless it got the whole verified blob already). Never waits (the
        fetch is unwinding)."""
        self._held = None
        if self._ended:
            return
        if not self.ready.done():
            self.ready.set_exception(error)
            self.ready.exception()  # retrieved: a client gone meanwhile is no warning
            return
        self._drain()  # the pieces left unsent matter no more: the stream is cut anyway
        if self._attached:
            self._queue.put_nowait(_Failed(error))

    async def _put(self, item: bytes | None) -> None:
        if self._attached:
            await self._queue.put(item)

    # -- the client's side ------------------------------------------------------------------
    async def next(self) -> bytes | _Failed | None:
        return await self._queue.get()

    def detach(self) -> None:
        """The client is done (or gone): the fetch goes on without handing it pieces."""
        self._attached = False
        self._drain()

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()


async def stream_response(
    request: web.Request, name: str, digest: str, size: int, tee: BlobTee, upstream: str
) -> web.StreamResponse:
    """The response to a GET of the blob being fetched (see the module's docstring)."""
    headers = {
        "Content-Type": BLOB_CONTENT_TYPE,
        "Docker-Content-Digest": digest,
        "ETag": f'"{digest}"',
        "Cache-Control": "max-age=31536000",
    }
    response = web.StreamResponse(status=200, headers=headers)
    response.content_length = size
    try:
        notifications.blob_pulled(request, name, digest, size)
        await response.prepare(request)
        while True:
            item = await tee.next()
            if item is None:
                break
            if isinstance(item, _Failed):
                log.warning("%s: %s; the stream to the client was cut short", upstream, item.error)
                # Fewer bytes than Content-Length, then the connection closes: the client's
                # pull fails, as a pull of a truncated blob does.
                if request.transport is not None:
                    request.transport.abort()
                return response
            await response.write(item)
        await response.write_eof()
    finally:
        tee.detach()
    return response
