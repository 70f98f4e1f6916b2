"""The ``ext/tags`` document of a repository (:mod:`embedded_registry.routes.ext_tags`): push
times are the LastModified of each tag's ``current/link`` and of each revision link, from one
recursive listing of ``_manifests``; the links, manifests and configs are then read (a few at a
time), blob sizes from one HEAD each."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from embedded_registry import names
from embedded_registry.mediatypes import parse_stored_manifest
from embedded_registry.storage.driver.base import PathNotFoundError
from embedded_registry.storage.driver.capabilities import list_files
from embedded_registry.storage.links import CONCURRENCY, Links
from embedded_registry.storage.paths import KEYS
from embedded_registry.storage.pulls import PullTimes

EXT_DOCUMENT_BYTES = 4 << 20
"""Manifests and configs the ext/tags document reads, bounded as the filesystem reader does."""


def _rfc3339(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, UTC).isoformat().replace("+00:00", "Z")


async def describe_repository(links: Links, name: str, pulls: PullTimes) -> dict[str, Any] | None:
    """The ``ext/tags`` document of ``name`` (with the last pull times ``pulls`` keeps);
    ``None``: no such repository."""
    driver = links.driver
    base = KEYS.manifests_dir(name)
    tag_times: dict[str, float] = {}
    revision_times: dict[str, float] = {}
    seen = False
    async for info in list_files(driver, base):
        seen = True
        rest = info.path[len(base) + 1 :].split("/")
        if len(rest) != 4:
            continue
        if rest[0] == "tags" and rest[2:] == ["current", "link"]:
            if names.is_valid_tag(rest[1]):
                tag_times[rest[1]] = info.mtime
        elif rest[0] == "revisions" and rest[3] == "link":
            digest = f"{rest[1]}:{rest[2]}"
            if names.is_valid_digest(digest):
                revision_times[digest] = info.mtime
    if not seen:
        return None
    limit = asyncio.Semaphore(CONCURRENCY)
    sizes: dict[str, asyncio.Task[int | None]] = {}

    async def target(tag: str) -> str | None:
        async with limit:
            return await links.tag_digest(name, tag)

    async def blob_size(digest: str) -> int | None:
        async with limit:
            return await links.blob_size(digest)

    def size_of(digest: str) -> asyncio.Task[int | None]:
        if digest not in sizes:
            sizes[digest] = asyncio.ensure_future(blob_size(digest))
        return sizes[digest]

    async def created(config: str | None) -> str | None:
        if config is None or not names.is_valid_digest(config):
            return None
        async with limit:
            try:
                data = await driver.get_content(
                    KEYS.blob_data(config), limit=EXT_DOCUMENT_BYTES + 1
                )
            except PathNotFoundError:
                return None
        try:
            document = json.loads(data) if len(data) <= EXT_DOCUMENT_BYTES else None
        except ValueError:
            return None
        value = document.get("created") if isinstance(document, dict) else None
        return value if isinstance(value, str) else None

    async def manifest(digest: str) -> dict[str, Any] | None:
        async with limit:
            body = await links.read_manifest(digest)
        if body is None or len(body) > EXT_DOCUMENT_BYTES:
            return None
        parsed = parse_stored_manifest(digest, body)
        referenced = [digest, *([parsed.config] if parsed.config else []), *parsed.layers]
        blobs = list(dict.fromkeys(referenced))
        found = await asyncio.gather(*(size_of(b) for b in blobs if b != digest))
        known = dict(zip([b for b in blobs if b != digest], found, strict=True))
        known[digest] = len(body)
        return {
            "digest": digest,
            "pushed": _rfc3339(revision_times[digest]),
            "created": await created(parsed.config),
            "blobs": [{"digest": b, "size": known[b]} for b in blobs],
            "children": list(parsed.children),
            "subject": parsed.subject,
        }

    ordered_tags = sorted(tag_times)
    targets, described, pulled = await asyncio.gather(
        asyncio.gather(*(target(t) for t in ordered_tags)),
        asyncio.gather(*(manifest(d) for d in sorted(revision_times))),
        pulls.times(name),
    )

    def last_pull(digest: str) -> str | None:
        when = pulled.get(digest)
        return _rfc3339(when) if when is not None else None

    tags = [
        {
            "tag": tag,
            "digest": digest,
            "pushed": _rfc3339(tag_times[tag]),
            "pulled": last_pull(digest),
        }
        for tag, digest in zip(ordered_tags, targets, strict=True)
        if digest is not None
    ]
    manifests = [m | {"pulled": last_pull(m["digest"])} for m in described if m is not None]
    return {"name": name, "tags": tags, "manifests": manifests}
