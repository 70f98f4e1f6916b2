"""The pull-through cache: what a pull of a cached repository asks of the upstream.

- A manifest by tag: the upstream is asked for the tag's current digest (HEAD); the cached
  manifest is served when it is that digest, else the manifest is fetched by digest, checked
  and stored under the tag. While the upstream is unreachable, times out or answers an error,
  the cached manifest is served (a client gets an error only when nothing is cached).
- A manifest by digest, a blob: served from the storage when cached, else fetched once (pulls
  of one blob at the same time share the fetch) and stored; the GET that started a blob's fetch
  gets its bytes as they pass (:mod:`embedded_registry.proxy.stream`), the last piece only
  once the blob verified and was committed.
- Nothing is stored that was not verified: a manifest's bytes must hash to the digest asked
  for (and to the one the upstream announced); a blob streams into an upload session, which is
  committed only when its digest matches (and its size the announced one); otherwise the
  upload is dropped and the client gets an OCI error naming the upstream.
- Every stored manifest and blob is scheduled to expire after the upstream's ``ttl``
  (:mod:`embedded_registry.proxy.schedule`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import aiohttp
from aiohttp import web

from embedded_registry import errors, names
from embedded_registry.config import ProxyConfig
from embedded_registry.mediatypes import (
    DOCKER_LIST,
    DOCKER_SCHEMA1_SIGNED,
    DOCKER_SCHEMA2,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
)
from embedded_registry.proxy.schedule import BLOB, MANIFEST, Schedule
from embedded_registry.proxy.stream import BlobTee, stream_response
from embedded_registry.proxy.upstream import Upstream, UpstreamError, UpstreamTimeout
from embedded_registry.storage.api import RegistryStorage

log = logging.getLogger(__name__)

T = TypeVar("T")
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_SCHEMA2, DOCKER_SCHEMA1_SIGNED))
READ_CHUNK = 2 << 20


def upstream_failed(exc: UpstreamError) -> errors.RegistryError:
    """The OCI error a client gets when the upstream failed and nothing cached can answer."""
    return errors.RegistryError(
        "UNAVAILABLE", message="the upstream registry failed", detail=str(exc), status=exc.status
    )


def _digest_of(body: bytes, algorithm: str) -> str:
    try:
        return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"
    except ValueError:
        return ""


async def _chunks(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    async for chunk in response.content.iter_chunked(READ_CHUNK):
        yield chunk


async def _passing(chunks: AsyncIterator[bytes], tee: BlobTee) -> AsyncIterator[bytes]:
    """``chunks`` to the storage, each handed to ``tee`` once the storage took it."""
    async for chunk in chunks:
        yield chunk
        await tee.piece(chunk)


class Mirror:
    """The cache of one upstream, on the registry's storage."""

    def __init__(
        self,
        settings: ProxyConfig,
        storage: RegistryStorage,
        commit_lock: asyncio.Lock,
        schedule: Schedule,
    ) -> None:
        self.settings = settings
        self.upstream = Upstream(settings)
        self.storage = storage
        self.commit_lock = commit_lock
        self.schedule = schedule
        self._flights: dict[tuple[str, ...], asyncio.Future[str]] = {}

    async def close(self) -> None:
        await self.upstream.close()

    def _flight(
        self, key: tuple[str, ...], work: Callable[[], Awaitable[str]]
    ) -> asyncio.Future[str]:
        """The fetch of ``key`` in flight, ``work`` started when there is none."""
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(work())
            self._flights[key] = flight

            def landed(done: asyncio.Future[str], key: tuple[str, ...] = key) -> None:
                if self._flights.get(key) is done:
                    del self._flights[key]
                if not done.cancelled():
                    done.exception()  # retrieved: a failure nobody awaited is no warning

            flight.add_done_callback(landed)
        return flight

    async def _once(self, key: tuple[str, ...], work: Callable[[], Awaitable[str]]) -> str:
        """``work`` run once for every caller asking for ``key`` meanwhile; it goes on when a
        client goes away (the others still wait for it)."""
        return await asyncio.shield(self._flight(key, work))

    # -- manifests --------------------------------------------------------------------------
    async def _cached_digest(self, name: str, reference: str) -> str | None:
        try:
            digest, _, _ = await self.storage.get_manifest(name, reference)
        except errors.RegistryError as error:
            if error.code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"):
                return None
            raise
        return digest

    async def ensure_manifest(self, name: str, reference: str) -> None:
        """Make the manifest ``reference`` of ``name`` servable from the storage (see the
        module docstring); an OCI error when it cannot be."""
        remote = self.upstream.remote_name(name)
        if names.looks_like_digest(reference):
            if await self._cached_digest(name, reference) is not None:
                return
            try:
                await self._once(
                    ("manifest", name, reference),
                    lambda: self._fetch_manifest(name, remote, reference, reference),
                )
            except UpstreamError as exc:
                raise upstream_failed(exc) from None
            return
        cached = await self._cached_digest(name, reference)
        try:
            if cached is None:  # nothing to compare: one GET by tag, checked by its digest
                await self._once(
                    ("manifest", name, reference),
                    lambda: self._fetch_manifest(name, remote, None, reference),
                )
                return
            current = await self._current_digest(remote, reference)
            if current is None:
                if cached is not None:  # as Distribution: the cache answers what it has
                    return
                raise errors.manifest_unknown({"Tag": reference})
            if current == cached:
                return
            await self._once(
                ("manifest", name, reference, current),
                lambda: self._fetch_manifest(name, remote, current, reference),
            )
        except UpstreamError as exc:
            if cached is not None:
                log.warning("%s: serving the cached %s:%s", exc, name, reference)
                return
            raise upstream_failed(exc) from None

    async def _current_digest(self, remote: str, tag: str) -> str | None:
        """The digest the upstream's ``tag`` names now; None when it has no such tag."""
        path = f"/v2/{remote}/manifests/{tag}"
        async with self.upstream.request(
            "HEAD", path, name=remote, headers={"Accept": ACCEPT}
        ) as response:
            status = response.status
            digest = response.headers.get("Docker-Content-Digest", "")
        if status == 404:
            return None
        self._check_status(status, f"manifest {remote}:{tag}")
        if names.is_valid_digest(digest):
            return digest
        # No digest announced: the body tells it (checked again when fetched by digest).
        async with self.upstream.request(
            "GET", path, name=remote, headers={"Accept": ACCEPT}
        ) as response:
            self._check_status(response.status, f"manifest {remote}:{tag}")
            body = await self._read_manifest(response, remote, tag)
        return _digest_of(body, "sha256")

    def _check_status(self, status: int, what: str) -> None:
        if status == 200:
            return
        if status in (401, 403):
            raise UpstreamError(
                f"{self.upstream.describe()} refused access to {what} (HTTP {status}): check "
                "the proxy's username and password"
            )
        raise UpstreamError(f"{self.upstream.describe()} answered HTTP {status} for {what}")

    async def _read_manifest(
        self, response: aiohttp.ClientResponse, remote: str, reference: str
    ) -> bytes:
        length = response.content_length
        if length is not None and length > MAX_MANIFEST_SIZE:
            raise UpstreamError(
                f"{self.upstream.describe()} sent a manifest of {length} bytes for "
                f"{remote}:{reference}, more than a manifest may be; nothing was cached"
            )
        try:
            body = await response.content.read(MAX_MANIFEST_SIZE + 1)
        except TimeoutError:
            raise UpstreamTimeout(f"{self.upstream.describe()} timed out") from None
        except aiohttp.ClientError as exc:
            kind = exc.__class__.__name__
            raise UpstreamError(
                f"{self.upstream.describe()} broke off sending a manifest ({kind})"
            ) from None
        if len(body) > MAX_MANIFEST_SIZE:
            raise UpstreamError(
                f"{self.upstream.describe()} sent a manifest larger than {MAX_MANIFEST_SIZE} "
                "bytes; nothing was cached"
            )
        if length is not None and len(body) != length:
            raise UpstreamError(
                f"{self.upstream.describe()} sent {len(body)} bytes of a manifest it announced "
                f"as {length}; nothing was cached"
            )
        return body

    async def _fetch_manifest(
        self, name: str, remote: str, digest: str | None, reference: str
    ) -> str:
        """Fetch the manifest ``digest`` (None: the one the tag ``reference`` names now),
        verify it, store it under ``reference`` (a tag or the digest itself) and schedule its
        expiry. The bytes must hash to the digest asked for and to the one the upstream
        announces."""
        wanted = digest or reference
        where = f"{remote}@{digest}" if digest else f"{remote}:{reference}"
        async with self.upstream.request(
            "GET", f"/v2/{remote}/manifests/{wanted}", name=remote, headers={"Accept": ACCEPT}
        ) as response:
            if response.status == 404:
                raise errors.manifest_unknown(
                    {"Name": name, "Revision": digest} if digest else {"Tag": reference}
                )
            self._check_status(response.status, f"manifest {where}")
            body = await self._read_manifest(response, remote, wanted)
            content_type = response.headers.get("Content-Type", "")
            announced = response.headers.get("Docker-Content-Digest", "")
        expected = digest or (announced if names.is_valid_digest(announced) else "")
        actual = _digest_of(body, (expected or "sha256").split(":", 1)[0])
        if (expected and actual != expected) or (
            names.is_valid_digest(announced) and announced != actual
        ):
            raise UpstreamError(
                f"{self.upstream.describe()} sent a manifest whose digest is {actual or '?'}, "
                f"not {expected or announced}; nothing was cached"
            )
        digest = actual
        media_type = content_type.split(";", 1)[0].strip().lower()
        try:
            async with self.commit_lock:
                await self.storage.put_manifest(
                    name, reference, body, media_type, verify_references=False
                )
        except errors.RegistryError as error:
            if error.code != "MANIFEST_INVALID":
                raise
            raise UpstreamError(
                f"{self.upstream.describe()} sent an invalid manifest {digest} "
                f"({error.detail}); nothing was cached"
            ) from None
        self.schedule.add(MANIFEST, name, digest, self.settings.ttl)
        return name

    # -- blobs ------------------------------------------------------------------------------
    async def ensure_blob(self, name: str, digest: str, grace_period: float) -> None:
        """Make the blob ``digest`` servable by ``name`` from the storage; an OCI error when
        it cannot be."""
        if await self.storage.served_blob(name, digest, grace_period) is not None:
            return
        remote = self.upstream.remote_name(name)
        try:
            holder = await self._once(
                ("blob", digest), lambda: self._fetch_blob(name, remote, digest)
            )
            if holder != name:  # another repository of this upstream fetched it meanwhile
                if await self.storage.mount(holder, name, digest):
                    self.schedule.add(BLOB, name, digest, self.settings.ttl)
                else:
                    await self._fetch_blob(name, remote, digest)
        except UpstreamError as exc:
            raise upstream_failed(exc) from None

    async def stream_blob(
        self, request: web.Request, name: str, digest: str, grace_period: float
    ) -> web.StreamResponse | None:
        """A GET of the blob: its fetch streamed to this client while it is written and
        verified (:mod:`embedded_registry.proxy.stream`); None when the storage is to serve it
        (cached already, or another pull's fetch was in flight and is now done)."""
        if await self.storage.served_blob(name, digest, grace_period) is not None:
            return None
        key = ("blob", digest)
        if key in self._flights:  # another pull fetches it: it is served once stored
            await self.ensure_blob(name, digest, grace_period)
            return None
        remote = self.upstream.remote_name(name)
        tee = BlobTee(digest)
        flight = self._flight(key, lambda: self._fetch_blob(name, remote, digest, tee))
        try:
            size = await asyncio.shield(tee.ready)
        except BaseException as exc:
            tee.detach()  # no client waits for pieces: the fetch never blocks on one
            if isinstance(exc, UpstreamError):
                raise upstream_failed(exc) from None
            raise
        if size is None:  # no length announced: served from the storage once verified
            tee.detach()
            try:
                await asyncio.shield(flight)
            except UpstreamError as exc:
                raise upstream_failed(exc) from None
            return None
        return await stream_response(request, name, digest, size, tee, self.upstream.describe())

    async def blob_size(self, name: str, digest: str) -> int:
        """The size the upstream gives the blob (a HEAD of an uncached blob; nothing is
        fetched, as Distribution's proxy stats the remote blob)."""
        remote = self.upstream.remote_name(name)
        try:
            async with self.upstream.request(
                "HEAD", f"/v2/{remote}/blobs/{digest}", name=remote
            ) as response:
                if response.status == 404:
                    raise errors.blob_unknown(digest)
                self._check_status(response.status, f"blob {digest}")
                size = response.content_length
        except UpstreamError as exc:
            raise upstream_failed(exc) from None
        if size is None:
            raise upstream_failed(
                UpstreamError(f"{self.upstream.describe()} gave no size for blob {digest}")
            )
        return size

    async def _fetch_blob(
        self, name: str, remote: str, digest: str, tee: BlobTee | None = None
    ) -> str:
        """Stream the blob into an upload of ``name``, commit it when its digest (and the
        announced size) match, schedule its expiry; ``name``. ``tee`` gets each piece as it
        passes, the end once committed, or the failure."""
        try:
            holder = await self._fetch_blob_into(name, remote, digest, tee)
        except BaseException as error:
            if tee is not None:
                tee.failed(error)
            raise
        if tee is not None:
            await tee.committed()
        return holder

    async def _fetch_blob_into(
        self, name: str, remote: str, digest: str, tee: BlobTee | None
    ) -> str:
        storage = self.storage
        describe = self.upstream.describe()
        upload_id = await storage.create_upload(name)
        committed = False
        try:
            async with self.upstream.request(
                "GET", f"/v2/{remote}/blobs/{digest}", name=remote
            ) as response:
                if response.status == 404:
                    raise errors.blob_unknown(digest)
                self._check_status(response.status, f"blob {digest}")
                announced = response.content_length
                chunks = _chunks(response)
                if tee is not None:
                    tee.announce(announced)
                    chunks = _passing(chunks, tee)
                async with storage.upload_lock(upload_id):
                    try:
                        await storage.append_upload(name, upload_id, chunks, length=announced)
                    except errors.RegistryError as error:
                        if error.code != "SIZE_INVALID":
                            raise
                        raise UpstreamError(
                            f"{describe} sent a blob {digest} of another size than it "
                            f"announced ({error.detail}); nothing was cached"
                        ) from None
                    if tee is not None:
                        await tee.received_all()  # verified: the client's stream ends now
                    try:
                        await storage.finish_upload(name, upload_id, digest)
                    except errors.RegistryError as error:
                        if error.code != "DIGEST_INVALID":
                            raise
                        committed = True  # finish_upload dropped the upload itself
                        raise UpstreamError(
                            f"{describe} sent a blob whose digest is not {digest}; nothing "
                            "was cached"
                        ) from None
                    committed = True
        except TimeoutError:
            raise UpstreamTimeout(f"{describe} timed out sending blob {digest}") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"{describe} broke off sending blob {digest} ({exc.__class__.__name__})"
            ) from None
        finally:
            if not committed:
                with contextlib.suppress(errors.RegistryError, OSError):
                    await asyncio.shield(storage.cancel_upload(name, upload_id))
        self.schedule.add(BLOB, name, digest, self.settings.ttl)
        return name

    # -- tags -------------------------------------------------------------------------------
    async def tags_page(self, name: str, query: str) -> tuple[bytes, str | None] | None:
        """The upstream's ``tags/list`` for ``name`` (the name in the body and the ``Link``
        made local); None when the upstream cannot answer (the cached tags are listed)."""
        remote = self.upstream.remote_name(name)
        path = f"/v2/{remote}/tags/list" + (f"?{query}" if query else "")
        try:
            async with self.upstream.request("GET", path, name=remote) as response:
                if response.status != 200:
                    return None
                body = await response.content.read(MAX_MANIFEST_SIZE + 1)
                link = response.headers.get("Link")
        except (UpstreamError, TimeoutError, aiohttp.ClientError):
            return None
        try:
            document = json.loads(body)
            tags = [t for t in document.get("tags") or [] if isinstance(t, str)]
        except (ValueError, AttributeError):
            return None
        text = json.dumps({"name": name, "tags": tags}, separators=(",", ":")) + "\n"
        if link is not None:
            link = link.replace(f"/v2/{remote}/tags/list", f"/v2/{name}/tags/list", 1)
        return text.encode(), link


async def expire(
    storage: RegistryStorage, commit_lock: asyncio.Lock, kind: int, name: str, digest: str
) -> None:
    """Remove expired content: a manifest's revision and its tags, or a blob's link (GC then
    frees what nothing links any more)."""
    async with commit_lock:
        if kind == MANIFEST:
            try:
                await storage.delete_manifest(name, digest)
            except errors.RegistryError as error:
                if error.code != "MANIFEST_UNKNOWN":
                    raise
        else:
            await storage.unlink_blob(name, digest)
