"""The ``ext/tags`` document of a repository (:mod:`embedded_registry.routes.ext_tags`): push
times are the LastModified of each tag's ``current/link`` and of each revision link, from one
recursive listing of ``_manifests`` (where directories are listed one by one, the filesystem,
a ``stat`` of each of those links instead, never a listing of a tag's push history: three
directories per push, most of the time of 10,000 tags' document); the links, manifests and
configs are then read in batches (:func:`~embedded_registry.storage.driver.capabilities.
get_many`: many files per worker-thread hop on the filesystem), the size of each layer from one
``stat`` (a config's is its length).

Each manifest also carries what the app's row of a tag shows (``mediaType``, ``size``,
``platform`` or ``platforms``, ``artifactType``, ``configMediaType``), so that the app needs no
request per tag on the bundled registry: :func:`row_facts`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from embedded_registry import names
from embedded_registry.mediatypes import (
    INDEXES,
    OCI_INDEX,
    OCI_MANIFEST,
    StoredManifest,
    parse_stored_document,
)
from embedded_registry.storage.driver.base import FileInfo, StorageDriver, StorageDriverError
from embedded_registry.storage.driver.capabilities import DirectoryTimes, get_many, list_files
from embedded_registry.storage.links import CONCURRENCY, LINK_LIMIT, Links
from embedded_registry.storage.paths import KEYS
from embedded_registry.storage.pulls import PullTimes

EXT_DOCUMENT_BYTES = 4 << 20
"""Manifests and configs the ext/tags document reads, bounded as the filesystem reader does."""
PARSE_BATCH = 500
"""Manifests or configs parsed between two yields to the event loop (a repository of 10,000
tags is 20,000 documents: the server keeps answering other requests meanwhile)."""


def _rfc3339(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, UTC).isoformat().replace("+00:00", "Z")


def _json_document(data: bytes) -> object:
    """``data`` parsed as JSON; None when it is not JSON (what :func:`parse_stored_document`
    then reports as not a JSON object)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _json_object(data: bytes | None) -> dict[str, Any] | None:
    if data is None or len(data) > EXT_DOCUMENT_BYTES:
        return None
    document = _json_document(data)
    return document if isinstance(document, dict) else None


def _size(descriptor: Any) -> int | None:
    size = descriptor.get("size") if isinstance(descriptor, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def _str(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    return value if isinstance(value, str) and value else None


def platform_text(platform: Any) -> str | None:
    """``os/architecture[/variant]`` of a platform object (an index descriptor's, or an image
    config itself), None without both an OS and an architecture."""
    if not isinstance(platform, dict):
        return None
    os_name, architecture = _str(platform, "os"), _str(platform, "architecture")
    if not os_name or not architecture:
        return None
    variant = _str(platform, "variant")
    return "/".join([os_name, architecture, *([variant] if variant else [])])


def row_facts(document: dict[str, Any]) -> dict[str, Any]:
    """What a tag's row shows of the manifest ``document`` (its config's part comes from
    :func:`config_facts`): the media type it is served with (as ``describe_stored`` tells it),
    for an image manifest the declared size of its config and layers, for an index the
    platform of each manifest it lists."""
    media_type = _str(document, "mediaType")
    if document.get("schemaVersion") == 1:
        return {}  # schema1: the app reads such a tag itself (its date is in its history)
    if media_type is None:
        media_type = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    facts: dict[str, Any] = {
        "mediaType": media_type,
        "artifactType": _str(document, "artifactType"),
    }
    if media_type in INDEXES:
        listed = document.get("manifests")
        facts["platforms"] = [
            {"digest": d.get("digest"), "platform": platform_text(d.get("platform"))}
            for d in (listed if isinstance(listed, list) else [])
            if isinstance(d, dict) and isinstance(d.get("digest"), str)
        ]
        return facts
    config = document.get("config")
    layers = document.get("layers")
    listed_layers = layers if isinstance(layers, list) else []
    sizes = [_size(config), *(_size(layer) for layer in listed_layers)]
    facts["size"] = None if None in sizes else sum(s for s in sizes if s is not None)
    if isinstance(config, dict):
        facts["config"] = _str(config, "digest")
        facts["configMediaType"] = _str(config, "mediaType")
    return facts


def config_facts(data: bytes | None) -> tuple[str | None, str | None]:
    """An image config's ``created`` as written there and its platform (``os/arch``)."""
    document = _json_object(data)
    if document is None:
        return None, None
    return _str(document, "created"), platform_text(document)


async def _read_all(
    driver: StorageDriver, paths: Sequence[str], *, limit: int
) -> list[bytes | None]:
    """Many small files at once; a file that cannot be read fails the document (as one read
    would), a missing one is None."""
    contents = await get_many(driver, paths, limit=limit)
    for content in contents:
        if isinstance(content, StorageDriverError):
            raise content
    return [c if not isinstance(c, StorageDriverError) else None for c in contents]


def _link_digest(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    text = raw.decode("ascii", errors="replace").strip()
    return text if names.is_valid_digest(text) else None


def _links_only(base: str) -> Callable[[str], str | None]:
    """The ``leaf`` of a walk of ``base`` (a repository's ``_manifests``) that stats each tag's
    ``current/link`` and each revision's ``link`` without listing their directories: a tag's
    history (``index/<alg>/<hex>/link``, as many directories as pushes of it) is never walked.
    A tag directory without its ``current/link`` is listed as any other."""
    tags, revisions = f"{base}/tags/", f"{base}/revisions/"

    def leaf(key: str) -> str | None:
        if key.startswith(tags):
            return "current/link" if key.count("/", len(tags)) == 0 else None
        if key.startswith(revisions):
            return "link" if key.count("/", len(revisions)) == 1 else None
        return None

    return leaf


def _listing(driver: StorageDriver, base: str) -> AsyncIterator[FileInfo]:
    """Every file under ``base`` the document reads (with its time): where directories are
    listed one by one (:class:`DirectoryTimes`, the filesystem), without walking the tags'
    histories; elsewhere one flat listing (S3's)."""
    if isinstance(driver, DirectoryTimes):
        return driver.list_files(base, leaf=_links_only(base))
    return list_files(driver, base)


async def describe_repository(links: Links, name: str, pulls: PullTimes) -> dict[str, Any] | None:
    """The ``ext/tags`` document of ``name`` (with the last pull times ``pulls`` keeps);
    ``None``: no such repository."""
    driver = links.driver
    base = KEYS.manifests_dir(name)
    tag_times: dict[str, float] = {}
    revision_times: dict[str, float] = {}
    seen = False
    async for info in _listing(driver, base):
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
    ordered_tags = sorted(tag_times)
    revisions = sorted(revision_times)
    tag_links, bodies, pulled = await asyncio.gather(
        _read_all(driver, [KEYS.tag_current_link(name, t) for t in ordered_tags], limit=LINK_LIMIT),
        _read_all(driver, [KEYS.blob_data(d) for d in revisions], limit=EXT_DOCUMENT_BYTES + 1),
        pulls.times(name),
    )

    # Every manifest parsed (a batch at a time), then every config they name read at once.
    parsed: dict[str, tuple[StoredManifest, int, dict[str, Any]]] = {}
    for number, (digest, body) in enumerate(zip(revisions, bodies, strict=True), 1):
        if body is not None and len(body) <= EXT_DOCUMENT_BYTES:
            document = _json_document(body)
            facts = row_facts(document) if isinstance(document, dict) else {}
            parsed[digest] = (parse_stored_document(digest, document), len(body), facts)
        if number % PARSE_BATCH == 0:
            await asyncio.sleep(0)
    configs = sorted(
        {m.config for m, _, _ in parsed.values() if m.config and names.is_valid_digest(m.config)}
    )
    config_bodies = await _read_all(
        driver, [KEYS.blob_data(c) for c in configs], limit=EXT_DOCUMENT_BYTES + 1
    )
    config_info: dict[str, tuple[str | None, str | None]] = {}
    sizes: dict[str, int | None] = {}
    for number, (config, data) in enumerate(zip(configs, config_bodies, strict=True), 1):
        config_info[config] = config_facts(data)
        if data is None or len(data) <= EXT_DOCUMENT_BYTES:
            sizes[config] = None if data is None else len(data)  # read whole: its size
        if number % PARSE_BATCH == 0:
            await asyncio.sleep(0)

    # The layers' sizes: one stat each (a config larger than what is read too).
    limit = asyncio.Semaphore(CONCURRENCY)

    async def blob_size(digest: str) -> tuple[str, int | None]:
        async with limit:
            return digest, await links.blob_size(digest)

    unknown = {
        b
        for digest, (m, _, _) in parsed.items()
        for b in (*([m.config] if m.config else []), *m.layers)
        if b != digest and b not in sizes
    }
    sizes.update(await asyncio.gather(*(blob_size(b) for b in sorted(unknown))))

    def last_pull(digest: str) -> str | None:
        when = pulled.get(digest)
        return _rfc3339(when) if when is not None else None

    manifests = []
    for digest, (m, length, facts) in parsed.items():
        blobs = list(dict.fromkeys([digest, *([m.config] if m.config else []), *m.layers]))
        created, platform = config_info.get(m.config, (None, None)) if m.config else (None, None)
        entry: dict[str, Any] = {
            "digest": digest,
            "pushed": _rfc3339(revision_times[digest]),
            "created": created,
            "blobs": [{"digest": b, "size": length if b == digest else sizes[b]} for b in blobs],
            "children": list(m.children),
            "subject": m.subject,
            "pulled": last_pull(digest),
        }
        if facts:
            entry.update(facts)
            if "size" in facts:
                entry["platform"] = platform
        manifests.append(entry)

    tags = [
        {
            "tag": tag,
            "digest": target,
            "pushed": _rfc3339(tag_times[tag]),
            "pulled": last_pull(target),
        }
        for tag, raw in zip(ordered_tags, tag_links, strict=True)
        if (target := _link_digest(raw)) is not None
    ]
    return {"name": name, "tags": tags, "manifests": manifests}
