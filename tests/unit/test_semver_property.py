"""Semver ranges against an oracle that shares nothing with the parser.

Versions are drawn as integer tuples (and pre-release identifiers as ints or words), rendered
to tag and range text for the code under test, and the expected answer is computed on the
tuples: precedence by an explicit comparison function, each operator by its documented
meaning (see regtui_retention/semver.py's docstring), partial versions and ``^``/``~`` as
intervals of release triples.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from regtui_retention.semver import parse_range

Pre = tuple[int | str, ...]


@dataclass(frozen=True)
class V:
    major: int
    minor: int
    patch: int
    pre: Pre = ()

    @property
    def triple(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)


def compare_pre(a: Pre, b: Pre) -> int:
    """Semver §11: no pre-release > any; ids left to right; ints < words; fewer ids first."""
    if a == b:
        return 0
    if not a:
        return 1
    if not b:
        return -1
    for x, y in zip(a, b, strict=False):
        if x == y:
            continue
        if isinstance(x, int) and isinstance(y, int):
            return -1 if x < y else 1
        if isinstance(x, int):
            return -1
        if isinstance(y, int):
            return 1
        return -1 if str(x) < str(y) else 1
    return -1 if len(a) < len(b) else 1


def compare(a: V, b: V) -> int:
    if a.triple != b.triple:
        return -1 if a.triple < b.triple else 1
    return compare_pre(a.pre, b.pre)


def at_least(v: V, low: tuple[int, int, int]) -> bool:
    """``v >= low`` for a bound without pre-release: its own pre-releases are below it."""
    return v.triple > low or (v.triple == low and not v.pre)


def below(v: V, high: tuple[int, int, int]) -> bool:
    """``v`` under an upper bound that excludes the bound's pre-releases too."""
    return v.triple < high


NUM = st.integers(0, 3)
PRE = st.lists(st.one_of(st.integers(0, 11), st.sampled_from(["rc", "beta", "a"])), max_size=3)
VERSIONS = st.builds(V, NUM, NUM, NUM, PRE.map(tuple))


def render(v: V, style: int) -> str:
    """Tag text: full, or with trailing zero parts left out, with or without ``v``."""
    parts = [v.major, v.minor, v.patch]
    if style & 1:
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
    text = ("v" if style & 2 else "") + ".".join(map(str, parts))
    return text + ("-" + ".".join(map(str, v.pre)) if v.pre else "")


def full(v: V) -> str:
    return render(v, 0)


OPS = {
    ">=": lambda c: c >= 0,
    ">": lambda c: c > 0,
    "<=": lambda c: c <= 0,
    "<": lambda c: c < 0,
    "=": lambda c: c == 0,
}


@settings(max_examples=400)
@given(VERSIONS, st.integers(0, 3), st.sampled_from(sorted(OPS)), VERSIONS)
def test_full_version_comparators(v: V, style: int, op: str, bound: V) -> None:
    assert parse_range(f"{op}{full(bound)}").matches(render(v, style)) == OPS[op](compare(v, bound))


@settings(max_examples=400)
@given(VERSIONS, st.integers(0, 3), NUM, st.one_of(st.none(), NUM), st.sampled_from(sorted(OPS)))
def test_partial_versions_are_sets(
    v: V, style: int, major: int, minor: int | None, op: str
) -> None:
    low = (major, minor or 0, 0)
    high = (major + 1, 0, 0) if minor is None else (major, minor + 1, 0)
    inside = at_least(v, low) and below(v, high)
    expected = {
        "=": inside,
        ">=": at_least(v, low),
        ">": at_least(v, high),
        "<": below(v, low),
        "<=": below(v, high),
    }[op]
    text = f"{op}{major}" if minor is None else f"{op}{major}.{minor}"
    assert parse_range(text).matches(render(v, style)) == expected
    if op == "=":
        wild = f"{major}.x" if minor is None else f"{major}.{minor}.*"
        assert parse_range(wild).matches(render(v, style)) == expected


@settings(max_examples=400)
@given(VERSIONS, st.integers(0, 3), NUM, NUM, NUM, st.booleans())
def test_caret_and_tilde(v: V, style: int, major: int, minor: int, patch: int, tilde: bool) -> None:
    low = (major, minor, patch)
    if tilde:
        high = (major, minor + 1, 0)
    elif major > 0:
        high = (major + 1, 0, 0)
    elif minor > 0:
        high = (0, minor + 1, 0)
    else:
        high = (0, 0, patch + 1)
    text = f"{'~' if tilde else '^'}{major}.{minor}.{patch}"
    assert parse_range(text).matches(render(v, style)) == (at_least(v, low) and below(v, high))


@settings(max_examples=300)
@given(VERSIONS, VERSIONS, VERSIONS, VERSIONS)
def test_and_within_or_between(v: V, a: V, b: V, c: V) -> None:
    text = f">={full(a)} <={full(b)} || >{full(c)}"
    expected = (compare(v, a) >= 0 and compare(v, b) <= 0) or compare(v, c) > 0
    assert parse_range(text).matches(full(v)) == expected
