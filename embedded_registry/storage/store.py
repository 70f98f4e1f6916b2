"""Distribution's layout on any storage driver: what the bundled registry serves, from a
local directory (the filesystem driver) or from S3 (the s3 driver).

The keys are the ones of :mod:`embedded_registry.storage.paths` (Distribution's ``paths.go``),
so a directory or a bucket written by Distribution is served as it is, and the other way round.

What only one driver can do, it offers as an optional capability, used where offered: a local
path for sendfile, a cheap ``touch`` (blobs refreshed when served or mounted, so GC's grace
period protects them), ``directory_times`` (tags, catalog and referrers kept in memory and
checked with a ``stat`` per directory, uploads found by one pruned walk), writes invisible
until commit (a monolithic push streamed straight to the blob's key: S3 multipart uploads;
elsewhere the body goes to the upload and is moved into place once verified), presigned URLs.

Uploads keep their state in the storage, never only in a process: ``_uploads/<uuid>/startedat``
and the data writer (an S3 multipart upload, resumed from S3's own listing of it), so any
replica continues or finishes any upload. The running SHA-256 is kept in memory as a shortcut
while one replica sees every request of an upload; when another replica finishes it (or the
hash no longer matches the stored size), the committed data is read back and hashed.
Distribution stores its hash state in ``hashstates/``; Go's serialised SHA-256 state cannot be
read from Python's ``hashlib``, so regtui writes none.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from embedded_registry import errors, names
from embedded_registry.mediatypes import (
    ManifestInfo,
    describe_stored,
    parse_manifest,
    parse_stored_manifest,
)
from embedded_registry.storage.catalog import (
    RepositoryIndex,
    SharedRefresh,
    page,
    path_order_key,
)
from embedded_registry.storage.driver.base import (
    FileWriter,
    PathNotFoundError,
    StorageDriver,
    StorageDriverError,
)
from embedded_registry.storage.driver.capabilities import (
    CheapTouch,
    DirectoryTimes,
    LocalFiles,
    MultipartUploads,
    list_files,
    version_of,
)
from embedded_registry.storage.facade import RegistryStorage, ServedBlob
from embedded_registry.storage.lease import CommitGuard, CommitTooSlow
from embedded_registry.storage.paths import KEYS, split_digest
from embedded_registry.storage.pulls import PullTimes
from embedded_registry.storage.referrers import ReferrersIndex
from embedded_registry.storage.tagindex import TagIndex

REFRESH_FRACTION = 0.1
REFRESH_MAX_INTERVAL = 1.0
"""A blob served or mounted is refreshed (its mtime set to now, on drivers with a cheap
``touch``) once its mtime is older than this fraction of GC's grace period, or than
``REFRESH_MAX_INTERVAL`` seconds, whichever is less: GC then keeps it for a whole grace period,
and tells it from the blobs of a deleted image (GC frees a young blob at once unless it was
written or refreshed since the last commit of its repository,
:mod:`embedded_registry.gc.activity`). A hot blob costs one ``utime`` a second."""
WRITE_CHUNK = 2 << 20
"""Bytes of an upload gathered from the socket before one write and hash step (the routes
read bodies in pieces of this size, so a block is usually one piece: no copy)."""
LINK_LIMIT = 1024
CONCURRENCY = 16
"""Requests to the storage one operation keeps in flight (referrers, manifest checks)."""
MAX_MANIFEST_READ = 16 << 20
EXT_DOCUMENT_BYTES = 4 << 20
"""Manifests and configs the ext/tags document reads, bounded as the filesystem reader does."""
TAG_CHECKS = 16
"""Names new to a repository's tag listing checked one by one; more: one recursive listing."""
TAG_CACHE_SIZE = 4096
"""Repositories whose known tags are kept (the least recently listed go first)."""
TAG_RECHECK_SECONDS = 10.0
"""Known tags are trusted this long at most: then one recursive listing checks them all again.
Only regtui rewrites the commit marker; a tag Distribution (or a hand) deletes on an engine that
keeps empty "directories" (SeaweedFS) stays listed at most this long."""
INFO_CACHE_SIZE = 4096
"""Parsed manifests kept by digest (content is immutable, so entries never go stale)."""


def compute_digest(body: bytes, algorithm: str = "sha256") -> str:
    """``<algorithm>:<hex>`` of ``body``."""
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


def startedat_text() -> str:
    """Now, as Distribution writes an upload's ``startedat`` (and regtui its commit marker):
    RFC 3339 in UTC with nanoseconds."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


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


def _rfc3339(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Flight:
    """The tags listing of one repository under way, and the one queued behind it."""

    running: asyncio.Future[list[str] | None] | None = None
    queued: asyncio.Future[list[str] | None] | None = None


@dataclass
class _UploadState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    size: int = -1
    hasher: Any = None


async def _pump(writer: FileWriter, hasher: Any, chunks: AsyncIterator[bytes]) -> int:
    """Write ``chunks`` and hash them (``hasher`` may be None); the bytes written.

    Pieces are gathered into blocks of ``WRITE_CHUNK``; each block is written and hashed at
    once (both release the GIL: hashing overlaps with the write), while the loop reads the
    next block from the socket. Every byte is written when this returns."""
    pending: list[asyncio.Future[Any]] = []
    buffer: list[bytes] = []
    buffered = written = 0

    async def settle() -> None:
        futures = pending[:]
        pending.clear()
        for future in futures:
            await future

    def start(data: bytes) -> None:
        pending.append(asyncio.ensure_future(writer.write(data)))
        if hasher is not None:
            pending.append(asyncio.ensure_future(asyncio.to_thread(hasher.update, data)))

    try:
        async for piece in chunks:
            buffer.append(piece)
            buffered += len(piece)
            if buffered >= WRITE_CHUNK:
                data = b"".join(buffer) if len(buffer) > 1 else buffer[0]
                buffer.clear()
                buffered = 0
                await settle()
                start(data)
                written += len(data)
        await settle()
        if buffered:
            data = b"".join(buffer)
            start(data)
            written += len(data)
            await settle()
    except BaseException:
        # Let the work in flight end before the writer is closed; the caller drops the hash.
        for future in pending:
            with contextlib.suppress(BaseException):
                await asyncio.shield(future)
        raise
    return written


async def _refresh(driver: CheapTouch, data: str, mtime: float, grace_period: float) -> bool:
    """Keep a blob a client has just been told about out of GC's reach; whether it is
    still there (drivers with a ``cheap_touch`` only: on object storage a touch is a
    rewrite, and GC's lease and grace period protect what is served).

    A client that HEADs a blob and sees 200 skips its upload and pushes a manifest next;
    GC must not sweep the blob in between. Its time is set to now when older than
    ``REFRESH_FRACTION`` of ``grace_period`` or ``REFRESH_MAX_INTERVAL`` seconds (never
    with a grace period of 0: then nothing is protected); GC checks the time again right
    before removing a blob.
    """
    interval = min(grace_period * REFRESH_FRACTION, REFRESH_MAX_INTERVAL)
    if grace_period <= 0 or time.time() - mtime < interval:
        return True
    return await driver.touch(data)


class _LocalIndexes:
    """The listings a ``directory_times`` driver keeps in memory, on its local paths: each
    repository's tags (a ``stat`` of its ``tags`` directory per request), the catalog (a
    ``stat`` per directory) and the referrers (a few ``stat`` calls per request)."""

    def __init__(self, driver: LocalFiles, read_manifest: Callable[[str], Any]) -> None:
        self.repositories = driver.local_path(KEYS.repositories_dir)
        self.tags = TagIndex()
        self.catalog = SharedRefresh(RepositoryIndex(self.repositories))
        self.referrers = ReferrersIndex(self.repositories, read_manifest)

    def tags_dir(self, name: str) -> str:
        return f"{self.repositories}/{name}/_manifests/tags"

    def uploads(self) -> list[tuple[str, str, str]]:
        """``(repository, upload id, startedat key)`` of every upload directory (blocking)."""
        found: list[tuple[str, str, str]] = []
        for directory, subdirs, _files in os.walk(self.repositories):
            if os.path.basename(directory) == "_uploads":
                name = os.path.relpath(os.path.dirname(directory), self.repositories)
                name = name.replace(os.sep, "/")
                if names.is_valid_name(name):
                    found += [
                        (name, upload, KEYS.upload_startedat(name, upload))
                        for upload in sorted(subdirs)
                        if names.is_valid_upload_id(upload)
                    ]
                subdirs.clear()
            else:
                subdirs[:] = sorted(d for d in subdirs if d == "_uploads" or not d.startswith("_"))
        return found


class DriverStorage(RegistryStorage):
    def __init__(
        self, driver: StorageDriver, *, redirect: bool = False, coordinate: bool = False
    ) -> None:
        self.driver = driver
        self.kind = driver.name
        self.redirect = redirect
        self.coordinate = coordinate
        """Honour the GC lease of other replicas around commits (storage.lease)."""
        self._uploads: dict[str, _UploadState] = {}
        self._info: OrderedDict[str, ManifestInfo] = OrderedDict()
        self._tag_cache: OrderedDict[tuple[str, str], tuple[str | None, frozenset[str], float]] = (
            OrderedDict()
        )
        """Per ("tags" or "revisions", repository): the commit marker's version, the names
        known to have their link, and when they were last all listed (``time.monotonic``)."""
        self._tag_flights: dict[str, _Flight] = {}
        self.pulls = PullTimes(driver)
        """When each manifest was last pulled: in memory, written in batches (storage.pulls)."""
        self._local: _LocalIndexes | None = None
        if isinstance(driver, LocalFiles) and isinstance(driver, DirectoryTimes):
            self._local = _LocalIndexes(driver, self._read_manifest_now)

    def _read_manifest_now(self, digest: str) -> ManifestInfo | None:
        """A manifest's description read from its local file (a worker thread's call of the
        referrers index; ``directory_times`` drivers only)."""
        cached = self._info.get(digest)
        if cached is not None:
            return cached
        if not isinstance(self.driver, LocalFiles):
            return None
        path = self.driver.local_path(KEYS.blob_data(digest))
        try:
            with open(path, "rb") as handle:
                body = handle.read(MAX_MANIFEST_READ + 1)
        except OSError:
            return None
        if len(body) > MAX_MANIFEST_READ:
            return None
        return describe_stored(body)

    async def close(self) -> None:
        await self.driver.close()

    async def health(self) -> str | None:
        try:
            await self.driver.check()
        except StorageDriverError as exc:
            return str(exc)
        return None

    # -- links and blobs ----------------------------------------------------------------------
    async def _read_link(self, path: Any) -> str | None:
        try:
            raw = await self.driver.get_content(path, limit=LINK_LIMIT)
        except PathNotFoundError:
            return None
        text = raw.decode("ascii", errors="replace").strip()
        return text if names.is_valid_digest(text) else None

    async def _write_link(self, path: Any, digest: str) -> None:
        if await self._read_link(path) != digest:
            await self.driver.put_content(path, digest.encode())

    async def blob_size(self, digest: str) -> int | None:
        """The size of the blob ``digest``; None when it is not stored."""
        try:
            info = await self.driver.stat(KEYS.blob_data(digest))
        except PathNotFoundError:
            return None
        return None if info.is_dir else info.size

    async def linked_size(self, name: str, digest: str) -> int | None:
        """The blob's size if ``name`` links it and it is stored, else None."""
        if await self._read_link(KEYS.layer_link(name, digest)) != digest:
            return None
        return await self.blob_size(digest)

    async def served_blob(self, name: str, digest: str, grace_period: float) -> ServedBlob | None:
        if await self._read_link(KEYS.layer_link(name, digest)) != digest:
            return None
        data = KEYS.blob_data(digest)
        try:
            info = await self.driver.stat(data)
        except PathNotFoundError:
            return None
        if info.is_dir:
            return None
        driver = self.driver
        if isinstance(driver, CheapTouch) and not await _refresh(
            driver, data, info.mtime, grace_period
        ):
            return None
        local = driver.local_path(data) if isinstance(driver, LocalFiles) else None
        return ServedBlob(digest, info.size, local)

    def blob_reader(self, digest: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        return self.driver.reader(KEYS.blob_data(digest), offset, length)

    async def blob_redirect(self, digest: str) -> str | None:
        if not self.redirect:
            return None
        return await self.driver.redirect_url(KEYS.blob_data(digest))

    async def unlink_blob(self, name: str, digest: str) -> bool:
        path = KEYS.layer_link(name, digest)
        if await self._read_link(path) is None:
            return False
        with contextlib.suppress(PathNotFoundError):
            await self.driver.delete(path)
        return True

    async def mount(self, source: str, name: str, digest: str) -> bool:
        if await self.linked_size(source, digest) is None:
            return False
        # Touched before linking (where a touch is cheap): a blob GC takes away meanwhile is
        # not mounted (the client uploads it), and a mounted one is young again.
        driver = self.driver
        if isinstance(driver, CheapTouch) and not await driver.touch(KEYS.blob_data(digest)):
            return False
        await self._write_link(KEYS.layer_link(name, digest), digest)
        return True

    # -- uploads ------------------------------------------------------------------------------
    def _state(self, upload_id: str) -> _UploadState:
        state = self._uploads.get(upload_id)
        if state is None:
            state = self._uploads[upload_id] = _UploadState()
        return state

    def upload_lock(self, upload_id: str) -> asyncio.Lock:
        return self._state(upload_id).lock

    async def create_upload(self, name: str) -> str:
        upload_id = str(uuid.uuid4())
        await self.driver.put_content(
            KEYS.upload_startedat(name, upload_id), startedat_text().encode()
        )
        writer = await self.driver.writer(KEYS.upload_data(name, upload_id))
        await writer.close()
        state = self._state(upload_id)
        state.size, state.hasher = 0, hashlib.sha256()
        return upload_id

    async def _open(self, name: str, upload_id: str) -> Any:
        try:
            return await self.driver.writer(KEYS.upload_data(name, upload_id), append=True)
        except PathNotFoundError:
            raise errors.blob_upload_unknown() from None

    async def upload_size(self, name: str, upload_id: str) -> int:
        if self._local is not None:  # a local file: its size is a stat, no writer to open
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

    async def append_upload(
        self,
        name: str,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        *,
        start: int | None = None,
        length: int | None = None,
    ) -> int:
        writer = await self._open(name, upload_id)
        current = int(writer.size)
        if start is not None and start != current:
            await writer.close()
            raise errors.range_invalid(f"upload is at offset {current}, chunk starts at {start}")
        state = self._state(upload_id)
        hasher = state.hasher if state.size == current and state.hasher is not None else None
        if hasher is None and current == 0:
            hasher = hashlib.sha256()
        state.hasher, state.size = None, -1
        try:
            written = await _pump(writer, hasher, chunks)
        finally:
            # What was received stays (as Distribution's writer keeps it): the client asks for
            # the upload's status and goes on from there.
            await writer.close()
        if hasher is not None:
            state.hasher, state.size = hasher, current + written
        if length is not None and written != length:
            raise errors.size_invalid(f"expected {length} bytes, received {written}")
        return current + written

    async def _hash(self, path: str, algorithm: str) -> str:
        hasher = hashlib.new(algorithm)
        async for block in self.driver.reader(path):
            await asyncio.to_thread(hasher.update, block)
        return hasher.hexdigest()

    async def finish_upload(self, name: str, upload_id: str, digest: str) -> int:
        writer = await self._open(name, upload_id)
        size = int(writer.size)
        await writer.commit()
        data = KEYS.upload_data(name, upload_id)
        algorithm, hex_digest = split_digest(digest)
        state = self._state(upload_id)
        if algorithm == "sha256" and state.hasher is not None and state.size == size:
            actual = state.hasher.hexdigest()
        else:
            actual = await self._hash(data, algorithm)
        if actual != hex_digest:
            await self.cancel_upload(name, upload_id)
            raise errors.digest_invalid(f"{algorithm}:{actual} != {digest}")
        # Moved even when the blob exists (as Distribution does): the same bytes, and a fresh
        # LastModified that GC's grace period then protects (a re-push is a refresh).
        await self.driver.move(data, KEYS.blob_data(digest))
        await self._write_link(KEYS.layer_link(name, digest), digest)
        with contextlib.suppress(PathNotFoundError):
            await self.driver.delete(KEYS.upload_dir(name, upload_id))
        self._uploads.pop(upload_id, None)
        return size

    async def finish_upload_with(
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
        push), the body goes straight into a multipart upload at the blob's own key, completed
        once its digest is verified: the blob is never copied (S3 has no rename, and a copy
        rewrites every byte), and it is invisible until complete. A crash leaves only an
        unfinished multipart upload there, which nobody reads and upload purging aborts;
        the upload session stays as it was (empty), so the client may push again on any
        replica."""
        writer = await self._open(name, upload_id)
        current = int(writer.size)
        await writer.close()
        algorithm, hex_digest = split_digest(digest)
        if (
            current
            or start
            or algorithm not in hashlib.algorithms_available
            or not isinstance(self.driver, MultipartUploads)
        ):
            # A file written in place would be visible at the blob's key half-written: the
            # body goes to the upload, moved into place once verified.
            return await super().finish_upload_with(
                name, upload_id, digest, chunks, start=start, length=length
            )
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
                await self.cancel_upload(name, upload_id)
                raise errors.digest_invalid(f"{algorithm}:{actual} != {digest}")
            await blob.commit()
        except BaseException:
            await asyncio.shield(blob.cancel())
            raise
        await self._write_link(KEYS.layer_link(name, digest), digest)
        with contextlib.suppress(PathNotFoundError):
            await self.driver.delete(KEYS.upload_dir(name, upload_id))
        self._uploads.pop(upload_id, None)
        return written

    async def cancel_upload(self, name: str, upload_id: str) -> bool:
        self._uploads.pop(upload_id, None)
        try:
            await self.driver.delete(KEYS.upload_dir(name, upload_id))
        except PathNotFoundError:
            return False
        return True

    async def iter_uploads(self) -> list[tuple[str, str, str]]:
        """Every upload with a ``startedat``: ``(repository, upload id, startedat path)``.
        On local storage, every upload directory (one walk that skips ``_layers`` and
        ``_manifests``, in a worker thread)."""
        if self._local is not None:
            return await asyncio.to_thread(self._local.uploads)
        found = []
        base = KEYS.repositories_dir
        async for info in list_files(self.driver, base):
            relative = info.path[len(base) + 1 :]
            head, sep, tail = relative.rpartition("/_uploads/")
            upload_id, _, leaf = tail.partition("/")
            if sep and leaf == "startedat" and names.is_valid_name(head):
                found.append((head, upload_id, info.path))
        return found

    async def purge_uploads(
        self, older_than: float, *, dry_run: bool = False
    ) -> list[tuple[str, str]]:
        """Remove uploads started more than ``older_than`` seconds ago, their multipart uploads
        with them, and multipart uploads under ``_uploads`` that lost their ``startedat``."""
        cutoff = time.time() - older_than
        purged: list[tuple[str, str]] = []
        known: set[str] = set()
        for name, upload_id, startedat in await self.iter_uploads():
            known.add(upload_id)
            try:
                raw = await self.driver.get_content(startedat, limit=LINK_LIMIT)
                started = parse_startedat(raw.decode())
            except (PathNotFoundError, UnicodeDecodeError):
                started = None
            if started is None and self._local is not None:
                # No readable startedat (a writer killed before it): the directory's time.
                with contextlib.suppress(PathNotFoundError):
                    started = (await self.driver.stat(KEYS.upload_dir(name, upload_id))).mtime
            if started is not None and started < cutoff:
                purged.append((name, upload_id))
                if not dry_run:
                    await self.cancel_upload(name, upload_id)
        driver = self.driver
        if isinstance(driver, MultipartUploads):
            for path, _mpu, initiated in await driver.multipart_uploads(KEYS.repositories_dir):
                head, sep, tail = path.rpartition("/_uploads/")
                upload_id = tail.partition("/")[0]
                if sep and upload_id not in known and 0 < initiated < cutoff:
                    name = head[len(KEYS.repositories_dir) + 1 :]
                    purged.append((name, upload_id))
                    if not dry_run:
                        await self.cancel_upload(name, upload_id)
            # Monolithic pushes write at the blob's key (finish_upload_with); one cut short by a
            # crash leaves its multipart upload there, invisible, until it is aborted here.
            for path, mpu, initiated in await driver.multipart_uploads(KEYS.blobs_dir):
                if 0 < initiated < cutoff and not dry_run:
                    await driver.abort_upload(path, mpu)
        return purged

    # -- manifests ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _commit(self) -> AsyncIterator[CommitGuard | None]:
        """Around a manifest commit: wait while another replica's GC holds the lease."""
        if not self.coordinate:
            yield None
            return
        guard = CommitGuard(self.driver)
        try:
            await guard.begin()
        except TimeoutError:
            raise errors.too_many_requests(
                "a garbage collection is running on this storage: retry later"
            ) from None
        try:
            yield guard
        except CommitTooSlow:
            raise errors.too_many_requests(
                "a garbage collection began while this commit ran: retry"
            ) from None

    async def has_revision(self, name: str, digest: str) -> bool:
        """Whether ``name`` holds the manifest revision ``digest``."""
        return await self._read_link(KEYS.revision_link(name, digest)) == digest

    async def tag_digest(self, name: str, tag: str) -> str | None:
        """The digest ``tag`` points at in ``name`` now (its ``current/link``), or None."""
        return await self._read_link(KEYS.tag_current_link(name, tag))

    async def resolve(self, name: str, reference: str) -> str:
        """The digest of the revision a tag or digest names in ``name``; MANIFEST_UNKNOWN
        when there is none."""
        if names.looks_like_digest(reference):
            if not await self.has_revision(name, reference):
                raise errors.manifest_unknown({"Name": name, "Revision": reference})
            return reference
        digest = await self.tag_digest(name, reference)
        if digest is None or not await self.has_revision(name, digest):
            raise errors.manifest_unknown({"Tag": reference})
        return digest

    async def _read_blob(self, digest: str) -> bytes | None:
        """A manifest's bytes; None when missing or larger than any manifest may be (a
        revision link naming a layer is not read whole into memory)."""
        try:
            data = await self.driver.get_content(
                KEYS.blob_data(digest), limit=MAX_MANIFEST_READ + 1
            )
        except PathNotFoundError:
            return None
        return data if len(data) <= MAX_MANIFEST_READ else None

    def _remember(self, digest: str, info: ManifestInfo) -> None:
        self._info[digest] = info
        if len(self._info) > INFO_CACHE_SIZE:
            self._info.popitem(last=False)

    async def info(self, digest: str, body: bytes | None = None) -> ManifestInfo | None:
        """What the stored manifest ``digest`` is (cached by digest); None when unreadable."""
        cached = self._info.get(digest)
        if cached is not None:
            self._info.move_to_end(digest)
            return cached
        if body is None:
            body = await self._read_blob(digest)
            if body is None:
                return None
        info = describe_stored(body)
        self._remember(digest, info)
        return info

    async def get_manifest(self, name: str, reference: str) -> tuple[str, bytes, ManifestInfo]:
        digest = await self.resolve(name, reference)
        body = await self._read_blob(digest)
        if body is None:
            raise errors.manifest_unknown({"Name": name, "Revision": digest})
        info = await self.info(digest, body)
        assert info is not None
        return digest, body, info

    async def put_manifest(
        self,
        name: str,
        reference: str,
        body: bytes,
        content_type: str,
        *,
        verify_references: bool = True,
    ) -> tuple[str, ManifestInfo]:
        is_digest = names.looks_like_digest(reference)
        algorithm = reference.split(":", 1)[0] if is_digest else "sha256"
        digest = compute_digest(body, algorithm)
        if is_digest and digest != reference:
            raise errors.digest_invalid()
        info = parse_manifest(body, content_type)
        async with self._commit() as guard:
            return await self._put_manifest(
                name, reference, body, digest, info, guard, verify_references
            )

    async def _put_manifest(
        self,
        name: str,
        reference: str,
        body: bytes,
        digest: str,
        info: ManifestInfo,
        guard: CommitGuard | None,
        verify_references: bool = True,
    ) -> tuple[str, ManifestInfo]:
        is_digest = names.looks_like_digest(reference)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def blob_missing(blob: str) -> bool:
            async with limit:
                return await self.linked_size(name, blob) is None

        async def child_missing(child: str) -> bool:
            async with limit:
                return not await self.has_revision(name, child) or (
                    await self.blob_size(child) is None
                )

        blobs = list(info.blobs) if verify_references else []
        children = list(info.children) if verify_references else []
        results = await asyncio.gather(
            *(blob_missing(b) for b in blobs), *(child_missing(c) for c in children)
        )
        missing = [
            errors.manifest_blob_unknown(d)
            for d, gone in zip(blobs + children, results, strict=True)
            if gone
        ]
        if missing:
            raise errors.RegistryError.combine(missing)
        if await self.blob_size(digest) is None:
            await self.driver.put_content(KEYS.blob_data(digest), body)
        if guard is not None:
            guard.before_last_write()
        revision = KEYS.revision_link(name, digest)
        new_revision = not is_digest and await self._read_link(revision) != digest
        await self.driver.put_content(revision, digest.encode())
        self._remember(digest, info)
        if not is_digest:
            try:
                await self.tag(name, reference, digest)
            except StorageDriverError:
                # The disk filled up while tagging: the PUT fails, so leave no new revision a
                # client could find by digest (a tag without its current link is never listed).
                if new_revision:
                    with contextlib.suppress(PathNotFoundError):
                        await self.driver.delete(revision)
                raise
        return digest, info

    async def _record_commit(self, name: str) -> None:
        await self.driver.put_content(KEYS.commit_marker(name), startedat_text().encode())

    async def tag(self, name: str, tag: str, digest: str) -> None:
        """Point ``tag`` at ``digest`` and add it to the tag's history (no commit lock: the
        caller holds it)."""
        # The current link first (Distribution writes the index entry first): a tag listed
        # by its directory then always resolves, even after a crash between the two writes.
        await self.driver.put_content(KEYS.tag_current_link(name, tag), digest.encode())
        await self._write_link(KEYS.tag_index_link(name, tag, digest), digest)

    async def delete_tag(self, name: str, tag: str) -> None:
        async with self._commit():
            await self._delete_tag(name, tag)

    async def _delete_tag(self, name: str, tag: str) -> None:
        if await self.tag_digest(name, tag) is None:
            raise errors.manifest_unknown({"Tag": tag})
        with contextlib.suppress(PathNotFoundError):
            await self.driver.delete(KEYS.tag_dir(name, tag))
        await self._record_commit(name)

    async def delete_manifest(self, name: str, digest: str) -> list[str]:
        async with self._commit():
            removed = await self._delete_manifest(name, digest)
        self.pulls.forget(name, {digest})
        return removed

    def record_pull(self, name: str, digest: str) -> None:
        self.pulls.record(name, digest)

    async def flush_pulls(self) -> int:
        return await self.pulls.flush()

    async def _delete_manifest(self, name: str, digest: str) -> list[str]:
        link = KEYS.revision_link(name, digest)
        if await self._read_link(link) != digest:
            raise errors.manifest_unknown()
        removed = []
        for tag in await self.tags(name) or []:
            if await self.tag_digest(name, tag) == digest:
                removed.append(tag)
                with contextlib.suppress(PathNotFoundError):
                    await self.driver.delete(KEYS.tag_dir(name, tag))
        with contextlib.suppress(PathNotFoundError):
            await self.driver.delete(link)
        await self._record_commit(name)
        return removed

    async def tags(self, name: str) -> list[str] | None:
        """Tags with a ``current/link``, sorted; ``None`` when the repository holds neither
        manifests nor layer links.

        Concurrent calls for one repository share the storage requests: a call joins the one
        that starts after it arrived (never one already under way, whose answer may predate
        it), so at most one runs and one waits per repository.

        On a driver with ``directory_times`` (the filesystem), the listing is kept in memory
        and checked with one ``stat`` of the ``tags`` directory
        (:mod:`embedded_registry.storage.tagindex`); ``None`` there means no ``tags``
        directory, as Distribution answers.
        """
        if self._local is not None:
            return self._local.tags.tags(self._local.tags_dir(name))
        flight = self._tag_flights.get(name)
        if flight is None:
            flight = self._tag_flights[name] = _Flight()
        if flight.running is None:
            flight.running = self._fly(name, flight, self._tags_now(name))
            return await asyncio.shield(flight.running)
        if flight.queued is None:
            running = flight.running

            async def after() -> list[str] | None:
                with contextlib.suppress(Exception):
                    await running
                return await self._tags_now(name)

            flight.queued = self._fly(name, flight, after())
        return await asyncio.shield(flight.queued)

    def _fly(
        self, name: str, flight: _Flight, work: Coroutine[Any, Any, list[str] | None]
    ) -> asyncio.Future[list[str] | None]:
        future = asyncio.ensure_future(work)

        def done(finished: asyncio.Future[list[str] | None]) -> None:
            if not finished.cancelled():
                finished.exception()  # retrieved: every waiter may have gone meanwhile
            if flight.running is finished:
                flight.running, flight.queued = flight.queued, None
                if flight.running is None and self._tag_flights.get(name) is flight:
                    del self._tag_flights[name]

        future.add_done_callback(done)
        return future

    async def _tags_now(self, name: str) -> list[str] | None:
        """One delimited listing of ``tags/`` and the version of the commit marker, at once.

        A tag is listed when its ``current/link`` exists. Checking every tag costs a request
        each, and a recursive listing costs the engine a walk of every tag's directories
        (SeaweedFS's filer lists each one), so what is known is kept: while the commit marker
        (rewritten after every tag or manifest delete) is unchanged, no tag known to have a
        link lost it, and only the names new to the listing are checked. A name whose link is
        gone (a deleted tag whose empty directory an engine such as SeaweedFS keeps) is checked
        again on every call, never assumed absent: a push may bring it back.
        """
        base = KEYS.tags_dir(name)
        listed, version = await asyncio.gather(self._children(base), self._marker_version(name))
        leaves = (path.rsplit("/", 1)[-1] for path in listed)
        candidates = {leaf for leaf in leaves if names.is_valid_tag(leaf)}

        async def has_link(tag: str) -> bool:
            return await self.tag_digest(name, tag) is not None

        async def full() -> set[str]:
            return set(await self._listed_tags(name))

        present = await self._known(("tags", name), version, candidates, has_link, full)
        if not present and not (
            await self._has_files(KEYS.manifests_dir(name))
            or await self._has_files(KEYS.layers_dir(name))
        ):
            return None
        return sorted(present)

    async def _marker_version(self, name: str) -> str | None:
        return await version_of(self.driver, KEYS.commit_marker(name))

    async def _known(
        self,
        cache_key: tuple[str, str],
        version: str | None,
        candidates: set[str],
        check: Callable[[str], Awaitable[bool]],
        full: Callable[[], Awaitable[set[str]]],
    ) -> set[str]:
        """The ``candidates`` (names a delimited listing shows) that really have their link:
        the ones known to while the commit marker stays at ``version``, the others checked
        (more than ``TAG_CHECKS`` of them: ``full()``, a recursive listing)."""
        known = self._tag_cache.get(cache_key)
        present: set[str] | None = None
        now = time.monotonic()
        if known is not None and known[0] == version and now - known[2] < TAG_RECHECK_SECONDS:
            unknown = sorted(candidates - known[1])
            if len(unknown) <= TAG_CHECKS:
                found = await asyncio.gather(*(check(n) for n in unknown))
                present = set(known[1] & candidates) | {
                    n for n, ok in zip(unknown, found, strict=True) if ok
                }
        checked_at = known[2] if present is not None and known is not None else now
        if present is None:
            present = await full()
        self._tag_cache[cache_key] = (version, frozenset(present), checked_at)
        self._tag_cache.move_to_end(cache_key)
        while len(self._tag_cache) > TAG_CACHE_SIZE:
            self._tag_cache.popitem(last=False)
        return present

    async def _children(self, path: str) -> list[str]:
        try:
            return await self.driver.list(path)
        except PathNotFoundError:
            return []

    async def _listed_tags(self, name: str) -> list[str]:
        """The tags with a ``current/link`` from one recursive listing of ``tags/``."""
        base = KEYS.tags_dir(name)
        found = []
        async for info in list_files(self.driver, base):
            tag, _, rest = info.path[len(base) + 1 :].partition("/")
            if rest == "current/link" and names.is_valid_tag(tag):
                found.append(tag)
        return found

    async def _has_files(self, path: str) -> bool:
        async for _info in list_files(self.driver, path):
            return True
        return False

    async def revisions(self, name: str) -> list[str]:
        """The digests with a revision link, sorted, from one recursive listing. (Not the
        tags' shortcut: GC deletes revision links without rewriting the commit marker.)"""
        return sorted(await self._listed_revisions(name))

    async def _listed_revisions(self, name: str) -> list[str]:
        base = KEYS.revisions_dir(name)
        found = []
        async for info in list_files(self.driver, base):
            parts = info.path[len(base) + 1 :].split("/")
            if len(parts) == 3 and parts[2] == "link":
                digest = f"{parts[0]}:{parts[1]}"
                if names.is_valid_digest(digest):
                    found.append(digest)
        return found

    async def referrers(self, name: str, subject: str) -> list[dict[str, object]]:
        if self._local is not None:
            return await asyncio.to_thread(self._local.referrers.referrers, name, subject)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def describe(digest: str) -> ManifestInfo | None:
            async with limit:
                return await self.info(digest)

        digests = await self.revisions(name)
        infos = await asyncio.gather(*(describe(d) for d in digests))
        return [
            info.referrer_descriptor(digest)
            for digest, info in zip(digests, infos, strict=True)
            if info is not None and info.subject == subject
        ]

    async def describe_repository(self, name: str) -> dict[str, Any] | None:
        """The ``ext/tags`` document of ``name`` (see :mod:`embedded_registry.routes.ext_tags`)
        on this storage: push times are the LastModified of each tag's ``current/link`` and
        of each revision link, from one recursive listing of ``_manifests``; the links,
        manifests and configs are then read (a few at a time), blob sizes from one HEAD
        each. ``None``: no such repository."""
        base = KEYS.manifests_dir(name)
        tag_times: dict[str, float] = {}
        revision_times: dict[str, float] = {}
        seen = False
        async for info in list_files(self.driver, base):
            seen = True
            rest = info.path[len(base) + 1 :].split("/")
            if len(rest) != 4:
                continue
            if rest[0] == "tags" and rest[2:] == ["current", "link"]:
                if names.is_valid_tag(rest[1]):
                    tag_times[rest[1]] = info.mtime
            elif rest[0] == "revisions" and rest[3] == "link":
                digest = f"{rest[1]}:{rest[2]}"
                if names.is_valid_digest(digest):
                    revision_times[digest] = info.mtime
        if not seen:
            return None
        limit = asyncio.Semaphore(CONCURRENCY)
        sizes: dict[str, asyncio.Task[int | None]] = {}

        async def target(tag: str) -> str | None:
            async with limit:
                return await self.tag_digest(name, tag)

        async def blob_size(digest: str) -> int | None:
            async with limit:
                return await self.blob_size(digest)

        def size_of(digest: str) -> asyncio.Task[int | None]:
            if digest not in sizes:
                sizes[digest] = asyncio.ensure_future(blob_size(digest))
            return sizes[digest]

        async def created(config: str | None) -> str | None:
            if config is None or not names.is_valid_digest(config):
                return None
            async with limit:
                try:
                    data = await self.driver.get_content(
                        KEYS.blob_data(config), limit=EXT_DOCUMENT_BYTES + 1
                    )
                except PathNotFoundError:
                    return None
            try:
                document = json.loads(data) if len(data) <= EXT_DOCUMENT_BYTES else None
            except ValueError:
                return None
            value = document.get("created") if isinstance(document, dict) else None
            return value if isinstance(value, str) else None

        async def manifest(digest: str) -> dict[str, Any] | None:
            async with limit:
                body = await self._read_blob(digest)
            if body is None or len(body) > EXT_DOCUMENT_BYTES:
                return None
            parsed = parse_stored_manifest(digest, body)
            referenced = [digest, *([parsed.config] if parsed.config else []), *parsed.layers]
            blobs = list(dict.fromkeys(referenced))
            found = await asyncio.gather(*(size_of(b) for b in blobs if b != digest))
            known = dict(zip([b for b in blobs if b != digest], found, strict=True))
            known[digest] = len(body)
            return {
                "digest": digest,
                "pushed": _rfc3339(revision_times[digest]),
                "created": await created(parsed.config),
                "blobs": [{"digest": b, "size": known[b]} for b in blobs],
                "children": list(parsed.children),
                "subject": parsed.subject,
            }

        ordered_tags = sorted(tag_times)
        targets, described, pulled = await asyncio.gather(
            asyncio.gather(*(target(t) for t in ordered_tags)),
            asyncio.gather(*(manifest(d) for d in sorted(revision_times))),
            self.pulls.times(name),
        )

        def last_pull(digest: str) -> str | None:
            when = pulled.get(digest)
            return _rfc3339(when) if when is not None else None

        tags = [
            {
                "tag": tag,
                "digest": digest,
                "pushed": _rfc3339(tag_times[tag]),
                "pulled": last_pull(digest),
            }
            for tag, digest in zip(ordered_tags, targets, strict=True)
            if digest is not None
        ]
        manifests = [m | {"pulled": last_pull(m["digest"])} for m in described if m is not None]
        return {"name": name, "tags": tags, "manifests": manifests}

    async def read_state(self, name: str) -> bytes | None:
        try:
            return await self.driver.get_content(f"/{name}")
        except PathNotFoundError:
            return None

    async def write_state(self, name: str, data: bytes) -> None:
        await self.driver.put_content(f"/{name}", data)

    async def warm_up(self) -> None:
        if self._local is not None:
            await self._local.catalog.refresh()

    async def catalog_page(self, last: str | None, count: int) -> tuple[list[str], bool]:
        if self._local is not None:
            return await self._local.catalog.page(last, count)
        return page(await self.repositories(), last, count)

    async def repositories(self) -> list[str]:
        """Every name with a ``_layers`` or ``_manifests`` below it, in Distribution's order."""
        if self._local is not None:
            await self._local.catalog.refresh()
            return self._local.catalog.index.current()
        base = KEYS.repositories_dir
        found: set[str] = set()
        async for info in list_files(self.driver, base):
            parts = info.path[len(base) + 1 :].split("/")
            for index, part in enumerate(parts[:-1]):
                if part in ("_layers", "_manifests") and index > 0:
                    found.add("/".join(parts[:index]))
                    break
                if part.startswith("_"):
                    break
        valid = [name for name in found if names.is_valid_name(name)]
        return sorted(valid, key=path_order_key)
