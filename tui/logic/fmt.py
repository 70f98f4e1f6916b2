"""Human-readable values for the screens: counts of things, sizes, digests, dates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from regtui_retention.times import parse_time

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")

_IRREGULAR_PLURALS = {
    "repository": "repositories",
    "entry": "entries",
    "child": "children",
    "this": "these",
}


def plural(noun: str, count: int | None = None) -> str:
    """The plural of an English ``noun`` (``tag`` -> ``tags``, ``repository`` ->
    ``repositories``); with ``count``, the form that count takes (``1`` keeps it singular)."""
    if count == 1 or count == -1:
        return noun
    head, _, last = noun.rpartition(" ")
    prefix = f"{head} " if head else ""
    if last in _IRREGULAR_PLURALS:
        return prefix + _IRREGULAR_PLURALS[last]
    if last.endswith("y") and last[-2:-1] not in tuple("aeiou"):
        return f"{prefix}{last[:-1]}ies"
    if last.endswith(("s", "x", "z", "ch", "sh")):
        return f"{prefix}{last}es"
    return f"{prefix}{last}s"


def count_of(count: int, noun: str) -> str:
    """``count_of(1, "tag")`` -> ``"1 tag"``, ``count_of(1200, "file")`` -> ``"1,200 files"``."""
    return f"{count:,} {plural(noun, count)}"


def human_size(size: int | None, *, unknown: str = "…") -> str:
    """Bytes for people, the one unit system of the app and the CLI: binary units as ``du -h``
    and ``ls -lh`` count them (``999 B``, ``1.5 KiB``, ``1.8 MiB``, ``4.8 GiB``), one decimal
    above bytes; ``None`` (not known yet) -> ``unknown``."""
    if size is None:
        return unknown
    value = float(size)
    if abs(value) < 1024:
        return f"{int(value)} B"
    for unit in _UNITS[1:]:
        value /= 1024
        # 1023.96 KiB would round to "1024.0 KiB": that is 1.0 MiB.
        if round(abs(value), 1) < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def signed_size(delta: int) -> str:
    """A change in bytes with its sign: ``+1.2 MiB``, ``-300 B``, ``0 B``."""
    if delta == 0:
        return "0 B"
    return ("+" if delta > 0 else "-") + human_size(abs(delta))


def short_digest(digest: str | None, length: int = 12) -> str:
    """``sha256:abcdef…`` -> ``abcdef012345`` (the hex part, cut)."""
    if not digest:
        return ""
    return digest.split(":", 1)[-1][:length]


def parse_created(value: str | None) -> datetime | None:
    """An image config's ``created`` (RFC 3339, maybe with nanoseconds) as an aware datetime
    (:func:`regtui_retention.times.parse_time`, which the retention planner shares)."""
    return parse_time(value)


def format_created(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else ""


def compact_time(value: datetime | None, now: datetime | None = None) -> str:
    """A date for a narrow column, 11 cells at most: ``12-07 04:05`` within this year (UTC),
    ``2024-05-01`` before it; ``-`` when unknown."""
    if value is None:
        return "-"
    value = value.astimezone(UTC)
    this_year = (now or datetime.now(UTC)).astimezone(UTC).year
    return f"{value:%m-%d %H:%M}" if value.year == this_year else f"{value:%Y-%m-%d}"


PLATFORMS_WIDTH = 24
"""Cells of a platforms cell in a table: more platforms than fit are cut, after their count."""


def platforms_cell(platforms: Sequence[str], width: int = PLATFORMS_WIDTH) -> str:
    """An image's platforms for a narrow column: one as it is (``linux/amd64``); several as
    their count and names, ``linux/`` left out when all are Linux and the rest cut with ``…``
    (``3: amd64, arm64, arm/v7``; ``arm64/v8`` is written ``arm64``)."""
    if len(platforms) <= 1:
        return "".join(platforms)
    # arm64/v8 is what arm64 means (containerd normalises it so): the shorter name.
    names = [
        name.removesuffix("/arm64/v8") + "/arm64" if name.endswith("/arm64/v8") else name
        for name in platforms
    ]
    if all(name.startswith("linux/") for name in names):
        names = [name.removeprefix("linux/") for name in names]
    text = f"{len(names)}: {', '.join(names)}"
    return text if len(text) <= width else text[: width - 1] + "…"


HEADER_CHROME = 20
"""Cells of the header that are not the title: the icon on the left, the space on the right."""


def fit_title(title: str, subtitle: str, host: str, width: int) -> tuple[str, str]:
    """The header's title and subtitle for a terminal ``width`` cells wide: the registry's
    host always stays in view. Too long, the subtitle becomes the bare ``host``; still too
    long, the title is cut in the middle (``library/pyth…@450e778b7d4a``)."""
    room = width - HEADER_CHROME
    if len(title) + 3 + len(subtitle) <= room:
        return title, subtitle
    subtitle = host
    left = room - 3 - len(subtitle)
    if len(title) <= left:
        return title, subtitle
    if left < 5:
        return title[: max(left - 1, 0)] + "…" if left > 1 else "", subtitle
    head = (left - 1) // 2
    tail = left - 1 - head
    return f"{title[:head]}…{title[-tail:]}", subtitle
