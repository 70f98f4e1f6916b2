"""Rows of the tag table and the orders they can be sorted in."""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from regtui_retention.words import natural_key


class TagSort(enum.StrEnum):
    NAME = "name"
    VERSION = "version"
    DATE = "date"
    PUSHED = "pushed"
    PULLED = "pulled"
    SIZE = "size"

    def next(self) -> TagSort:
        members = list(TagSort)
        return members[(members.index(self) + 1) % len(members)]


@dataclass(frozen=True)
class TagRow:
    """One tag as the repository screen shows it; details arrive later (``loaded``)."""

    tag: str
    digest: str | None = None
    media_type: str | None = None
    size: int | None = None
    """Compressed size: config plus layers (for an index: the largest platform)."""
    created: datetime | None = None
    pushed: datetime | None = None
    """When the tag was pushed: known on the bundled registry (from its storage), else None."""
    pulled: datetime | None = None
    """When its image was last pulled (a manifest GET): the bundled registry's record."""
    expires: datetime | None = None
    """When a pull-through cache lets the tag's image go (the bundled registry as a mirror)."""
    platforms: tuple[str, ...] = ()
    immutable: str | None = None
    """The registry's rule that makes the tag immutable (the bundled registry's
    ``regtui.immutable``), or None."""
    loaded: bool = False
    error: str | None = None

    def with_details(self, **changes: Any) -> TagRow:
        return replace(self, loaded=True, **changes)


name_key = functools.lru_cache(maxsize=1 << 16)(natural_key)
""":func:`natural_key`, remembered: a repository's 10,000 tag names are sorted again and
again (by name, and the rows without a date or size after the others, every second while the
details load): 46 ms a sort of 10,000 names, worked out each time."""

_VERSION = re.compile(r"^[vV]?(\d+(?:\.\d+)*)(.*)$")


@functools.lru_cache(maxsize=1 << 16)
def version_key(tag: str) -> tuple[Any, ...]:
    """Semver-like order: ``1.2.10`` > ``1.2.9`` > ``1.2.9-rc1``; non-version tags sort first.

    ``v1.2`` equals ``1.2`` apart from a final tie-break on the text itself.
    """
    match = _VERSION.match(tag)
    if not match:
        return (0, natural_key(tag), tag)
    numbers = tuple(int(part) for part in match.group(1).split("."))
    suffix = match.group(2)
    # A bare release sorts after its pre-releases (1.0.0-rc1 < 1.0.0); a build-style suffix
    # like "-alpine" is treated the same way, which keeps variants next to their release.
    is_release = 1 if not suffix else 0
    return (1, numbers, is_release, natural_key(suffix), tag)


def sort_tags(rows: Iterable[TagRow], key: TagSort, *, descending: bool = False) -> list[TagRow]:
    """Rows in ``key`` order. Rows whose value is still unknown always go last.

    The keys of tag names are remembered (a repository's 10,000 tags sort again every second
    while their details load), so a sort is one pass of comparisons."""
    items = list(rows)
    if key is TagSort.NAME:
        return sorted(items, key=lambda row: name_key(row.tag), reverse=descending)
    if key is TagSort.VERSION:
        return sorted(items, key=lambda row: version_key(row.tag), reverse=descending)
    if key in (TagSort.DATE, TagSort.PUSHED, TagSort.PULLED):
        field = "created" if key is TagSort.DATE else key.value
        known = [row for row in items if getattr(row, field) is not None]
        unknown = [row for row in items if getattr(row, field) is None]
        known.sort(key=lambda row: (getattr(row, field), row.tag), reverse=descending)
        return known + sorted(unknown, key=lambda row: name_key(row.tag))
    known = [row for row in items if row.size is not None]
    unknown = [row for row in items if row.size is None]
    known.sort(key=lambda row: (row.size, row.tag), reverse=descending)
    return known + sorted(unknown, key=lambda row: name_key(row.tag))


def filter_tags(rows: Sequence[TagRow], query: str) -> list[TagRow]:
    """Rows whose tag, digest or platform contains ``query`` (case-insensitive)."""
    needle = query.strip().lower()
    if not needle:
        return list(rows)
    return [
        row
        for row in rows
        if needle in row.tag.lower()
        or (row.digest and needle in row.digest.lower())
        or any(needle in platform for platform in row.platforms)
    ]


def tags_sharing_digest(rows: Iterable[TagRow], digest: str) -> list[str]:
    """Every tag of ``rows`` that points at ``digest`` (deleting the digest removes them all)."""
    return sorted((row.tag for row in rows if row.digest == digest), key=natural_key)
