"""Manifests and blobs: HEAD/GET with every Accept type, digests checked, small uploads.

Bounds (see :mod:`tui.client._limits`): a manifest is refused past 4 MiB while it streams (with
or without ``Content-Length``), and parsed with bounded nesting, in a worker thread when large;
a blob read whole (``get_blob``: configs) is refused past 16 MiB; a streamed blob
(``stream_blob``) that delivers fewer than 1 KiB/s over any ``timeout``-second window ends with
:class:`~tui.client.errors.RegistryTimeoutError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx

from tui.client._base import transport_error
from tui.client._digests import compute_digest, digest_algorithm, is_digest, manifest_digest
from tui.client._discovery import Discovery, _next_link
from tui.client._limits import (
    MAX_MANIFEST_BYTES,
    MAX_SMALL_BLOB_BYTES,
    MIN_STREAM_RATE,
    human_limit,
    off_loop,
)
from tui.client.errors import (
    DigestMismatchError,
    MalformedResponseError,
    NotFoundError,
    RegistryClientError,
    RegistryTimeoutError,
    ResponseTooLargeError,
)

if TYPE_CHECKING:  # tui.client.models is imported where a manifest is read (7 ms of start-up)
    from tui.client.models import (
        Descriptor,
        ImageConfig,
        ImageIndex,
        ImageManifest,
        Manifest,
        ManifestResult,
    )

__all__ = ["MAX_MANIFEST_BYTES", "BlobStream", "Content"]


class BlobStream:
    """A blob being downloaded: ``size`` and an async iterator of chunks, checked at the end.

    With ``stall_timeout``, a stream that delivers fewer than ``MIN_STREAM_RATE`` bytes a second
    over any window of that many seconds ends with :class:`RegistryTimeoutError` (a registry
    that trickles a byte a second cannot hold the reader); transport failures are turned into
    the client's errors.
    """

    def __init__(
        self,
        response: httpx.Response,
        digest: str,
        chunk_size: int,
        *,
        stall_timeout: float | None = None,
        host: str = "",
        verify: bool = True,
    ) -> None:
        self.response = response
        self.verify = verify
        """``False``: the caller checks the digest itself (a copy does, as the bytes pass)."""
        self.digest = digest
        length = response.headers.get("Content-Length")
        self.size: int | None = int(length) if length and length.isdigit() else None
        self._chunk_size = chunk_size
        self.bytes_read = 0
        self._stall_timeout = stall_timeout
        self._host = host or response.request.url.netloc.decode()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        hasher = hashlib.new(digest_algorithm(self.digest))
        window_start, window_bytes = time.monotonic(), 0
        window = self._stall_timeout
        chunks = self._pieces()
        pending: asyncio.Future[bytes] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(chunks))
                if window is not None:
                    left = window_start + window - time.monotonic()
                    await asyncio.wait({pending}, timeout=max(left, 0.0))
                    if not pending.done():
                        if window_bytes < MIN_STREAM_RATE * window:
                            raise self._stalled(window_bytes)
                        window_start, window_bytes = time.monotonic(), 0
                        continue  # a fair rate so far: keep waiting for the same chunk
                try:
                    chunk = await pending
                except StopAsyncIteration:
                    break
                except httpx.TransportError as exc:
                    raise transport_error(exc, self._host, timeout=window) from exc
                finally:
                    if pending.done():
                        pending = None
                if self.verify:
                    hasher.update(chunk)
                self.bytes_read += len(chunk)
                window_bytes += len(chunk)
                if window is not None and time.monotonic() - window_start >= window:
                    if window_bytes < MIN_STREAM_RATE * window:
                        raise self._stalled(window_bytes)
                    window_start, window_bytes = time.monotonic(), 0
                yield chunk
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
            elif pending is not None and not pending.cancelled():
                pending.exception()  # abandoned mid-stream (cancelled): its failure is moot
        actual = f"{digest_algorithm(self.digest)}:{hasher.hexdigest()}"
        if self.size is not None and self.bytes_read != self.size:
            raise MalformedResponseError(
                f"Blob {self.digest} was cut short: {self.bytes_read} of {self.size} bytes",
                response=self.response,
            )
        if self.verify and actual != self.digest:
            raise DigestMismatchError(
                f"Blob {self.digest} hashes to {actual}",
                expected=self.digest,
                actual=actual,
                response=self.response,
            )

    async def _pieces(self) -> AsyncIterator[bytes]:
        """The body in pieces of at least ``chunk_size`` bytes (the last may be shorter): the
        transport's pieces gathered with one join. Not httpx's ``aiter_bytes(chunk_size)``,
        whose re-chunking buffer copies every byte three times (a quarter of a copy's CPU)."""
        gathered: list[bytes] = []
        size = 0
        async for piece in self.response.aiter_bytes():
            gathered.append(piece)
            size += len(piece)
            if size >= self._chunk_size:
                yield gathered[0] if len(gathered) == 1 else b"".join(gathered)
                gathered.clear()
                size = 0
        if gathered:
            yield b"".join(gathered)

    def _stalled(self, received: int) -> RegistryTimeoutError:
        assert self._stall_timeout is not None
        return RegistryTimeoutError(
            f"{self._host} did not answer in time: blob {self.digest} delivered {received:,} "
            f"bytes in {self._stall_timeout:g} s (under 1 KiB/s; raise --timeout for a slow "
            "registry)",
            host=self._host,
            timeout=self._stall_timeout,
        )

    async def read(self, max_bytes: int | None = None) -> bytes:
        """The whole blob; over ``max_bytes``: :class:`ResponseTooLargeError`, reading stops."""
        if max_bytes is not None and self.size is not None and self.size > max_bytes:
            raise self._too_large(max_bytes)
        buffer = bytearray()
        async for chunk in self:
            buffer += chunk
            if max_bytes is not None and len(buffer) > max_bytes:
                raise self._too_large(max_bytes)
        return bytes(buffer)

    def _too_large(self, limit: int) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"Blob {self.digest} is larger than {human_limit(limit)}, more than regtui reads "
            "whole; it stopped reading",
            limit=limit,
            response=self.response,
        )


class Content(Discovery):
    """Manifests and blobs: read (verified against their digest), written, referrers."""

    async def head_manifest(self, repo: str, ref: str) -> Descriptor:
        """The descriptor of ``repo:ref`` without downloading it (no pull counted on Docker Hub)."""
        from tui.client.models import MANIFEST_ACCEPT, Descriptor

        what = f"manifest {repo}:{ref}" if not is_digest(ref) else f"manifest {repo}@{ref}"
        response = await self.request(
            "HEAD", f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT}
        )
        if response.status_code == 404:
            raise NotFoundError(f"{what} not found on {self.host}", response=response)
        self.raise_for_status(response, what)
        digest = response.headers.get("Docker-Content-Digest")
        length = response.headers.get("Content-Length", "")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if not digest or not length.isdigit():
            result = await self.get_manifest(repo, ref)
            return Descriptor(result.media_type, result.digest, result.size)
        if is_digest(ref) and digest != ref:
            raise DigestMismatchError(
                f"{self.host} answered {digest} for {ref}", expected=ref, actual=digest
            )
        return Descriptor(media_type, digest, int(length))

    async def get_manifest(self, repo: str, ref: str) -> ManifestResult:
        """Fetch, verify (digest computed here) and parse a manifest of any supported type."""
        from tui.client.models import MANIFEST_ACCEPT, ManifestResult

        what = f"manifest {repo}:{ref}" if not is_digest(ref) else f"manifest {repo}@{ref}"
        response = await self._send(
            "GET",
            f"/v2/{repo}/manifests/{ref}",
            stream=False,
            max_bytes=MAX_MANIFEST_BYTES,
            what=f"the {what} (manifests are limited to 4 MiB, as in Distribution)",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        self.raise_for_status(response, what)
        raw = response.content
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) != len(raw):
            raise MalformedResponseError(
                f"The {what} was cut short: {len(raw)} of {length} bytes", response=response
            )
        if len(raw) > MAX_MANIFEST_BYTES:
            raise MalformedResponseError(f"The {what} is larger than 4 MiB", response=response)
        header_digest = response.headers.get("Docker-Content-Digest")
        expected = ref if is_digest(ref) else header_digest
        algorithm = digest_algorithm(expected) if expected else "sha256"
        digest, (media_type, manifest) = await off_loop(
            len(raw), _digest_and_parse, raw, algorithm, response.headers.get("Content-Type")
        )
        if expected and digest != expected:
            raise DigestMismatchError(
                f"The {what} hashes to {digest}, not {expected}",
                expected=expected,
                actual=digest,
                response=response,
            )
        return ManifestResult(digest=digest, media_type=media_type, raw=raw, manifest=manifest)

    async def get_blob(
        self, repo: str, digest: str, *, max_bytes: int = MAX_SMALL_BLOB_BYTES
    ) -> bytes:
        """A small blob (a config), read whole and verified; refused past ``max_bytes``
        (16 MiB) and within one request deadline."""
        try:
            async with asyncio.timeout(self.timeout):
                async with self.stream_blob(repo, digest) as blob:
                    return await blob.read(max_bytes)
        except TimeoutError as exc:
            raise self._timeout_error(f"blob {repo}@{digest}") from exc

    async def get_config(self, repo: str, manifest: ImageManifest) -> ImageConfig:
        """The image configuration (parsed in a worker thread when large)."""
        from tui.client.models import parse_config

        raw = await self.get_blob(repo, manifest.config.digest)
        return await off_loop(len(raw), parse_config, raw)

    @asynccontextmanager
    async def stream_blob(
        self, repo: str, digest: str, chunk_size: int = 256 * 1024, *, verify: bool = True
    ) -> AsyncIterator[BlobStream]:
        """Stream a blob (redirects followed); the digest is checked when the stream ends
        (``verify=False``: by the caller, who hashes what passes anyway)."""
        if not is_digest(digest):
            raise RegistryClientError(f"Not a digest: {digest!r}", title="Invalid digest")
        response = await self._send("GET", f"/v2/{repo}/blobs/{digest}", stream=True)
        try:
            if response.status_code >= 400:
                await self.read_error_body(response)
                self.raise_for_status(response, f"blob {repo}@{digest}")
            yield BlobStream(
                response,
                digest,
                chunk_size,
                stall_timeout=self.timeout,
                host=self.host,
                verify=verify,
            )
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        finally:
            await response.aclose()

    async def get_referrers(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``digest``: the referrers API (every page, following
        ``Link`` as the catalog does), else the tag schema."""
        from tui.client.models import ImageIndex

        query = f"?artifactType={quote(artifact_type, safe='')}" if artifact_type else ""
        what = f"referrers of {repo}@{digest}"
        found: list[Descriptor] = []
        seen: set[str] = set()
        response: httpx.Response | None = None
        async for response in self._pages(f"/v2/{repo}/referrers/{digest}{query}", what):
            if response.status_code != 200:
                break
            _, index = await off_loop(
                len(response.content), _parse_index, response.content, "referrers"
            )
            fresh = [d for d in index.manifests if d.digest not in seen]
            if index.manifests and not fresh and _next_link(response) is not None:
                raise MalformedResponseError(
                    f"The registry's pagination of {what} repeats the same page; regtui "
                    "stopped there"
                )
            seen.update(d.digest for d in fresh)
            found.extend(fresh)
        assert response is not None
        if response.status_code in (404, 405, 400):
            fallback_tag = digest.replace(":", "-")
            try:
                result = await self.get_manifest(repo, fallback_tag)
            except NotFoundError:
                return []
            if not isinstance(result.manifest, ImageIndex):
                return []
            found = list(result.manifest.manifests)
        else:
            self.raise_for_status(response, what)
        if artifact_type:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    async def put_manifest(self, repo: str, ref: str, raw: bytes, media_type: str) -> str:
        """PUT a manifest under ``ref``; its digest, as the registry gives it."""
        response = await self.put_manifest_checked(repo, ref, raw, media_type)
        return response.headers.get("Docker-Content-Digest") or compute_digest(raw)

    async def put_manifest_checked(
        self, repo: str, ref: str, raw: bytes, media_type: str
    ) -> httpx.Response:
        """PUT a manifest under ``ref`` (a tag or its digest); the answer, for its headers
        (``OCI-Subject``: the registry keeps referrers itself)."""
        response = await self.request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            content=raw,
            headers={"Content-Type": media_type},
        )
        self.raise_for_status(response, f"manifest upload {repo}:{ref}")
        return response

    async def start_upload(self, repo: str, *, mount: str | None = None, source: str = "") -> str:
        """Open an upload session in ``repo``; its URL, or ``""`` when the registry mounted
        ``mount`` from ``source`` (another repository of this registry) instead."""
        query = f"?mount={quote(mount)}&from={quote(source)}" if mount and source else ""
        start = await self.request("POST", f"/v2/{repo}/blobs/uploads/{query}")
        if mount and start.status_code == 201:
            return ""
        self.raise_for_status(start, f"blob upload to {repo}")
        location = start.headers.get("Location")
        if not location:
            raise MalformedResponseError("The upload answer has no Location", response=start)
        url = start.url.join(location)
        self.check_followable(url, f"the blob upload to {repo}")
        return str(url)

    async def upload_blob(self, repo: str, data: bytes, digest: str | None = None) -> str:
        """Upload a small blob (monolithic POST + PUT); skipped when the registry has it."""
        digest = digest or compute_digest(data)
        head = await self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        if head.status_code == 200:
            return digest
        url = httpx.URL(await self.start_upload(repo))
        joiner = "&" if url.query else "?"
        done = await self.request(
            "PUT",
            f"{url}{joiner}digest={quote(digest)}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.raise_for_status(done, f"blob upload to {repo}")
        return digest


def _digest_and_parse(
    raw: bytes, algorithm: str, content_type: str | None
) -> tuple[str, tuple[str, Manifest]]:
    from tui.client.models import parse_manifest

    return manifest_digest(raw, algorithm), parse_manifest(raw, content_type)


def _parse_index(raw: bytes, what: str) -> tuple[str, ImageIndex]:
    from tui.client.models import INDEX_MEDIA_TYPES, OCI_INDEX, ImageIndex, parse_manifest

    media_type, manifest = parse_manifest(raw, OCI_INDEX)
    if media_type not in INDEX_MEDIA_TYPES or not isinstance(manifest, ImageIndex):
        raise MalformedResponseError(f"The {what} answer is not an image index")
    return media_type, manifest
