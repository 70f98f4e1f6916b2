"""Upload sessions in the storage, never only in a process: ``_uploads/<uuid>/startedat`` and
the data writer (an S3 multipart upload, resumed from S3's own listing of it), so any replica
continues or finishes any upload. The running SHA-256 is kept in memory as a shortcut while one
replica sees every request of an upload; when another replica finishes it (or the hash no longer
matches the stored size), the committed data is read back and hashed. Distribution stores its
hash state in ``hashstates/``; Go's serialised SHA-256 state cannot be read from Python's
``hashlib``, so regtui writes none."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from embedded_registry import errors, heap, names
from embedded_registry.storage.driver.base import FileWriter, PathNotFoundError, StorageDriver
from embedded_registry.storage.driver.capabilities import MultipartUploads, list_files
from embedded_registry.storage.driver.lanes import Lane
from embedded_registry.storage.links import LINK_LIMIT, Links, startedat_text
from embedded_registry.storage.local_listings import LocalListings
from embedded_registry.storage.paths import KEYS, split_digest

WRITE_CHUNK = 2 << 20
"""Bytes of an upload gathered from the socket before one write and hash step (the routes
hand over the pieces aiohttp's parser received; a block is a list of them, never joined:
the writer gathers them with ``writev``, the hash takes them one by one)."""
HASH_AHEAD = 4 << 20
"""Bytes an upload's hash thread may have yet to hash before the upload waits for it."""
_HEAP_RELEASE = Lane()
"""Gives the heap back after a blob is finished (:func:`embedded_registry.heap.release`), off
the event loop: ``malloc_trim`` walks the whole heap (2-70 ms measured after a 256 MiB push on
a busy machine), which the closing request's answer would otherwise wait for."""


def parse_startedat(text: str) -> float | None:
    """The moment a ``startedat`` file names (Distribution's format), or None when unreadable."""
    text = text.strip()
    if not text:
        return None
    main, _, rest = text.partition(".")
    fraction = rest.rstrip("Z")[:6] if rest else ""
    try:
        moment = datetime.strptime(main.rstrip("Z"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.timestamp() + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)


def _hash_pieces(hasher: Any, pieces: Sequence[bytes]) -> None:
    for piece in pieces:
        hasher.update(piece)


class _Hashing:
    """A hash fed down its own :class:`~embedded_registry.storage.driver.lanes.Lane`:
    ``update`` hands the bytes over and returns at once while less than ``HASH_AHEAD`` bytes
    wait (no round trip to the event loop per block); ``settle`` waits for all of them. One
    lane: the blocks are hashed in order.

    It outlives a PATCH: the blocks of one are still being hashed while the answer goes out
    and the client sends the next; only the closing PUT waits for the last of them
    (``hexdigest``)."""

    def __init__(self, hasher: Any) -> None:
        self.hasher = hasher
        self._lane = Lane()
        self._pending: deque[tuple[Future[None], int]] = deque()
        self._queued = 0

    async def update(self, pieces: Sequence[bytes], length: int) -> None:
        """Hash ``pieces`` (``length`` bytes) after every block handed over before."""
        self._pending.append((self._lane.submit(_hash_pieces, self.hasher, pieces), length))
        self._queued += length
        while self._queued > HASH_AHEAD:
            await self._settle_one()

    async def _settle_one(self) -> None:
        future, length = self._pending[0]
        await asyncio.shield(asyncio.wrap_future(future))
        self._pending.popleft()
        self._queued -= length

    async def settle(self) -> None:
        """Every block handed over is hashed."""
        while self._pending:
            await self._settle_one()

    async def hexdigest(self) -> str:
        """The digest of every block handed over."""
        await self.settle()
        return str(self.hasher.hexdigest())


@dataclass
class _UploadState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    size: int = -1
    """The upload's size that ``hashing`` has been handed all of (-1: none)."""
    hashing: _Hashing | None = None


async def _pump(writer: FileWriter, hashing: _Hashing | None, chunks: AsyncIterator[bytes]) -> int:
    """Write ``chunks`` and hash them (``hashing`` may be None); the bytes written.

    Pieces are gathered into blocks of ``WRITE_CHUNK`` (lists of pieces, no bytes copied);
    each block goes to the hash's lane and to the writer (the filesystem's writer has a lane
    of its own), and both work while the loop reads the next block from the socket. Every
    byte is handed to the writer and to the hash when this returns (the writer's ``close`` or
    ``commit`` waits for its writes; ``hashing.hexdigest`` for the hash)."""
    buffer: list[bytes] = []
    buffered = written = 0

    async def put(pieces: list[bytes], length: int) -> None:
        nonlocal written
        if hashing is not None:
            await hashing.update(pieces, length)
        await writer.write(*pieces)
        written += length

    async for piece in chunks:
        buffer.append(piece)
        buffered += len(piece)
        if buffered >= WRITE_CHUNK:
            pieces, buffer = buffer, []
            length, buffered = buffered, 0
            await put(pieces, length)
    if buffered:
        await put(buffer, buffered)
    return written


class Uploads:
    """The upload sessions of every repository (the methods of
    :class:`~embedded_registry.storage.api.RegistryStorage` of the same names)."""

    def __init__(
        self, driver: StorageDriver, links: Links, local: LocalListings | None = None
    ) -> None:
        self.driver = driver
        self.links = links
        self.local = local
        self._states: dict[str, _UploadState] = {}
        # Asked once (a runtime-checkable Protocol's isinstance checks every member).
        self._multipart = isinstance(driver, MultipartUploads)

    def _state(self, upload_id: str) -> _UploadState:
        state = self._states.get(upload_id)
        if state is None:
            state = self._states[upload_id] = _UploadState()
        return state

    def lock(self, upload_id: str) -> asyncio.Lock:
        """Serialises this process's requests of one upload."""
        return self._state(upload_id).lock

    async def create(self, name: str) -> str:
        """A new session in ``name``: its ``startedat`` and an empty ``data``; its id."""
        upload_id = str(uuid.uuid4())
        await self.driver.put_content(
            KEYS.upload_startedat(name, upload_id), startedat_text().encode()
        )
        writer = await self.driver.writer(KEYS.upload_data(name, upload_id))
        await writer.close()
        state = self._state(upload_id)
        state.size, state.hashing = 0, _Hashing(hashlib.sha256())
        return upload_id

    async def _open(self, name: str, upload_id: str) -> FileWriter:
        try:
            return await self.driver.writer(KEYS.upload_data(name, upload_id), append=True)
        except PathNotFoundError:
            raise errors.blob_upload_unknown() from None

    async def size(self, name: str, upload_id: str) -> int:
        """Bytes received so far; BLOB_UPLOAD_UNKNOWN when there is no such upload."""
        if not self._multipart:  # at its key: a stat, no writer
            try:
                info = await self.driver.stat(KEYS.upload_data(name, upload_id))
            except PathNotFoundError:
                raise errors.blob_upload_unknown() from None
            if info.is_dir:
                raise errors.blob_upload_unknown()
            return info.size
        writer = await self._open(name, upload_id)
        await writer.close()
        return int(writer.size)

    async def append(
        self,
        name: str,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        *,
        start: int | None = None,
        length: int | None = None,
    ) -> int:
        """Append ``chunks``; the upload's size after (see ``RegistryStorage.append_upload``)."""
        writer = await self._open(name, upload_id)
        current = int(writer.size)
        if start is not None and start != current:
            await writer.close()
            raise errors.range_invalid(f"upload is at offset {current}, chunk starts at {start}")
        state = self._state(upload_id)
        hashing = state.hashing if state.size == current else None
        if hashing is None and current == 0:
            hashing = _Hashing(hashlib.sha256())
        # Until this request ends well, no hash stands for the upload (after a failure the
        # closing PUT hashes the file: what the hash was handed may not all be in it).
        state.hashing, state.size = None, -1
        try:
            written = await _pump(writer, hashing, chunks)
        finally:
            # What was received stays (as Distribution's writer keeps it): the client asks for
            # the upload's status and goes on from there.
            await writer.close()
        if hashing is not None:
            state.hashing, state.size = hashing, current + written
        if length is not None and written != length:
            raise errors.size_invalid(f"expected {length} bytes, received {written}")
        return current + written

    async def _hash(self, path: str, algorithm: str) -> str:
        hasher = hashlib.new(algorithm)
        async for block in self.driver.reader(path):
            await asyncio.to_thread(hasher.update, block)
        return hasher.hexdigest()

    async def finish(self, name: str, upload_id: str, digest: str) -> int:
        """Verify the upload, make it the blob, link it, end the session; the blob's size."""
        writer = await self._open(name, upload_id)
        size = int(writer.size)
        await writer.commit()
        data = KEYS.upload_data(name, upload_id)
        algorithm, hex_digest = split_digest(digest)
        state = self._state(upload_id)
        if algorithm == "sha256" and state.hashing is not None and state.size == size:
            actual = await state.hashing.hexdigest()
        else:
            actual = await self._hash(data, algorithm)
        if actual != hex_digest:
            await self.cancel(name, upload_id)
            raise errors.digest_invalid(f"{algorithm}:{actual} != {digest}")
        # Moved even when the blob exists (as Distribution does): the same bytes, and a fresh
        # LastModified that GC's grace period then protects (a re-push is a refresh).
        await self.driver.move(data, KEYS.blob_data(digest))
        await self._linked(name, upload_id, digest)
        return size

    async def _linked(self, name: str, upload_id: str, digest: str) -> None:
        """The blob is in place: link it into ``name`` and end the session."""
        await self.links.write_link(KEYS.layer_link(name, digest), digest)
        with contextlib.suppress(PathNotFoundError):
            await self.driver.delete(KEYS.upload_dir(name, upload_id))
        self._states.pop(upload_id, None)
        # What the upload's pieces held goes back to the kernel, in a thread the answer does
        # not wait for.
        _HEAP_RELEASE.submit(heap.release)

    async def finish_with(
        self,
        name: str,
        upload_id: str,
        digest: str,
        chunks: AsyncIterator[bytes],
        *,
        start: int | None = None,
        length: int | None = None,
    ) -> int:
        """The closing PUT with a body. When nothing was uploaded before it (a monolithic
        push) and the driver's writes are :class:`MultipartUploads`, the body goes straight
        into a multipart upload at the blob's own key, completed once its digest is verified:
        the blob is never copied (S3 has no rename, and a copy rewrites every byte), and it is
        invisible until complete. A crash leaves only an unfinished multipart upload there,
        which nobody reads and upload purging aborts; the upload session stays as it was
        (empty), so the client may push again on any replica."""
        writer = await self._open(name, upload_id)
        current = int(writer.size)
        await writer.close()
        algorithm, hex_digest = split_digest(digest)
        if current or start or algorithm not in hashlib.algorithms_available or not self._multipart:
            # A file written in place would be visible at the blob's key half-written: the
            # body goes to the upload, moved into place once verified.
            await self.append(name, upload_id, chunks, start=start, length=length)
            return await self.finish(name, upload_id, digest)
        blob = await self.driver.writer(KEYS.blob_data(digest))
        hasher = hashlib.new(algorithm)
        written = 0
        try:
            async for piece in chunks:
                await asyncio.gather(blob.write(piece), asyncio.to_thread(hasher.update, piece))
                written += len(piece)
            if length is not None and written != length:
                raise errors.size_invalid(f"expected {length} bytes, received {written}")
            actual = hasher.hexdigest()
            if actual != hex_digest:
                await self.cancel(name, upload_id)
                raise errors.digest_invalid(f"{algorithm}:{actual} != {digest}")
            await blob.commit()
        except BaseException:
            await asyncio.shield(blob.cancel())
            raise
        await self._linked(name, upload_id, digest)
        return written

    async def cancel(self, name: str, upload_id: str) -> bool:
        """Drop the upload and what it received; False when there was no such upload."""
        self._states.pop(upload_id, None)
        try:
            await self.driver.delete(KEYS.upload_dir(name, upload_id))
        except PathNotFoundError:
            return False
        return True

    async def sessions(self) -> list[tuple[str, str, str]]:
        """Every upload with a ``startedat``: ``(repository, upload id, startedat path)``.
        With local listings, every upload directory (one walk that skips ``_layers`` and
        ``_manifests``, in a worker thread)."""
        if self.local is not None:
            return await asyncio.to_thread(self.local.uploads)
        found = []
        base = KEYS.repositories_dir
        async for info in list_files(self.driver, base):
            relative = info.path[len(base) + 1 :]
            head, sep, tail = relative.rpartition("/_uploads/")
            upload_id, _, leaf = tail.partition("/")
            if sep and leaf == "startedat" and names.is_valid_name(head):
                found.append((head, upload_id, info.path))
        return found

    async def purge(self, older_than: float, *, dry_run: bool = False) -> list[tuple[str, str]]:
        """Remove uploads started more than ``older_than`` seconds ago, their multipart uploads
        with them, and multipart uploads under ``_uploads`` that lost their ``startedat``."""
        cutoff = time.time() - older_than
        purged: list[tuple[str, str]] = []
        known: set[str] = set()
        for name, upload_id, startedat in await self.sessions():
            known.add(upload_id)
            try:
                raw = await self.driver.get_content(startedat, limit=LINK_LIMIT)
                started = parse_startedat(raw.decode())
            except (PathNotFoundError, UnicodeDecodeError):
                started = None
            if started is None and self.local is not None:
                # No readable startedat (a writer killed before it): the directory's time.
                with contextlib.suppress(PathNotFoundError):
                    started = (await self.driver.stat(KEYS.upload_dir(name, upload_id))).mtime
            if started is not None and started < cutoff:
                purged.append((name, upload_id))
                if not dry_run:
                    await self.cancel(name, upload_id)
        driver = self.driver
        if isinstance(driver, MultipartUploads):
            for path, _mpu, initiated in await driver.multipart_uploads(KEYS.repositories_dir):
                head, sep, tail = path.rpartition("/_uploads/")
                upload_id = tail.partition("/")[0]
                if sep and upload_id not in known and 0 < initiated < cutoff:
                    name = head[len(KEYS.repositories_dir) + 1 :]
                    purged.append((name, upload_id))
                    if not dry_run:
                        await self.cancel(name, upload_id)
            # Monolithic pushes write at the blob's key (finish_with); one cut short by a
            # crash leaves its multipart upload there, invisible, until it is aborted here.
            for path, mpu, initiated in await driver.multipart_uploads(KEYS.blobs_dir):
                if 0 < initiated < cutoff and not dry_run:
                    await driver.abort_upload(path, mpu)
        return purged
