"""``/v2/<name>/blobs/<digest>``: HEAD, GET (sendfile, Range) and DELETE."""

from __future__ import annotations

import asyncio

from aiohttp import web

from embedded_registry import errors, names
from embedded_registry.keys import COMMIT_LOCK_KEY
from embedded_registry.routes.common import config, repo_name, require_delete, storage

BLOB_CONTENT_TYPE = "application/octet-stream"


class BlobFileResponse(web.FileResponse):
    """A blob sent with sendfile; its ETag is the digest (set in ``on_response_prepare``)."""

    def __init__(self, path: object, digest: str, headers: dict[str, str]) -> None:
        super().__init__(path, headers=headers)  # type: ignore[arg-type]
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


async def get_blob(request: web.Request) -> web.StreamResponse:
    name = repo_name(request)
    digest = names.check_digest(request.match_info["digest"])
    store = storage(request).blobs
    # A read and a stat of hot metadata (and rarely a utime): cheaper inline than a round trip
    # through a worker thread.
    st = store.linked_stat(name, digest)
    if st is None or not store.refresh(digest, st, config(request).storage.gc_grace_period):
        raise errors.blob_unknown(digest)
    size = st.st_size
    headers = _blob_headers(digest)
    headers["ETag"] = f'"{digest}"'
    if _etag_matches(request, digest):
        return web.Response(status=304, headers=headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(size)
        return web.Response(status=200, headers=headers)
    return BlobFileResponse(store.layout.blob_data(digest), digest, headers)


async def delete_blob(request: web.Request) -> web.Response:
    require_delete(request)
    name = repo_name(request)
    digest = names.check_digest(request.match_info["digest"])
    store = storage(request).blobs
    async with request.app[COMMIT_LOCK_KEY]:
        existed = await asyncio.to_thread(store.unlink, name, digest)
    if not existed:
        raise errors.blob_unknown()
    return web.Response(status=202, headers={"Content-Length": "0"})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v2/{name:.+}/blobs/{digest}", get_blob)
    app.router.add_delete("/v2/{name:.+}/blobs/{digest}", delete_blob)
