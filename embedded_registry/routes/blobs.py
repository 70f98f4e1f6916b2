"""``/v2/<name>/blobs/<digest>``: HEAD, GET (sendfile, Range) and DELETE.

A blob on local disk is sent with sendfile. On object storage a GET answers 307 to a presigned
URL (Distribution's default), or streams the object when ``storage.redirect.disable`` is set.
"""

from __future__ import annotations

import asyncio
import os
import re

from aiohttp import web

from embedded_registry import errors, names, notifications
from embedded_registry.keys import COMMIT_LOCK_KEY
from embedded_registry.routes.common import config, repo_name, require_delete, storage

BLOB_CONTENT_TYPE = "application/octet-stream"


class BlobFileResponse(web.StreamResponse):
    """A blob sent from its local file with sendfile; its ETag is the digest (set in
    ``on_response_prepare``)."""

    def __init__(self, digest: str, status: int, headers: dict[str, str]) -> None:
        super().__init__(status=status, headers=headers)
        self.digest = digest


def _blob_headers(digest: str) -> dict[str, str]:
    return {
        "Content-Type": BLOB_CONTENT_TYPE,
        "Docker-Content-Digest": digest,
        "Cache-Control": "max-age=31536000",
        "Accept-Ranges": "bytes",
    }


def _etag_matches(request: web.Request, digest: str) -> bool:
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    return any(
        tag.strip().strip('"').removeprefix("W/").strip('"') == digest for tag in header.split(",")
    )


RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


def _single_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive of a single-range ``Range`` header; None for the whole blob;
    416 when it cannot be satisfied."""
    header = request.headers.get("Range")
    match = RANGE_RE.fullmatch(header.strip()) if header else None
    if match is None or not (match.group(1) or match.group(2)):
        return None
    if match.group(1):
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else size - 1
    else:
        start, end = max(size - int(match.group(2)), 0), size - 1
    end = min(end, size - 1)
    if start > end or start >= size:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, end


async def _stream_blob(
    request: web.Request, digest: str, size: int, headers: dict[str, str]
) -> web.StreamResponse:
    """The blob's bytes read from the storage driver (no local file, no redirect)."""
    wanted = _single_range(request, size)
    start, end = wanted if wanted is not None else (0, size - 1)
    response = web.StreamResponse(status=206 if wanted is not None else 200, headers=headers)
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    response.content_length = end - start + 1 if size else 0
    await response.prepare(request)
    if size:
        async for block in storage(request).blob_reader(digest, start, end - start + 1):
            await response.write(block)
    await response.write_eof()
    return response


async def _send_file(
    request: web.Request, path: str, digest: str, headers: dict[str, str]
) -> web.StreamResponse:
    """The blob's local file, or the part a ``Range`` asks for, with sendfile.

    Opened and measured on the event loop (an ``open`` and an ``fstat``, as cheap as the
    ``stat`` before them: aiohttp's ``FileResponse`` hands both to a worker thread, and on a
    busy machine the wake-up of that thread costs more than the calls). ``If-Range`` is
    compared with the ETag (the digest), as Distribution's ``http.ServeContent`` does."""
    try:
        handle = open(path, "rb", buffering=0)  # noqa: ASYNC230, SIM115 (inline on purpose)
    except (FileNotFoundError, NotADirectoryError):
        raise errors.blob_unknown(digest) from None  # GC swept it since the stat
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if_range = request.headers.get("If-Range")
        honoured = if_range is None or if_range.strip() == f'"{digest}"'
        wanted = _single_range(request, size) if honoured else None
        start, end = wanted if wanted is not None else (0, size - 1)
        response = BlobFileResponse(digest, 206 if wanted is not None else 200, headers)
        if wanted is not None:
            response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        count = end - start + 1 if size else 0
        response.content_length = count
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        await response.prepare(request)
        if count:
            # asyncio reads and writes in its place where sendfile cannot go (TLS).
            await asyncio.get_running_loop().sendfile(transport, handle, start, count)
        await response.write_eof()
    return response


async def get_blob(request: web.Request) -> web.StreamResponse:
    name = repo_name(request)
    digest = names.check_digest(request.match_info["digest"])
    store = storage(request)
    blob = await store.served_blob(name, digest, config(request).storage.gc_grace_period)
    if blob is None:
        raise errors.blob_unknown(digest)
    notifications.blob_pulled(request, name, digest, blob.size)
    headers = _blob_headers(digest)
    headers["ETag"] = f'"{digest}"'
    if _etag_matches(request, digest):
        return web.Response(status=304, headers=headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(blob.size)
        return web.Response(status=200, headers=headers)
    if blob.local_path is not None:
        return await _send_file(request, blob.local_path, digest, headers)
    url = await store.blob_redirect(digest)
    if url is not None:
        return web.Response(
            status=307,
            headers={"Location": url, "Docker-Content-Digest": digest, "Content-Length": "0"},
        )
    return await _stream_blob(request, digest, blob.size, headers)


async def delete_blob(request: web.Request) -> web.Response:
    require_delete(request)
    name = repo_name(request)
    digest = names.check_digest(request.match_info["digest"])
    async with request.app[COMMIT_LOCK_KEY]:
        existed = await storage(request).unlink_blob(name, digest)
    if not existed:
        raise errors.blob_unknown()
    await notifications.blob_deleted(request, name, digest)
    return web.Response(status=202, headers={"Content-Length": "0"})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v2/{name:.+}/blobs/{digest}", get_blob)
    app.router.add_delete("/v2/{name:.+}/blobs/{digest}", delete_blob)
