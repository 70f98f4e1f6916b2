"""Manifests and blobs: HEAD/GET with every Accept type, digests checked, small uploads."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

import httpx

from tui.client._base import transport_error
from tui.client._digests import compute_digest, digest_algorithm, is_digest, manifest_digest
from tui.client._discovery import Discovery
from tui.client.errors import (
    DigestMismatchError,
    MalformedResponseError,
    NotFoundError,
    RegistryClientError,
)
from tui.client.models import (
    INDEX_MEDIA_TYPES,
    MANIFEST_ACCEPT,
    OCI_INDEX,
    Descriptor,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    ManifestResult,
    parse_config,
    parse_manifest,
)

__all__ = ["MAX_MANIFEST_BYTES", "BlobStream", "Content"]

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


class BlobStream:
    """A blob being downloaded: ``size`` and an async iterator of chunks, checked at the end."""

    def __init__(self, response: httpx.Response, digest: str, chunk_size: int) -> None:
        self.response = response
        self.digest = digest
        length = response.headers.get("Content-Length")
        self.size: int | None = int(length) if length and length.isdigit() else None
        self._chunk_size = chunk_size
        self.bytes_read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        hasher = hashlib.new(digest_algorithm(self.digest))
        async for chunk in self.response.aiter_bytes(self._chunk_size):
            hasher.update(chunk)
            self.bytes_read += len(chunk)
            yield chunk
        actual = f"{digest_algorithm(self.digest)}:{hasher.hexdigest()}"
        if self.size is not None and self.bytes_read != self.size:
            raise MalformedResponseError(
                f"Blob {self.digest} was cut short: {self.bytes_read} of {self.size} bytes",
                response=self.response,
            )
        if actual != self.digest:
            raise DigestMismatchError(
                f"Blob {self.digest} hashes to {actual}",
                expected=self.digest,
                actual=actual,
                response=self.response,
            )

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self])


class Content(Discovery):
    """Manifests and blobs: read (verified against their digest), written, referrers."""

    async def head_manifest(self, repo: str, ref: str) -> Descriptor:
        """The descriptor of ``repo:ref`` without downloading it (no pull counted on Docker Hub)."""
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
        what = f"manifest {repo}:{ref}" if not is_digest(ref) else f"manifest {repo}@{ref}"
        response = await self.request(
            "GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT}
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
        digest = manifest_digest(raw, algorithm)
        if expected and digest != expected:
            raise DigestMismatchError(
                f"The {what} hashes to {digest}, not {expected}",
                expected=expected,
                actual=digest,
                response=response,
            )
        media_type, manifest = parse_manifest(raw, response.headers.get("Content-Type"))
        return ManifestResult(digest=digest, media_type=media_type, raw=raw, manifest=manifest)

    async def get_blob(self, repo: str, digest: str) -> bytes:
        """A small blob (a config), read whole and verified."""
        async with self.stream_blob(repo, digest) as blob:
            return await blob.read()

    async def get_config(self, repo: str, manifest: ImageManifest) -> ImageConfig:
        return parse_config(await self.get_blob(repo, manifest.config.digest))

    @asynccontextmanager
    async def stream_blob(
        self, repo: str, digest: str, chunk_size: int = 256 * 1024
    ) -> AsyncIterator[BlobStream]:
        """Stream a blob (redirects followed); the digest is checked when the stream ends."""
        if not is_digest(digest):
            raise RegistryClientError(f"Not a digest: {digest!r}", title="Invalid digest")
        response = await self._send("GET", f"/v2/{repo}/blobs/{digest}", stream=True)
        try:
            if response.status_code >= 400:
                await response.aread()
                self.raise_for_status(response, f"blob {repo}@{digest}")
            yield BlobStream(response, digest, chunk_size)
        except httpx.TransportError as exc:
            raise transport_error(exc, self.host) from exc
        finally:
            await response.aclose()

    async def get_referrers(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``digest``: the referrers API, else the tag schema."""
        params = {"artifactType": artifact_type} if artifact_type else None
        response = await self.request("GET", f"/v2/{repo}/referrers/{digest}", params=params)
        if response.status_code == 200:
            _, index = _parse_index(response.content, "referrers")
            found = list(index.manifests)
        elif response.status_code in (404, 405, 400):
            fallback_tag = digest.replace(":", "-")
            try:
                result = await self.get_manifest(repo, fallback_tag)
            except NotFoundError:
                return []
            if not isinstance(result.manifest, ImageIndex):
                return []
            found = list(result.manifest.manifests)
        else:
            self.raise_for_status(response, f"referrers of {repo}@{digest}")
            return []
        if artifact_type:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    async def put_manifest(self, repo: str, ref: str, raw: bytes, media_type: str) -> str:
        response = await self.request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            content=raw,
            headers={"Content-Type": media_type},
        )
        self.raise_for_status(response, f"manifest upload {repo}:{ref}")
        return response.headers.get("Docker-Content-Digest") or compute_digest(raw)

    async def upload_blob(self, repo: str, data: bytes, digest: str | None = None) -> str:
        """Upload a small blob (monolithic POST + PUT); skipped when the registry has it."""
        digest = digest or compute_digest(data)
        head = await self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        if head.status_code == 200:
            return digest
        start = await self.request("POST", f"/v2/{repo}/blobs/uploads/")
        self.raise_for_status(start, f"blob upload to {repo}")
        location = start.headers.get("Location")
        if not location:
            raise MalformedResponseError("The upload answer has no Location", response=start)
        url = start.url.join(location)
        joiner = "&" if url.query else "?"
        done = await self.request(
            "PUT",
            f"{url}{joiner}digest={quote(digest)}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.raise_for_status(done, f"blob upload to {repo}")
        return digest


def _parse_index(raw: bytes, what: str) -> tuple[str, ImageIndex]:
    media_type, manifest = parse_manifest(raw, OCI_INDEX)
    if media_type not in INDEX_MEDIA_TYPES or not isinstance(manifest, ImageIndex):
        raise MalformedResponseError(f"The {what} answer is not an image index")
    return media_type, manifest
