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

import hashlib

from aiohttp import web

from embedded_registry import names
from embedded_registry.keys import STORAGE_KEY
from embedded_registry.mediatypes import PUSHABLE
from embedded_registry.notifications.events import (
    BLOB_MEDIA_TYPE,
    Event,
    event,
    references_of,
    target,
)
from embedded_registry.notifications.hub import (
    NOTIFIER_KEY,
    Notifier,
    Pending,
    base_url,
    setup,
)

__all__ = [
    "NOTIFIER_KEY",
    "Notifier",
    "Pushing",
    "blob_deleted",
    "blob_mounted",
    "blob_pulled",
    "blob_pushed",
    "manifest_deleted",
    "manifest_pulled",
    "manifest_pushed",
    "manifest_pushing",
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


def manifest_pushing(
    request: web.Request, name: str, reference: str, body: bytes, content_type: str
) -> Pushing:
    """Start journaling the push of manifest ``body`` to ``name:reference`` while the storage
    writes it (its event is known once the body is: the digest and media type the store will
    find). The caller ends it with :meth:`Pushing.done` once the manifest is stored, or
    :meth:`Pushing.failed`. Without endpoints nothing is journaled: the event is only kept."""
    tag = "" if names.looks_like_digest(reference) else reference
    pushing = Pushing(request, name, body, tag)
    notifier = _notifier(request)
    if notifier is None or not notifier.deliverers:
        return pushing
    if content_type not in PUSHABLE:  # the store refuses it too
        return pushing
    # The media type the store will find is the request's (a body that says otherwise is
    # refused: the push fails and its record is dropped); no second parse of the body here.
    media_type = content_type
    digest = reference if not tag else f"sha256:{hashlib.sha256(body).hexdigest()}"
    pushed = _manifest(request, "push", name, digest, media_type, body, tag)
    pushing.expected, pushing.pending = (digest, media_type), notifier.begin([pushed])
    return pushing


class Pushing:
    """A manifest push whose event is being journaled (:func:`manifest_pushing`)."""

    def __init__(self, request: web.Request, name: str, body: bytes, tag: str) -> None:
        self.request, self.name, self.body, self.tag = request, name, body, tag
        self.expected: tuple[str, str] | None = None
        self.pending: Pending | None = None

    async def done(self, digest: str, media_type: str) -> None:
        """The manifest is stored as ``digest``: return once its event is in the journal."""
        if self.pending is not None and self.expected == (digest, media_type):
            await self.pending.commit()
            return
        if self.pending is not None:
            # The store saw another digest or media type than expected (never, as long as
            # both read the body alike): journal the event it reports instead.
            self.pending.abandon(failed=True)
        await manifest_pushed(self.request, self.name, digest, media_type, self.body, self.tag)

    def failed(self, *, cancelled: bool = False) -> None:
        """The push did not happen (or, ``cancelled``, may have: the deliverer checks)."""
        if self.pending is not None:
            self.pending.abandon(failed=not cancelled)


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
