"""What a repository of the bundled registry's pull-through cache holds, and when it expires.

``GET /v2/<name>/_regtui/cache`` (the bundled registry with ``proxy:`` or ``regtui.proxy``;
the repository's pull access) names the upstream (its URL, the name there, the namespace;
never its credentials), the ``ttl`` and each cached tag with its digest and expiry. A
repository no cache covers, and every other registry, answer 404: :func:`cache_report` returns
``None`` there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tui.client._pushtimes import _time, tags_path
from tui.client.errors import MalformedResponseError
from tui.client.registry import RegistryClient

__all__ = ["CacheReport", "CachedTag", "cache_path", "cache_report"]

MAX_REPORT_BYTES = 16 << 20


def cache_path(repo: str) -> str:
    """``/v2/<repo>/_regtui/cache``, beside the push times' ``/_regtui/tags``."""
    return tags_path(repo).removesuffix("/tags") + "/cache"


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class CachedTag:
    tag: str
    digest: str
    expires: datetime | None
    """``None``: never (``ttl: 0``)."""


@dataclass(frozen=True)
class CacheReport:
    name: str
    upstream_url: str
    upstream_name: str
    namespace: str
    ttl_seconds: float
    tags: dict[str, CachedTag]

    @property
    def upstream(self) -> str:
        """``https://registry-1.docker.io/library/alpine``: where the cached images come from."""
        return f"{self.upstream_url.rstrip('/')}/{self.upstream_name}"

    @classmethod
    def from_json(cls, doc: Any) -> CacheReport:
        if not isinstance(doc, dict):
            raise MalformedResponseError("the cache report is not a JSON object")
        upstream = doc.get("upstream")
        upstream = upstream if isinstance(upstream, dict) else {}
        ttl = doc.get("ttl_seconds")
        tags: dict[str, CachedTag] = {}
        listed = doc.get("tags")
        for item in listed if isinstance(listed, list) else []:
            if isinstance(item, dict) and (tag := _text(item, "tag")):
                tags[tag] = CachedTag(tag, _text(item, "digest"), _time(item.get("expires")))
        return cls(
            name=_text(doc, "name"),
            upstream_url=_text(upstream, "url"),
            upstream_name=_text(upstream, "name"),
            namespace=_text(upstream, "namespace"),
            ttl_seconds=float(ttl) if isinstance(ttl, int | float) else 0.0,
            tags=tags,
        )


async def cache_report(client: RegistryClient, repo: str) -> CacheReport | None:
    """What of ``repo`` is cached and until when; ``None`` where no cache covers it."""
    import json

    response = await client.request("GET", cache_path(repo), max_bytes=MAX_REPORT_BYTES)
    if response.status_code in (404, 405):
        return None
    client.raise_for_status(response, f"the cache report of {repo}")
    try:
        return CacheReport.from_json(json.loads(response.content))
    except ValueError as error:
        raise MalformedResponseError(f"the cache report of {repo}: not JSON ({error})") from None
