"""Writing content: blob existence (HEAD), cross-repository mounts, streamed blob uploads and
manifests by digest or tag.

A streamed upload is one ``POST`` (which may mount the blob from another repository of the same
registry instead) and one ``PUT ?digest=`` whose body is the source's chunks as they come, with
``Content-Length`` set: the registry never commits a body that is short, and the caller's chunk
iterator may raise before its last chunk (:func:`tui.client.verified_chunks` does when the source
lied) to abort the request, so nothing is committed. The body is never held whole: both
transports (aiohttp's and the light one) send each chunk as it comes.

There is no deadline on the whole ``PUT`` (a layer takes as long as it takes); a destination that
takes no byte for ``timeout`` seconds ends it with :class:`RegistryTimeoutError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator
from urllib.parse import quote

import httpx

from tui.client._content import Content
from tui.client._limits import MAX_SMALL_BODY_BYTES, read_bounded
from tui.client.errors import (
    RegistryClientError,
    RegistryTimeoutError,
)

__all__ = ["Uploads"]


class Uploads(Content):
    """HEAD and upload of blobs (mounts included), HEAD of manifests by digest."""

    async def has_blob(self, repo: str, digest: str) -> bool:
        """Whether ``repo`` serves ``digest`` (a ``HEAD``; 404 is ``False``)."""
        response = await self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        if response.status_code == 404:
            return False
        self.raise_for_status(response, f"blob {repo}@{digest}")
        return True

    async def has_manifest(self, repo: str, digest: str) -> bool:
        """Whether ``repo`` has the manifest ``digest`` (a ``HEAD``; 404 is ``False``)."""
        from tui.client.models import MANIFEST_ACCEPT

        response = await self.request(
            "HEAD", f"/v2/{repo}/manifests/{digest}", headers={"Accept": MANIFEST_ACCEPT}
        )
        if response.status_code == 404:
            return False
        self.raise_for_status(response, f"manifest {repo}@{digest}")
        return True

    async def put_blob_stream(
        self,
        repo: str,
        upload_url: str,
        digest: str,
        size: int,
        chunks: AsyncIterable[bytes],
    ) -> None:
        """Finish the upload session ``upload_url`` with ``size`` bytes from ``chunks`` in one
        ``PUT ?digest=``; the registry verifies the digest too."""
        joiner = "&" if "?" in upload_url else "?"
        url = f"{upload_url}{joiner}digest={quote(digest)}"
        moved = time.monotonic()
        reading = False  # waiting for the source (whose own stall watch applies), not the target

        failure: BaseException | None = None

        async def body() -> AsyncIterator[bytes]:
            nonlocal moved, reading, failure
            reading = True
            try:
                async for chunk in chunks:
                    reading = False
                    moved = time.monotonic()
                    yield chunk
                    reading = True
            except Exception as exc:
                failure = exc  # the source's failure (a lie found): the request is abandoned
                raise
            reading = False
            moved = time.monotonic()

        request = self._http.build_request(
            "PUT",
            url,
            content=body(),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        what = f"blob upload {repo}@{digest}"
        task = asyncio.ensure_future(self._http.send(request, stream=True))
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=min(self.timeout, 1.0))
                stalled = not reading and time.monotonic() - moved > self.timeout
                if not task.done() and stalled:
                    task.cancel()
                    raise RegistryTimeoutError(
                        f"{self.host} took no byte of {what} for {self.timeout:g} s "
                        "(raise --timeout for a slow registry)",
                        host=self.host,
                        timeout=self.timeout,
                    )
            response = task.result()
        except Exception as exc:
            if failure is not None:
                raise failure from None  # what the source did, not how the transport took it
            if isinstance(exc, httpx.TransportError):
                raise self._transport_error(exc) from exc
            raise
        finally:
            if not task.done():
                task.cancel()
        try:
            async with asyncio.timeout(self.timeout):
                await read_bounded(response, MAX_SMALL_BODY_BYTES, what)
        except TimeoutError as exc:
            raise self._timeout_error(what) from exc
        self.raise_for_status(response, what)
        if response.status_code != 201:
            raise RegistryClientError(
                f"{self.host} answered {response.status_code} to the {what}, not 201 Created",
                response=response,
            )
