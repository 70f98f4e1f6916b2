"""Semver tags and ranges for ``keep_semver``."""

from __future__ import annotations

import pytest

from regtui_retention.semver import SemverError, Version, parse_range, parse_version

TAGS = [
    "0.1.0",
    "0.2.3",
    "0.2.9",
    "0.3.0",
    "1.0",
    "v1.1.9",
    "1.2",
    "1.2.0-rc.1",
    "1.2.7",
    "1.5.0-rc.1",
    "1.9.9",
    "2.0.0-rc1",
    "2",
    "2.0.1",
    "3.4.5",
    "latest",
    "1.2.3.4",
    "main-1",
]


def matching(text: str) -> list[str]:
    matcher = parse_range(text)
    return [tag for tag in TAGS if matcher.matches(tag)]


def test_versions_of_tags() -> None:
    assert parse_version("v1.2") == Version(1, 2, 0)
    assert parse_version("1.2.3-rc.1") == Version(1, 2, 3, ("rc", 1))
    assert parse_version("latest") is None
    assert parse_version("1.2.3.4") is None
    assert parse_version("01.2") is None
    assert parse_version("1.2.0-rc.1").key() < parse_version("1.2.0").key()  # type: ignore[union-attr]
    assert parse_version("1.2.0-rc.2").key() < parse_version("1.2.0-rc.10").key()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 1.2.0-rc.1 comes before 1.2.0; 1.5.0-rc.1 is inside the range (kept: the safe side)
        (">=1.2 <2", ["1.2", "1.2.7", "1.5.0-rc.1", "1.9.9"]),
        (">= 1.2 < 2", ["1.2", "1.2.7", "1.5.0-rc.1", "1.9.9"]),
        ("1.2", ["1.2", "1.2.7"]),
        ("1.2.x", ["1.2", "1.2.7"]),
        ("~1.2", ["1.2", "1.2.7"]),
        ("^1.2", ["1.2", "1.2.7", "1.5.0-rc.1", "1.9.9"]),
        ("^0.2.3", ["0.2.3", "0.2.9"]),
        ("<1", ["0.1.0", "0.2.3", "0.2.9", "0.3.0"]),
        (
            "<=1.2",
            ["0.1.0", "0.2.3", "0.2.9", "0.3.0", "1.0", "v1.1.9", "1.2", "1.2.0-rc.1", "1.2.7"],
        ),
        (">1.9", ["2.0.0-rc1", "2", "2.0.1", "3.4.5"]),
        ("=2.0.1 || 3.x", ["2.0.1", "3.4.5"]),
        (">=3", ["3.4.5"]),
    ],
)
def test_ranges(text: str, expected: list[str]) -> None:
    assert matching(text) == expected


def test_wildcards_match_every_version_and_nothing_else() -> None:
    versions = [t for t in TAGS if parse_version(t) is not None]
    assert matching("*") == versions
    assert matching("") == versions


@pytest.mark.parametrize("text", [">=1.2a", "=>1", "1.2.3.4", "latest", ">=v"])
def test_unreadable_ranges_say_so(text: str) -> None:
    with pytest.raises(SemverError):
        parse_range(text)
