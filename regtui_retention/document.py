"""A repository's state from the bundled registry's ``_regtui/tags`` document (pure).

The document (see ``embedded_registry/routes/ext_tags.py``) lists the tags with their push and
pull times, and every manifest revision with the exact size of each blob it keeps alive. The
bundled registry's scheduled retention and ``regtui prune --root`` read it from the storage's
own stores and turn it into a :class:`~regtui_retention.plan.RepoState` here; over HTTP the
client's ``RepositoryStorage`` parses the same document.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from regtui_retention.plan import ManifestState, RepoState, TagState
from regtui_retention.times import parse_time

__all__ = ["repo_state_from_document"]


def _objects(doc: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = doc.get(key)
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _str(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) else None


def repo_state_from_document(doc: Mapping[str, Any]) -> RepoState:
    """One repository as storage sees it: exact sizes, push and pull times, untagged
    revisions too (``complete``). An index is as new as its newest platform."""
    manifests: dict[str, ManifestState] = {}
    created: dict[str, datetime | None] = {}
    for m in _objects(doc, "manifests"):
        digest = _str(m, "digest")
        if not digest:
            continue
        blobs: dict[str, int | None] = {}
        for blob in _objects(m, "blobs"):
            blob_digest, size = _str(blob, "digest"), blob.get("size")
            if blob_digest:
                valid = isinstance(size, int) and not isinstance(size, bool) and size >= 0
                blobs[blob_digest] = size if valid else None
        children = m.get("children")
        manifests[digest] = ManifestState(
            digest,
            blobs,
            tuple(c for c in children if isinstance(c, str)) if isinstance(children, list) else (),
            _str(m, "subject"),
            parse_time(m.get("pushed")),
        )
        created[digest] = parse_time(m.get("created"))
    for state in manifests.values():
        dates = [d for child in state.children if (d := created.get(child)) is not None]
        if created.get(state.digest) is None and dates:
            created[state.digest] = max(dates)
    tags = tuple(
        TagState(
            tag,
            digest,
            created.get(digest),
            parse_time(t.get("pushed")),
            parse_time(t.get("pulled")),
            _str(t, "immutable"),
        )
        for t in _objects(doc, "tags")
        if (tag := _str(t, "tag")) and (digest := _str(t, "digest"))
    )
    return RepoState(_str(doc, "name") or "", tags, manifests, complete=True)
