"""``/v2/<name>/manifests/<reference>``: GET, HEAD, PUT, DELETE (by digest, or a tag)."""

from __future__ import annotations

from aiohttp import web

from embedded_registry import errors, govern, names, notifications
from embedded_registry.keys import COMMIT_LOCK_KEY
from embedded_registry.mediatypes import MAX_MANIFEST_SIZE
from embedded_registry.routes.common import (
    absolute_url,
    media_type,
    read_limited,
    repo_name,
    require_delete,
    storage,
)


def _reference(request: web.Request) -> str:
    return names.check_reference(request.match_info["reference"])


def _reference_to_read(request: web.Request) -> str:
    """The reference of a GET or HEAD: one that is neither a tag nor a valid digest names no
    manifest, so it answers 404 MANIFEST_UNKNOWN (Distribution's router answers 404 too, and the
    OCI conformance suite asks for it); a PUT or DELETE still says what is wrong with it."""
    reference = request.match_info["reference"]
    if names.looks_like_digest(reference):
        if not names.is_valid_digest(reference):
            raise errors.manifest_unknown({"Revision": reference[:256]})
    elif not names.is_valid_tag(reference):
        raise errors.manifest_unknown({"Tag": reference[:256]})
    return reference


def _is_pull(request: web.Request) -> bool:
    """Whether this request pulls the image (:mod:`embedded_registry.storage.pulls`): a GET
    (a HEAD is no pull, as zot and Harbor count), and not regtui's own client (``User-Agent:
    regtui``), which reads manifests to show an image or plan a prune, not to run it."""
    if request.method != "GET":
        return False
    agent = request.headers.get("User-Agent", "")
    return agent != "regtui" and not agent.startswith("regtui/")


def _tag(reference: str) -> str:
    """The tag a reference names, or ``""`` for a digest."""
    return "" if names.looks_like_digest(reference) else reference


async def get_manifest(request: web.Request) -> web.Response:
    """The stored bytes with their media type, whatever the Accept header lists.

    Distribution 2.8 answers 404 to a GET of an OCI manifest whose Accept lacks the OCI type;
    every current client sends it, and the spec asks registries to serve the content, so the
    bundled registry always does.
    """
    name = repo_name(request)
    reference = _reference_to_read(request)
    digest, body, info = await storage(request).get_manifest(name, reference)
    notifications.manifest_pulled(request, name, digest, info.media_type, body, _tag(reference))
    headers = {
        "Content-Type": info.media_type,
        "Docker-Content-Digest": digest,
        "ETag": f'"{digest}"',
    }
    if_none_match = request.headers.get("If-None-Match", "")
    if digest in {tag.strip().strip('"') for tag in if_none_match.split(",")}:
        if _is_pull(request):
            storage(request).record_pull(name, digest)  # a cached copy used again is a pull
        return web.Response(status=304, headers=headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return web.Response(status=200, headers=headers)
    if _is_pull(request):
        storage(request).record_pull(name, digest)  # memory only, never a write per GET
    return web.Response(body=body, headers=headers)


async def put_manifest(request: web.Request) -> web.Response:
    name = repo_name(request)
    reference = request.match_info["reference"]
    names.check_reference(reference)
    body = await read_limited(request, MAX_MANIFEST_SIZE)
    content_type = media_type(request.headers.get("Content-Type"))
    # The event is journaled while the manifest is written; answered once both are durable.
    pushing = notifications.manifest_pushing(request, name, reference, body, content_type)
    try:
        async with request.app[COMMIT_LOCK_KEY]:
            await govern.check_manifest_put(request, name, reference, body, content_type)
            digest, info = await storage(request).put_manifest(name, reference, body, content_type)
    except Exception:
        pushing.failed()
        raise
    except BaseException:
        pushing.failed(cancelled=True)
        raise
    await pushing.done(digest, info.media_type)
    headers = {
        "Location": absolute_url(request, f"/v2/{name}/manifests/{digest}"),
        "Docker-Content-Digest": digest,
        "Content-Length": "0",
    }
    if info.subject:
        headers["OCI-Subject"] = info.subject
    return web.Response(status=201, headers=headers)


async def delete_manifest(request: web.Request) -> web.Response:
    """By digest: the revision and the tags pointing at it. By tag: that tag only."""
    require_delete(request)
    name = repo_name(request)
    reference = _reference(request)
    store = storage(request)
    tags: list[str] = []
    async with request.app[COMMIT_LOCK_KEY]:
        await govern.check_delete(request, name, reference)
        if names.looks_like_digest(reference):
            tags = await store.delete_manifest(name, reference)
        else:
            await store.delete_tag(name, reference)
    await notifications.manifest_deleted(request, name, reference, tags)
    return web.Response(status=202, headers={"Content-Length": "0"})


def setup_routes(app: web.Application) -> None:
    path = "/v2/{name:.+}/manifests/{reference}"
    app.router.add_get(path, get_manifest)
    app.router.add_put(path, put_manifest)
    app.router.add_delete(path, delete_manifest)
