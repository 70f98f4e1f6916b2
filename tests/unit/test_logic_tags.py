"""Tag orderings, filtering and formatting helpers of the repository screen."""

from __future__ import annotations

from datetime import UTC, datetime

from tui.logic.fmt import human_size, parse_created, short_digest, signed_size
from tui.logic.tags import (
    TagRow,
    TagSort,
    filter_tags,
    natural_key,
    sort_tags,
    tags_sharing_digest,
    version_key,
)


def day(n: int) -> datetime:
    return datetime(2024, 1, n, tzinfo=UTC)


def names(rows: list[TagRow]) -> list[str]:
    return [row.tag for row in rows]


def test_version_order_is_numeric_and_puts_prereleases_first() -> None:
    tags = ["1.10.0", "latest", "1.9.2", "v1.2", "1.10.0-rc1", "2", "main", "1.9.10"]
    ordered = sorted(tags, key=version_key)
    assert ordered == ["latest", "main", "v1.2", "1.9.2", "1.9.10", "1.10.0-rc1", "1.10.0", "2"]


def test_natural_key_compares_digits_as_numbers() -> None:
    assert sorted(["build10", "build9", "Build1"], key=natural_key) == [
        "Build1",
        "build9",
        "build10",
    ]


ROWS = [
    TagRow("b", "sha256:2", size=300, created=day(3)),
    TagRow("a10", "sha256:1", size=100, created=day(1)),
    TagRow("a9", "sha256:1", size=100, created=day(1)),
    TagRow("pending"),
    TagRow("c", "sha256:3", size=200, created=day(5), platforms=("linux/arm64",)),
]


def test_sort_by_each_key() -> None:
    assert names(sort_tags(ROWS, TagSort.NAME)) == ["a9", "a10", "b", "c", "pending"]
    assert names(sort_tags(ROWS, TagSort.DATE, descending=True)) == [
        "c",
        "b",
        "a9",
        "a10",
        "pending",
    ]
    assert names(sort_tags(ROWS, TagSort.SIZE)) == ["a10", "a9", "c", "b", "pending"]
    # unknown values stay last in both directions
    assert names(sort_tags(ROWS, TagSort.SIZE, descending=True))[-1] == "pending"


def test_sort_cycles_through_every_key() -> None:
    seen = [TagSort.NAME]
    for _ in range(6):
        seen.append(seen[-1].next())
    assert seen == [
        TagSort.NAME,
        TagSort.VERSION,
        TagSort.DATE,
        TagSort.PUSHED,
        TagSort.PULLED,
        TagSort.SIZE,
        TagSort.NAME,
    ]


def test_filter_matches_tag_digest_and_platform() -> None:
    assert names(filter_tags(ROWS, "A1")) == ["a10"]
    assert names(filter_tags(ROWS, "sha256:1")) == ["a10", "a9"]
    assert names(filter_tags(ROWS, "arm64")) == ["c"]
    assert len(filter_tags(ROWS, "  ")) == len(ROWS)


def test_tags_sharing_digest() -> None:
    assert tags_sharing_digest(ROWS, "sha256:1") == ["a9", "a10"]


def test_formatting() -> None:
    assert human_size(999) == "999 B"
    assert human_size(1234567) == "1.2 MiB"
    assert human_size(None) == "…"
    assert signed_size(-1500) == "-1.5 KiB"
    assert signed_size(0) == "0 B"
    assert short_digest("sha256:" + "ab" * 32) == "abababababab"
    created = parse_created("2024-01-15T10:00:00.123456789Z")
    assert created == datetime(2024, 1, 15, 10, 0, 0, 123456, tzinfo=UTC)
    assert parse_created("yesterday") is None
    assert parse_created(None) is None


def test_sort_by_push_time_puts_unknown_last() -> None:
    from datetime import UTC, datetime

    rows = [
        TagRow("old", pushed=datetime(2026, 1, 1, tzinfo=UTC)),
        TagRow("new", pushed=datetime(2026, 6, 1, tzinfo=UTC)),
        TagRow("unknown"),
    ]
    assert names(sort_tags(rows, TagSort.PUSHED, descending=True)) == ["new", "old", "unknown"]
    assert names(sort_tags(rows, TagSort.PUSHED)) == ["old", "new", "unknown"]
