"""Times as the registry writes them (standard library only: the CLI's every command may
import it without loading the planner)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["parse_time"]


def parse_time(value: object) -> datetime | None:
    """RFC 3339 text (maybe with nanoseconds, as Go writes them) as an aware datetime; None
    for anything else. A time without a zone is taken as UTC."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    # Python's parser takes at most 6 fractional digits; Go writes up to 9.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]  # not the zone's digits
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
