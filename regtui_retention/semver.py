"""Semantic versions of tags and ranges like ``>=1.2 <2`` (pure, no dependency).

Tags: ``1``, ``1.2``, ``1.2.3``, each with an optional ``v`` and an optional pre-release
(``1.2.3-rc.1``); missing parts are 0. Anything else (``latest``, ``1.2.3.4``, ``main-abc``)
is not a version and matches no range.

Ranges: comparators separated by spaces all hold (AND); ``||`` separates alternatives (OR).

* ``>=1.2``, ``>1.2``, ``<2``, ``<=2.1``, ``=1.2.3``: against the version with missing parts 0;
* ``1.2`` (or ``=1.2``, ``1.2.x``, ``1.2.*``): every ``1.2.z``; ``1`` and ``1.x``: every ``1.y.z``;
* ``^1.2.3``: ``>=1.2.3 <2``; ``^0.2.3``: ``>=0.2.3 <0.3``; ``~1.2``: ``>=1.2 <1.3``;
* ``*`` (or an empty range): every version.

Pre-releases order before their release (``1.2.0-rc.1 < 1.2.0``) and are compared like any
other version (``>=1.2 <2`` includes ``1.5.0-rc.1``): for retention, keeping more is the safe side.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["SemverError", "SemverRange", "Version", "parse_range", "parse_version"]

_VERSION = re.compile(
    r"^[vV]?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*))?(?:\.(?P<patch>0|[1-9]\d*))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_PARTIAL = re.compile(
    r"^[vV]?(?P<major>\d+|[xX*])(?:\.(?P<minor>\d+|[xX*]))?(?:\.(?P<patch>\d+|[xX*]))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_COMPARATOR = re.compile(r"^(?P<op>>=|<=|>|<|=|\^|~)?\s*(?P<version>\S+)$")
_WILD = ("x", "X", "*")


class SemverError(ValueError):
    """A range that cannot be read; the message says which part."""


class Version(NamedTuple):
    """A version (a named tuple, not a dataclass: ``regtui sync`` ranks tags by version on its
    quick path, where :mod:`dataclasses`' imports cost more than the ranking). Not ordered as a
    tuple would be (a release after its pre-releases): compare :meth:`key`."""

    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()

    def __lt__(self, other: object) -> bool:
        return NotImplemented

    def __le__(self, other: object) -> bool:
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        return NotImplemented

    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        """Semver precedence: a release sorts after its pre-releases; numeric ids before text."""
        pre = tuple((0, p) if isinstance(p, int) else (1, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, pre)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        return f"{text}-{'.'.join(str(p) for p in self.pre)}" if self.pre else text


def _pre(text: str | None) -> tuple[int | str, ...]:
    if not text:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in text.split("."))


def parse_version(tag: str) -> Version | None:
    """The version a tag names, or ``None`` for a tag that is not a version."""
    match = _VERSION.match(tag)
    if match is None:
        return None
    return Version(
        int(match["major"]),
        int(match["minor"] or 0),
        int(match["patch"] or 0),
        _pre(match["pre"]),
    )


Test = Callable[[Version], bool]


def _cmp(op: str, bound: Version) -> Test:
    key = bound.key()
    tests: dict[str, Test] = {
        ">=": lambda v: v.key() >= key,
        ">": lambda v: v.key() > key,
        "<=": lambda v: v.key() <= key,
        "<": lambda v: v.key() < key,
        "=": lambda v: v.key() == key,
    }
    return tests[op]


def _between(low: Version, high: Version) -> list[Test]:
    """``>= low`` and ``< high``, where ``high`` excludes its own pre-releases too."""
    high_floor = Version(high.major, high.minor, high.patch, (0,))
    return [_cmp(">=", low), lambda v: v.key() < high_floor.key()]


def _comparator(text: str) -> list[Test]:
    match = _COMPARATOR.match(text)
    if match is None:
        raise SemverError(f"not a comparator: {text!r}")
    op = match["op"] or "="
    partial = _PARTIAL.match(match["version"])
    if partial is None:
        raise SemverError(f"not a version: {match['version']!r}")
    parts: list[int | None] = []
    for name in ("major", "minor", "patch"):
        value = partial[name]
        parts.append(None if value is None or value in _WILD else int(value))
    # Once a part is missing or a wildcard, the following ones are too (1.x.3 means 1.x).
    for i in range(1, 3):
        if parts[i - 1] is None:
            parts[i] = None
    major, minor, patch = parts
    pre = _pre(partial["pre"])
    if major is None:
        if op in ("<", ">"):
            return [lambda v: False]
        return [lambda v: True]
    low = Version(major, minor or 0, patch or 0, pre)
    if op == "^":
        if major > 0 or minor is None:
            high = Version(major + 1, 0, 0)
        elif minor > 0 or patch is None:
            high = Version(0, minor + 1, 0)
        else:
            high = Version(0, 0, (patch or 0) + 1)
        return _between(low, high)
    if op == "~":
        high = Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
        return _between(low, high)
    if patch is not None:
        return [_cmp(op, low)]
    # A partial version is the set of versions it names: 1.2 is [1.2.0, 1.3.0).
    high = Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
    if op == "=":
        return _between(low, high)
    if op == ">=":
        return [_cmp(">=", low)]
    if op == "<":
        floor = Version(low.major, low.minor, low.patch, (0,))  # <1.2 excludes 1.2.0-rc too
        return [lambda v: v.key() < floor.key()]
    if op == ">":
        return [lambda v: v.key() >= high.key()]
    return [lambda v: v.key() < Version(high.major, high.minor, high.patch, (0,)).key()]  # <=


class SemverRange(NamedTuple):
    text: str
    alternatives: tuple[tuple[Test, ...], ...]

    def matches(self, tag: str) -> bool:
        version = parse_version(tag)
        if version is None:
            return False
        return any(all(test(version) for test in tests) for tests in self.alternatives)


def parse_range(text: str) -> SemverRange:
    """``">=1.2 <2 || 3.x"`` -> a matcher; :class:`SemverError` for a range it cannot read."""
    alternatives: list[tuple[Test, ...]] = []
    for alternative in text.split("||"):
        # ">= 1.2" is read as ">=1.2": glue a lone operator to the version after it.
        words = re.sub(r"(>=|<=|>|<|=|\^|~)\s+", r"\1", alternative.strip()).split()
        tests: list[Test] = []
        for word in words:
            tests.extend(_comparator(word))
        alternatives.append(tuple(tests))
    return SemverRange(text, tuple(alternatives))
