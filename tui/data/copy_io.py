"""Where ``regtui cp`` reads and writes images: the two faces every place offers (a registry
here; an OCI layout in :mod:`tui.data.oci_layout`, a ``docker save`` archive in
:mod:`tui.data.docker_archive`) and the stream check every blob passes through.

A source gives manifests (verified against their digest) and blob chunks as they come; the
engine checks the chunks with :func:`verified_chunks` while they pass to the destination, which
commits a blob only when the whole stream arrived and checked out.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tui.client import DigestMismatchError, MalformedResponseError, NotFoundError
from tui.client.models import OCI_INDEX, Descriptor, ImageIndex
from tui.logic.copy_plan import ManifestNode, referrers_index, referrers_tag

if TYPE_CHECKING:
    from tui.client import RegistryClient

__all__ = [
    "CHUNK",
    "CopyError",
    "Destination",
    "RegistryDestination",
    "RegistrySource",
    "SharedWrites",
    "Source",
    "verified_chunks",
]

CHUNK = 1024 * 1024
"""Bytes per chunk of a blob on its way: a copy holds a few per blob in flight, never a layer."""
THREADED_HASH = 256 * 1024
"""Chunks this large are hashed in a worker thread, beside the event loop's network work."""


class CopyError(Exception):
    """A copy that cannot be done as asked (a format that cannot hold the image, a bad
    archive, content that does not check out): one sentence."""


class Source(Protocol):
    name: str

    async def root(self) -> tuple[str, str, bytes]:
        """The manifest named: ``(digest, media type, raw bytes)``, verified."""
        ...

    async def manifest(self, digest: str) -> tuple[str, bytes]:
        """A manifest by digest: ``(media type, raw bytes)``, verified."""
        ...

    def blob(self, blob: Descriptor) -> AbstractAsyncContextManager[AsyncIterable[bytes]]:
        """The blob's chunks as they come (the engine verifies them)."""
        ...

    async def referrers(self, digest: str) -> list[Descriptor]:
        """Manifests whose subject is ``digest`` (signatures, SBOMs)."""
        ...

    async def close(self) -> None: ...


class Destination(Protocol):
    name: str

    async def begin(self, root: ManifestNode) -> None:
        """Called once with everything to write, before the first write."""
        ...

    async def has_blob(self, blob: Descriptor) -> bool: ...

    async def mount(self, blob: Descriptor, source: Source) -> bool:
        """Make ``blob`` present without moving its bytes (a cross-repository mount), when
        ``source`` is in the same place; ``False`` when it cannot."""
        ...

    async def write_blob(self, blob: Descriptor, chunks: AsyncIterable[bytes]) -> None:
        """Write ``blob`` from ``chunks``; nothing is committed when the stream raises."""
        ...

    async def has_manifest(self, node: ManifestNode) -> bool: ...

    async def write_manifest(self, node: ManifestNode, subject: str | None) -> None:
        """Write ``node`` by digest (``subject``: the digest it refers to, for a referrer)."""
        ...

    async def commit(self, root: ManifestNode, tags: list[str]) -> None:
        """The last write: ``root`` under ``tags`` (a layout's index, an archive's rename)."""
        ...

    async def close(self) -> None: ...


async def verified_chunks(
    chunks: AsyncIterable[bytes],
    blob: Descriptor,
    on_bytes: Callable[[int], None] | None = None,
    source: str = "the source",
) -> AsyncIterator[bytes]:
    """``chunks``, checked against ``blob``'s size and digest as they pass. The last chunk is
    held back until the whole stream checked out: a stream that lies raises before its end
    reaches the destination, so a destination never sees a complete wrong blob."""
    algorithm = blob.digest.partition(":")[0]
    if algorithm not in ("sha256", "sha512"):
        raise CopyError(f"blob {blob.digest}: unsupported digest algorithm {algorithm!r}")
    hasher = hashlib.new(algorithm)
    received = 0
    held: bytes | None = None
    async for chunk in chunks:
        if not chunk:
            continue
        received += len(chunk)
        if received > blob.size:
            raise MalformedResponseError(
                f"{source} sent more than the {blob.size:,} bytes of blob {blob.digest}; "
                "nothing was committed"
            )
        if len(chunk) >= THREADED_HASH:
            await asyncio.to_thread(hasher.update, chunk)  # hashlib lets go of the GIL
        else:
            hasher.update(chunk)
        if held is not None:
            yield held
            if on_bytes is not None:
                on_bytes(len(held))
        held = chunk
    if received != blob.size:
        raise MalformedResponseError(
            f"{source} sent {received:,} of the {blob.size:,} bytes of blob {blob.digest}; "
            "nothing was committed"
        )
    actual = f"{algorithm}:{hasher.hexdigest()}"
    if actual != blob.digest:
        raise DigestMismatchError(
            f"{source} sent blob {blob.digest} whose bytes hash to {actual}; nothing was committed",
            expected=blob.digest,
            actual=actual,
        )
    if held is not None:
        yield held
        if on_bytes is not None:
            on_bytes(len(held))


# ---------------------------------------------------------------------- registries


@dataclass
class RegistrySource:
    client: RegistryClient
    repo: str
    ref: str
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"{self.client.host}/{self.repo}"

    async def root(self) -> tuple[str, str, bytes]:
        result = await self.client.get_manifest(self.repo, self.ref)
        return result.digest, result.media_type, result.raw

    async def manifest(self, digest: str) -> tuple[str, bytes]:
        result = await self.client.get_manifest(self.repo, digest)
        return result.media_type, result.raw

    @asynccontextmanager
    async def blob(self, blob: Descriptor) -> AsyncIterator[AsyncIterable[bytes]]:
        # verified_chunks hashes what passes: the stream need not hash it a second time
        async with self.client.stream_blob(self.repo, blob.digest, CHUNK, verify=False) as stream:
            yield stream

    async def referrers(self, digest: str) -> list[Descriptor]:
        return await self.client.get_referrers(self.repo, digest)

    async def close(self) -> None:
        return None


class SharedWrites:
    """What several copies into one repository at once (a sync's images) write by digest:
    each blob and manifest once, the other copies waiting for that write, then taking it as
    present. Distribution 2.8 rewrites a blob's link in the repository on each upload of it
    (truncated, then written): a manifest ``PUT`` that checks that blob meanwhile reads an
    empty link and fails (400, ``provided digest did not match uploaded content``)."""

    def __init__(self) -> None:
        self._written: set[str] = set()
        self._writing: dict[str, asyncio.Event] = {}

    async def written(self, digest: str) -> bool:
        """Whether another copy wrote ``digest`` (waiting for it while it writes it)."""
        while (writing := self._writing.get(digest)) is not None:
            await writing.wait()
        return digest in self._written

    @asynccontextmanager
    async def writing(self, digest: str) -> AsyncIterator[Callable[[], None]]:
        """``digest`` claimed while the block writes it (call what it yields once it is
        there: a mount refused did not write it); the copies waiting for it go on after."""
        writing = self._writing[digest] = asyncio.Event()

        def done() -> None:
            self._written.add(digest)

        try:
            yield done
        finally:
            del self._writing[digest]
            writing.set()


@dataclass
class RegistryDestination:
    client: RegistryClient
    repo: str
    name: str = ""
    mounts: bool = True
    """Mount blobs from a source on the same registry (``tag`` and ``cp`` within one)."""
    shared: SharedWrites | None = None
    """What other copies into the same repository write at the same time, if any."""

    def __post_init__(self) -> None:
        self.name = self.name or f"{self.client.host}/{self.repo}"
        self._session: dict[str, str] = {}
        """Upload sessions a refused mount opened, by digest: the copy goes there."""

    async def begin(self, root: ManifestNode) -> None:
        return None

    async def has_blob(self, blob: Descriptor) -> bool:
        if self.shared is not None and await self.shared.written(blob.digest):
            return True
        return await self.client.has_blob(self.repo, blob.digest)

    def same_registry(self, source: Source) -> bool:
        return (
            isinstance(source, RegistrySource)
            and source.client.base_url == self.client.base_url
            and source.repo != self.repo
        )

    async def mount(self, blob: Descriptor, source: Source) -> bool:
        if not self.mounts or not self.same_registry(source):
            return False
        assert isinstance(source, RegistrySource)
        if self.shared is None:
            return await self._mount(blob, source)
        if await self.shared.written(blob.digest):
            return True
        async with self.shared.writing(blob.digest) as done:
            mounted = await self._mount(blob, source)
            if mounted:
                done()
            return mounted

    async def _mount(self, blob: Descriptor, source: RegistrySource) -> bool:
        url = await self.client.start_upload(self.repo, mount=blob.digest, source=source.repo)
        if not url:
            return True
        self._session[blob.digest] = url  # refused: this session takes the copy
        return False

    async def write_blob(self, blob: Descriptor, chunks: AsyncIterable[bytes]) -> None:
        if self.shared is None:
            return await self._write_blob(blob, chunks)
        if await self.shared.written(blob.digest):
            return None  # another copy wrote it since this one asked
        async with self.shared.writing(blob.digest) as done:
            await self._write_blob(blob, chunks)
            done()
        return None

    async def _write_blob(self, blob: Descriptor, chunks: AsyncIterable[bytes]) -> None:
        url = self._session.pop(blob.digest, None) or await self.client.start_upload(self.repo)
        await self.client.put_blob_stream(self.repo, url, blob.digest, blob.size, chunks)

    async def has_manifest(self, node: ManifestNode) -> bool:
        if self.shared is not None and await self.shared.written(node.digest):
            return True
        return await self.client.has_manifest(self.repo, node.digest)

    async def write_manifest(self, node: ManifestNode, subject: str | None) -> None:
        if self.shared is None:
            return await self._write_manifest(node, subject)
        if await self.shared.written(node.digest):
            return None
        async with self.shared.writing(node.digest) as done:
            await self._write_manifest(node, subject)
            done()
        return None

    async def _write_manifest(self, node: ManifestNode, subject: str | None) -> None:
        response = await self.client.put_manifest_checked(
            self.repo, node.digest, node.raw, node.media_type
        )
        if subject is not None and "OCI-Subject" not in response.headers:
            # No referrers API: keep the tag schema's index (sha256-<hex>) up to date.
            await self._add_to_fallback(subject, node.descriptor())

    async def _add_to_fallback(self, subject: str, entry: Descriptor) -> None:
        tag = referrers_tag(subject)
        existing = None
        try:
            current = await self.client.get_manifest(self.repo, tag)
        except NotFoundError:
            current = None
        if current is not None and isinstance(current.manifest, ImageIndex):
            existing = json.loads(current.raw)
        raw = referrers_index(existing, [entry])
        if current is not None and raw == current.raw:
            return
        await self.client.put_manifest_checked(self.repo, tag, raw, OCI_INDEX)

    async def commit(self, root: ManifestNode, tags: list[str]) -> None:
        for tag in tags:
            await self.client.put_manifest_checked(self.repo, tag, root.raw, root.media_type)

    async def close(self) -> None:
        return None
