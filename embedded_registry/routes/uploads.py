"""``/v2/<name>/blobs/uploads/``: POST (start, monolithic, mount), PATCH, PUT, GET, DELETE."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from urllib.parse import quote

from aiohttp import web

from embedded_registry import errors, govern, names, notifications
from embedded_registry.routes.common import absolute_url, repo_name, storage

# Content-Range of a chunk: the spec's "<start>-<end>", also "bytes <start>-<end>/<total|*>".
CONTENT_RANGE_RE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")


def _upload_path(name: str, upload_id: str, size: int = 0) -> str:
    """The upload's URL. Like Distribution's, it carries a ``_state`` query parameter (which the
    bundled registry ignores), so clients that append ``&digest=`` to it keep working."""
    state = base64.urlsafe_b64encode(
        json.dumps({"Name": name, "UUID": upload_id, "Offset": size}).encode()
    ).decode()
    return f"/v2/{name}/blobs/uploads/{upload_id}?_state={quote(state)}"


def _range_header(size: int) -> str:
    # Distribution answers "0-0" for an empty upload (there is no inclusive empty range).
    return f"0-{max(size - 1, 0)}"


def _upload_response(
    request: web.Request, name: str, upload_id: str, size: int, status: int
) -> web.Response:
    return web.Response(
        status=status,
        headers={
            "Location": absolute_url(request, _upload_path(name, upload_id, size)),
            "Range": _range_header(size),
            "Docker-Upload-UUID": upload_id,
            "Content-Length": "0",
        },
    )


def _blob_created(request: web.Request, name: str, digest: str) -> web.Response:
    return web.Response(
        status=201,
        headers={
            "Location": absolute_url(request, f"/v2/{name}/blobs/{digest}"),
            "Docker-Content-Digest": digest,
            "Content-Length": "0",
        },
    )


async def _chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The body as aiohttp's parser received it, piece by piece: no piece is joined here
    (the storage gathers its blocks once; ``iter_chunked`` would join them a first time)."""
    async for data, _end_of_chunk in request.content.iter_chunks():
        if data:
            yield data


def _content_range(request: web.Request) -> tuple[int | None, int | None]:
    """``(start, length)`` from Content-Range; RANGE_INVALID (416) when malformed."""
    header = request.headers.get("Content-Range")
    if not header:
        return None, None
    match = CONTENT_RANGE_RE.fullmatch(header.strip())
    if match is None:
        raise errors.range_invalid(f"malformed Content-Range {header!r}")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise errors.range_invalid(f"Content-Range {header!r} ends before it starts")
    length = end - start + 1
    if request.content_length is not None and request.content_length != length:
        raise errors.size_invalid(
            f"Content-Range covers {length} bytes, Content-Length is {request.content_length}"
        )
    return start, length


def _upload_id(request: web.Request) -> str:
    upload_id = request.match_info["upload_id"]
    if not names.is_valid_upload_id(upload_id):
        raise errors.blob_upload_unknown()
    return upload_id


def _digest_param(request: web.Request) -> str:
    digest = request.query.get("digest")
    if not digest:
        raise errors.digest_invalid("digest missing")
    return names.check_digest(digest)


async def start_upload(request: web.Request) -> web.Response:
    name = repo_name(request)
    store = storage(request)
    mount, source = request.query.get("mount"), request.query.get("from")
    if (
        mount is not None
        and source is not None
        and names.is_valid_digest(mount)
        and names.is_valid_name(source)
        and await store.mount(source, name, mount)
    ):
        await notifications.blob_mounted(request, name, mount, source)
        return _blob_created(request, name, mount)
    upload_id = await store.create_upload(name)
    if "digest" in request.query:
        digest = _digest_param(request)
        async with store.upload_lock(upload_id):
            try:
                async with govern.upload_quota(request, name, upload_id, digest) as meter:
                    size = await store.finish_upload_with(
                        name, upload_id, digest, meter(_chunks(request))
                    )
            except BaseException:
                await store.cancel_upload(name, upload_id)
                raise
        await notifications.blob_pushed(request, name, digest, size)
        return _blob_created(request, name, digest)
    return _upload_response(request, name, upload_id, 0, 202)


async def upload_status(request: web.Request) -> web.Response:
    name = repo_name(request)
    upload_id = _upload_id(request)
    size = await storage(request).upload_size(name, upload_id)
    return _upload_response(request, name, upload_id, size, 204)


async def patch_upload(request: web.Request) -> web.Response:
    name = repo_name(request)
    upload_id = _upload_id(request)
    store = storage(request)
    await store.upload_size(name, upload_id)  # BLOB_UPLOAD_UNKNOWN before reading anything
    start, length = _content_range(request)
    if length is None and request.content_length is not None:
        length = request.content_length
    async with store.upload_lock(upload_id):
        try:
            async with govern.upload_quota(request, name, upload_id) as meter:
                size = await store.append_upload(
                    name, upload_id, meter(_chunks(request)), start=start, length=length
                )
        except errors.RegistryError as error:
            if error.code == "RANGE_INVALID":
                current = await store.upload_size(name, upload_id)
                error.headers.update(
                    {
                        "Location": absolute_url(request, _upload_path(name, upload_id, current)),
                        "Range": _range_header(current),
                        "Docker-Upload-UUID": upload_id,
                    }
                )
            raise
    return _upload_response(request, name, upload_id, size, 202)


async def finish_upload(request: web.Request) -> web.Response:
    name = repo_name(request)
    upload_id = _upload_id(request)
    store = storage(request)
    await store.upload_size(name, upload_id)
    digest = _digest_param(request)
    start, length = _content_range(request)
    async with (
        store.upload_lock(upload_id),
        govern.upload_quota(request, name, upload_id, digest) as meter,
    ):
        if request.body_exists:
            size = await store.finish_upload_with(
                name, upload_id, digest, meter(_chunks(request)), start=start, length=length
            )
        else:
            size = await store.finish_upload(name, upload_id, digest)
    await notifications.blob_pushed(request, name, digest, size)
    return _blob_created(request, name, digest)


async def cancel_upload(request: web.Request) -> web.Response:
    name = repo_name(request)
    upload_id = _upload_id(request)
    store = storage(request)
    async with store.upload_lock(upload_id):
        existed = await store.cancel_upload(name, upload_id)
        await govern.upload_cancelled(request, name, upload_id)
    if not existed:
        raise errors.blob_upload_unknown()
    return web.Response(status=204, headers={"Docker-Upload-UUID": upload_id})


def setup_routes(app: web.Application) -> None:
    router = app.router
    router.add_post("/v2/{name:.+}/blobs/uploads/", start_upload)
    router.add_post("/v2/{name:.+}/blobs/uploads", start_upload)
    uploads = "/v2/{name:.+}/blobs/uploads/{upload_id}"
    router.add_get(uploads, upload_status)
    router.add_patch(uploads, patch_upload)
    router.add_put(uploads, finish_upload)
    router.add_delete(uploads, cancel_upload)
