"""The ``startedat`` file of an upload session (``_uploads/<uuid>/startedat``), in the format
Distribution writes and reads: the served store (:mod:`embedded_registry.storage.driven`) writes
it when a session starts and reads it to purge stale sessions."""

from __future__ import annotations

from datetime import UTC, datetime


def startedat_text() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


def parse_startedat(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    main, _, rest = text.partition(".")
    fraction = rest.rstrip("Z")[:6] if rest else ""
    try:
        moment = datetime.strptime(main.rstrip("Z"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.timestamp() + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)
