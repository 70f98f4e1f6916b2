"""Registry events as Distribution's notifications send them, made durable.

The routes report what happened with one call each; the events they make are Distribution's
(:mod:`.events`), recorded by the application's :class:`~.hub.Notifier`:

* ``await blob_pushed(...)``, ``await blob_mounted(...)``, ``await manifest_pushed(...)``,
  ``await manifest_deleted(...)`` (by digest or tag), ``await blob_deleted(...)``:
  journaled for the webhooks before the answer;
* ``blob_pulled(...)``, ``manifest_pulled(...)``: recorded without holding the answer back.

Which request makes which event is Distribution 2.8's (checked against Debian's
docker-registry): a blob's GET *and* HEAD are pulls, a manifest's GET and HEAD too (with the
tag when one was asked for); the closing PUT of an upload (or a monolithic POST) is a push;
a mount is a ``mount`` with ``fromRepository``; deleting a manifest by digest is a delete of
the digest and one of each tag that pointed at it; deleting a tag is a delete of the tag.
"""

from __future__ import annotations

from aiohttp import web

from embedded_registry import names
from embedded_registry.keys import STORAGE_KEY
from embedded_registry.notifications.events import (
    BLOB_MEDIA_TYPE,
    Event,
    event,
    references_of,
    target,
)
from embedded_registry.notifications.hub import NOTIFIER_KEY, Notifier, base_url, setup

__all__ = [
    "NOTIFIER_KEY",
    "Notifier",
    "blob_deleted",
    "blob_mounted",
    "blob_pulled",
    "blob_pushed",
    "manifest_deleted",
    "manifest_pulled",
    "manifest_pushed",
    "setup",
]


def _notifier(request: web.Request) -> Notifier | None:
    return request.app.get(NOTIFIER_KEY)


def _blob(request: web.Request, action: str, name: str, digest: str, size: int) -> Event:
    notifier = request.app[NOTIFIER_KEY]
    url = f"{base_url(request)}/v2/{name}/blobs/{digest}"
    blob = target(media_type=BLOB_MEDIA_TYPE, size=size, digest=digest, repository=name, url=url)
    return event(action, blob, notifier.origin(request))


def _manifest(
    request: web.Request,
    action: str,
    name: str,
    digest: str,
    media_type: str,
    body: bytes,
    tag: str,
) -> Event:
    notifier = request.app[NOTIFIER_KEY]
    manifest = target(
        media_type=media_type,
        size=len(body),
        digest=digest,
        repository=name,
        url=f"{base_url(request)}/v2/{name}/manifests/{digest}",
        tag=tag,
        references=references_of(body) if notifier.include_references else (),
    )
    return event(action, manifest, notifier.origin(request))


async def blob_pushed(request: web.Request, name: str, digest: str, size: int) -> None:
    notifier = _notifier(request)
    if notifier is not None:
        await notifier.record([_blob(request, "push", name, digest, size)])


async def blob_mounted(request: web.Request, name: str, digest: str, source: str) -> None:
    notifier = _notifier(request)
    if notifier is not None:
        blob = await request.app[STORAGE_KEY].served_blob(name, digest, 0.0)
        size = blob.size if blob is not None else 0
        mounted = _blob(request, "mount", name, digest, size)
        mounted["target"] = target(
            media_type=BLOB_MEDIA_TYPE,
            size=size,
            digest=digest,
            repository=name,
            from_repository=source,
            url=mounted["target"]["url"],
        )
        await notifier.record([mounted])


def blob_pulled(request: web.Request, name: str, digest: str, size: int) -> None:
    notifier = _notifier(request)
    if notifier is not None:
        notifier.record_soon([_blob(request, "pull", name, digest, size)])


async def manifest_pushed(
    request: web.Request, name: str, digest: str, media_type: str, body: bytes, tag: str
) -> None:
    notifier = _notifier(request)
    if notifier is not None:
        pushed = _manifest(request, "push", name, digest, media_type, body, tag)
        await notifier.record([pushed])


def manifest_pulled(
    request: web.Request, name: str, digest: str, media_type: str, body: bytes, tag: str
) -> None:
    notifier = _notifier(request)
    if notifier is not None:
        pulled = _manifest(request, "pull", name, digest, media_type, body, tag)
        notifier.record_soon([pulled])


async def manifest_deleted(
    request: web.Request, name: str, reference: str, tags: list[str]
) -> None:
    """A revision deleted by digest and the ``tags`` that went with it, or a tag deleted."""
    notifier = _notifier(request)
    if notifier is not None:
        origin = notifier.origin(request)
        deleted = []
        if names.looks_like_digest(reference):
            deleted.append(event("delete", target(digest=reference, repository=name), origin))
        else:
            tags = [reference]
        deleted += [event("delete", target(repository=name, tag=tag), origin) for tag in tags]
        await notifier.record(deleted)


async def blob_deleted(request: web.Request, name: str, digest: str) -> None:
    notifier = _notifier(request)
    if notifier is not None:
        deleted = event("delete", target(digest=digest, repository=name), notifier.origin(request))
        await notifier.record([deleted])
