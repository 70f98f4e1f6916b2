"""Distribution's notification events, built and encoded as docker-registry sends them.

An event is a plain ``dict`` in the field order of Distribution's ``notifications.Event`` (id,
timestamp, action, target, request, actor, source), with Go's ``omitempty`` rules: the target's
``mediaType``, ``size``, ``digest``, ``length``, ``repository``, ``fromRepository``, ``url``,
``tag`` appear only when set; ``request.id``, ``method`` and ``useragent`` always; ``actor`` is
``{}`` for an anonymous request. The envelope is encoded as Go's ``json.MarshalIndent(envelope,
"", "   ")`` writes it (three spaces, ``<``, ``>`` and ``&`` escaped), under the media type
:data:`EVENTS_MEDIA_TYPE`.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
BLOB_MEDIA_TYPE = "application/octet-stream"
"""What Distribution 2.8 records as the media type of every blob it stores."""

Event = dict[str, Any]


@dataclass(frozen=True)
class RequestRecord:
    """Distribution's ``RequestRecord``: the request that made the event."""

    id: str
    addr: str
    host: str
    method: str
    useragent: str

    def to_json(self) -> dict[str, str]:
        record = {"id": self.id}
        if self.addr:
            record["addr"] = self.addr
        if self.host:
            record["host"] = self.host
        record.update(method=self.method, useragent=self.useragent)
        return record


@dataclass(frozen=True)
class Origin:
    """Who and where an event comes from: the request, the actor, this registry."""

    request: RequestRecord
    actor: str
    source_addr: str
    instance_id: str


_ids = random.Random(os.urandom(32))
"""Event and request ids: random version-4 UUIDs as Distribution's, drawn from a generator
seeded once from the system: an id must be unique, not secret, and ``uuid.uuid4`` (a system
call and a ``UUID`` object per id) costs about ten times as much; every blob HEAD makes one."""


_VERSION_MASK = ~((0xF << 76) | (0x3 << 62))
_VERSION_4 = (0x4 << 76) | (0x2 << 62)  # version 4, RFC 4122 variant


def new_id() -> str:
    text = f"{_ids.getrandbits(128) & _VERSION_MASK | _VERSION_4:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_second: list[tuple[int, str]] = [(-1, "")]
"""The last second formatted (a busy registry makes many events per second)."""


def timestamp(ns: int | None = None) -> str:
    """Go's RFC 3339 with nanoseconds, trailing zeros dropped, in UTC (``...T08:34:13.4677Z``)."""
    ns = time.time_ns() if ns is None else ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    cached, text = _second[0]
    if cached != seconds:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second[0] = (seconds, text)
    if fraction:
        return f"{text}.{fraction:09d}".rstrip("0") + "Z"
    return text + "Z"


def target(
    *,
    media_type: str = "",
    size: int = 0,
    digest: str = "",
    repository: str = "",
    from_repository: str = "",
    url: str = "",
    tag: str = "",
    references: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """An event's target, fields in Distribution's order, empty ones left out."""
    fields: list[tuple[str, Any]] = [
        ("mediaType", media_type),
        ("size", size),
        ("digest", digest),
        ("length", size),
        ("repository", repository),
        ("fromRepository", from_repository),
        ("url", url),
        ("tag", tag),
        ("references", [descriptor(item) for item in references]),
    ]
    return {key: value for key, value in fields if value}


_DESCRIPTOR_FIELDS = ("mediaType", "size", "digest", "urls", "annotations", "platform")


def descriptor(item: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest's descriptor as Distribution's ``Descriptor`` encodes it."""
    return {key: item[key] for key in _DESCRIPTOR_FIELDS if item.get(key)}


def event(action: str, event_target: dict[str, Any], origin: Origin) -> Event:
    """A new event: a fresh id, the time now, the origin's request, actor and source."""
    source: dict[str, str] = {}
    if origin.source_addr:
        source["addr"] = origin.source_addr
    if origin.instance_id:
        source["instanceID"] = origin.instance_id
    return {
        "id": new_id(),
        "timestamp": timestamp(),
        "action": action,
        "target": event_target,
        "request": origin.request.to_json(),
        "actor": {"name": origin.actor} if origin.actor else {},
        "source": source,
    }


def references_of(body: bytes) -> list[dict[str, Any]]:
    """``notifications.events.includereferences``: what a manifest references, as
    Distribution's ``Manifest.References()`` lists it (an index's manifests; an image's config,
    then its layers)."""
    try:
        document = json.loads(body)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    found: list[Any] = []
    if isinstance(document.get("manifests"), list):
        found = document["manifests"]
    else:
        if isinstance(document.get("config"), dict):
            found.append(document["config"])
        if isinstance(document.get("layers"), list):
            found += document["layers"]
    return [item for item in found if isinstance(item, dict)]


def wanted(
    item: Event, ignored_media_types: frozenset[str], ignored_actions: frozenset[str]
) -> bool:
    """Whether an endpoint that ignores these media types and actions takes ``item``."""
    media_type = item["target"].get("mediaType", "")
    return media_type not in ignored_media_types and item["action"] not in ignored_actions


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028"}
_GO_ESCAPES["\u2029"] = "\\u2029"


def envelope(events: list[Event]) -> bytes:
    """The request body an endpoint gets: ``{"events": [...]}`` as Go's encoder writes it."""
    text = json.dumps({"events": events}, indent=3, ensure_ascii=False)
    # Outside strings JSON holds none of these characters: replacing them all is safe.
    for char, escaped in _GO_ESCAPES.items():
        text = text.replace(char, escaped)
    return text.encode()
