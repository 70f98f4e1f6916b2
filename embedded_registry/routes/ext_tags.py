"""``GET /v2/_regtui/ext/tags/<name>``: tags with their push times, and every manifest revision.

What retention needs and the API cannot say: when each tag was pushed (the mtime of its
``current/link``), which manifests the repository holds that no tag names (revisions), and the
exact size of every blob each manifest keeps alive::

    {"name": "team/app",
     "tags": [{"tag": "v1", "digest": "sha256:…", "pushed": "2025-06-01T10:00:00Z"}],
     "manifests": [{"digest": "sha256:…", "pushed": "…", "created": "…" | null,
                    "blobs": [{"digest": "sha256:…", "size": 123}],   # itself, config, layers
                    "children": ["sha256:…"], "subject": "sha256:…" | null}]}

Access is that of ``tags/list`` of the same repository (the auth middleware when auth is on,
anyone otherwise): it reveals the repository's tags and the digests, sizes and dates of the
manifests a puller may fetch by digest anyway, and nothing of the server's machine.

The server reads it through its storage driver (``DriverStorage.describe_repository``);
:func:`describe_repository` reads the same document from a directory, blocking, for
``regtui prune --root`` offline (a test checks that both agree).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from embedded_registry import errors, names
from embedded_registry.gc.scan import digest_dirs, parse_manifest, read_link
from embedded_registry.routes.common import json_response, storage
from embedded_registry.storage.paths import Layout

PATH = "/v2/_regtui/ext/tags/{name:.+}"
MAX_DOCUMENT_BYTES = 4 << 20
"""Manifests and configs read here are bounded like Distribution's manifest limit."""


def _time(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, UTC).isoformat().replace("+00:00", "Z")


def _read_bounded(path: os.PathLike[str] | str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_DOCUMENT_BYTES + 1)
    except OSError:
        return None
    return data if len(data) <= MAX_DOCUMENT_BYTES else None


def _size(layout: Layout, digest: str, cache: dict[str, int | None]) -> int | None:
    if digest not in cache:
        if not names.is_valid_digest(digest):  # never build a path from an unchecked name
            cache[digest] = None
        else:
            try:
                cache[digest] = os.stat(layout.blob_data(digest)).st_size
            except OSError:
                cache[digest] = None
    return cache[digest]


def _created(layout: Layout, config: str | None, cache: dict[str, str | None]) -> str | None:
    if config is None or not names.is_valid_digest(config):
        return None
    if config not in cache:
        data = _read_bounded(layout.blob_data(config))
        created = None
        if data is not None:
            try:
                doc = json.loads(data)
            except ValueError:
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("created"), str):
                created = doc["created"]
        cache[config] = created
    return cache[config]


def describe_repository(
    layout: Layout,
    name: str,
    sizes: dict[str, int | None] | None = None,
    configs: dict[str, str | None] | None = None,
) -> dict[str, Any] | None:
    """The document above for repository ``name`` (``None``: no such repository).

    ``sizes`` and ``configs`` are caches that a caller reading many repositories may share.
    """
    sizes = {} if sizes is None else sizes
    configs = {} if configs is None else configs
    manifests_dir = layout.manifests_dir(name)
    if not manifests_dir.is_dir():
        return None
    tags: list[dict[str, Any]] = []
    tags_dir = layout.tags_dir(name)
    try:
        tag_names = sorted(entry.name for entry in os.scandir(tags_dir) if entry.is_dir())
    except OSError:
        tag_names = []
    for tag in tag_names:
        link = tags_dir / tag / "current" / "link"
        digest = read_link(str(link))
        try:
            mtime = os.stat(link).st_mtime
        except OSError:
            continue  # a tag whose current/link is gone is not listed by tags/list either
        if digest is not None and names.is_valid_tag(tag):
            tags.append({"tag": tag, "digest": digest, "pushed": _time(mtime)})
    manifests: list[dict[str, Any]] = []
    for digest, revision_dir in digest_dirs(str(layout.revisions_dir(name))):
        try:
            mtime = os.stat(os.path.join(revision_dir, "link")).st_mtime
        except OSError:
            continue  # Distribution's delete leaves the directory without its link
        if not names.is_valid_digest(digest):
            continue
        data = _read_bounded(layout.blob_data(digest))
        if data is None:
            continue
        sizes[digest] = len(data)
        parsed = parse_manifest(digest, data)
        referenced = [digest, *([parsed.config] if parsed.config else []), *parsed.layers]
        manifests.append(
            {
                "digest": digest,
                "pushed": _time(mtime),
                "created": _created(layout, parsed.config, configs),
                "blobs": [
                    {"digest": blob, "size": _size(layout, blob, sizes)}
                    for blob in dict.fromkeys(referenced)
                ],
                "children": list(parsed.children),
                "subject": parsed.subject,
            }
        )
    manifests.sort(key=lambda m: m["digest"])
    return {"name": name, "tags": tags, "manifests": manifests}


async def repository_tags(request: web.Request) -> web.Response:
    """``GET /v2/_regtui/ext/tags/<name>``: see the module docstring."""
    name = names.check_name(request.match_info["name"])
    # The storage reads the document through its driver (file times or LastModified).
    describe = getattr(storage(request), "describe_repository", None)
    if describe is None:
        raise errors.unsupported("push times are not known on this storage")
    document = await describe(name)
    if document is None:
        raise errors.name_unknown(name)
    return json_response(json.dumps(document, separators=(",", ":")).encode())


def setup_routes(app: web.Application) -> None:
    app.router.add_get(PATH, repository_tags)
