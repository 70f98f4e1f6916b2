"""Push times and manifest revisions from the bundled registry's ``_regtui/tags`` endpoint.

``GET /v2/<name>/_regtui/tags`` (the bundled registry only; same access as ``tags/list``, and
under the repository's own path so that a proxy's path rules for it apply) answers when each tag
was pushed and last pulled, every manifest revision of the repository (untagged ones too)
and the exact size of each blob they reference, and of each manifest what the Tags screen's row
shows (:func:`tui.data.details.details_from_report`). Other registries answer 404:
:func:`repository_storage` returns ``None`` there. The same document is what
``regtui prune --root`` reads from a directory: :meth:`RepositoryStorage.from_json` parses both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from tui.client._limits import loads_in_pieces, off_loop
from tui.client.errors import MalformedResponseError
from tui.client.registry import RegistryClient

__all__ = ["ManifestRevision", "RepositoryStorage", "TagPush", "repository_storage", "tags_path"]


def tags_path(repo: str) -> str:
    """The URL path of ``repo``'s push times: ``/v2/<repo>/_regtui/tags``."""
    return f"/v2/{quote(repo, safe='/')}/_regtui/tags"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _str(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) else None


def _size(value: Any) -> int | None:
    valid = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if valid else None


def _objects(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


@dataclass(frozen=True)
class TagPush:
    tag: str
    digest: str
    pushed: datetime | None
    pulled: datetime | None = None
    """When the tag's image was last pulled (a GET of its manifest, by tag or digest)."""
    immutable: str | None = None
    """The ``regtui.immutable`` rule that keeps the tag from moving or going, or None."""


@dataclass(frozen=True)
class ManifestRevision:
    digest: str
    pushed: datetime | None
    created: str | None
    """The image config's ``created`` as written there (None for an index or an artifact)."""
    blobs: dict[str, int | None]
    """The manifest itself, its config and layers -> exact size (None: the blob is missing)."""
    children: tuple[str, ...] = ()
    subject: str | None = None
    pulled: datetime | None = None
    media_type: str | None = None
    """The media type it is served with; None from a registry that does not say (then
    neither do the fields below)."""
    artifact_type: str | None = None
    config: str | None = None
    """An image manifest's config digest."""
    config_media_type: str | None = None
    size: int | None = None
    """An image manifest's declared size of its config and layers."""
    platform: str | None = None
    """An image's ``os/architecture[/variant]``, from its config."""
    platforms: tuple[tuple[str, str | None], ...] = ()
    """An index's manifests: (digest, ``os/architecture[/variant]`` or None), in order."""


@dataclass(frozen=True)
class RepositoryStorage:
    name: str
    tags: tuple[TagPush, ...]
    manifests: tuple[ManifestRevision, ...]

    @classmethod
    def from_json(cls, doc: Any) -> RepositoryStorage:
        if not isinstance(doc, dict):
            raise MalformedResponseError("the tags report is not a JSON object")
        tags = tuple(
            TagPush(
                tag, digest, _time(t.get("pushed")), _time(t.get("pulled")), _str(t, "immutable")
            )
            for t in _objects(doc, "tags")
            if (tag := _str(t, "tag")) and (digest := _str(t, "digest"))
        )
        manifests = []
        for m in _objects(doc, "manifests"):
            digest = _str(m, "digest")
            if not digest:
                continue
            blobs: dict[str, int | None] = {}
            for blob in _objects(m, "blobs"):
                blob_digest = _str(blob, "digest")
                if blob_digest:
                    blobs[blob_digest] = _size(blob.get("size"))
            children = m.get("children")
            manifests.append(
                ManifestRevision(
                    digest=digest,
                    pushed=_time(m.get("pushed")),
                    created=_str(m, "created"),
                    blobs=blobs,
                    children=tuple(c for c in children if isinstance(c, str))
                    if isinstance(children, list)
                    else (),
                    subject=_str(m, "subject"),
                    pulled=_time(m.get("pulled")),
                    media_type=_str(m, "mediaType"),
                    artifact_type=_str(m, "artifactType"),
                    config=_str(m, "config"),
                    config_media_type=_str(m, "configMediaType"),
                    size=_size(m.get("size")),
                    platform=_str(m, "platform"),
                    platforms=tuple(
                        (digest, _str(p, "platform"))
                        for p in _objects(m, "platforms")
                        if (digest := _str(p, "digest"))
                    ),
                )
            )
        return cls(_str(doc, "name") or "", tags, tuple(manifests))


MAX_REPORT_BYTES = 512 << 20
"""The report of a repository is about 1 KiB per tag: 100,000 tags are 100 MiB."""
REPORT_DEADLINE_FACTOR = 10
"""The report of a repository of 10,000 tags takes the server seconds to make (it reads every
manifest and config): it gets this many times the client's timeout. Given up on, the app would
read every tag's details itself, which takes longer still."""


async def repository_storage(client: RegistryClient, repo: str) -> RepositoryStorage | None:
    """Push times and revisions of ``repo``; ``None`` from a registry without the endpoint."""
    response = await client.request(
        "GET",
        tags_path(repo),
        deadline=client.timeout * REPORT_DEADLINE_FACTOR,
        max_bytes=MAX_REPORT_BYTES,
        check_depth=False,  # _parse catches deep nesting, off the event loop
    )
    if response.status_code in (404, 405):
        return None  # Distribution and others: not a route they know
    client.raise_for_status(response, f"the push times of {repo}")
    # A repository of 10,000 tags answers megabytes: parsed in a thread, not on the loop.
    return await off_loop(len(response.content), _parse, response.content, repo)


def _parse(body: bytes, repo: str) -> RepositoryStorage:
    try:
        # A piece at a time: 10,000 tags are 9 MB, and one json.loads of them in the worker
        # thread would hold the app's event loop for a tenth of a second and more.
        doc = loads_in_pieces(body.decode("utf-8"))
    except (ValueError, json.JSONDecodeError) as exc:
        raise MalformedResponseError(f"the push times of {repo}: not JSON ({exc})") from None
    except RecursionError:
        raise MalformedResponseError(f"the push times of {repo}: JSON nested too deeply") from None
    return RepositoryStorage.from_json(doc)
