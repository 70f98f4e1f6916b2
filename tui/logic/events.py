"""The registry's events as rows and filters (``regtui events`` and the Events screen alike).

Pure: no I/O, no Textual. An event is a :class:`tui.client.ext.RegistryEvent`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tui.client.ext import RegistryEvent
from tui.logic.fmt import human_size

ACTIONS = ("push", "pull", "mount", "delete")
COLUMNS = ("TIME", "ACTION", "REPOSITORY", "WHAT", "SIZE", "WHO", "FROM")


def clock(timestamp: str) -> str:
    """``2026-12-07T08:34:13.4677Z`` -> ``2026-12-07 08:34:13`` (UTC, to the second)."""
    day, _, rest = timestamp.partition("T")
    return f"{day} {rest[:8]}" if rest else timestamp


def what(event: RegistryEvent) -> str:
    """The object of the event: the tag (and digest) of a manifest, a blob's digest; a mount
    says where from."""
    digest = event.digest.split(":", 1)[-1][:12] if event.digest else ""
    text = f"{event.tag} @{digest}" if event.tag and digest else event.tag or digest
    if event.from_repository:
        text += f" from {event.from_repository}"
    return text


def who(event: RegistryEvent) -> str:
    return event.actor or "anonymous"


def row(event: RegistryEvent) -> tuple[str, ...]:
    """One event under :data:`COLUMNS` (plain text: the caller escapes it for its output)."""
    return (
        clock(event.timestamp),
        event.action,
        event.repository,
        what(event),
        human_size(event.size) if event.size else "",
        who(event),
        event.addr or "",
    )


@dataclass(frozen=True)
class EventFilter:
    """Which events to show: one action (or any), repositories containing a text (or any)."""

    action: str | None = None
    repository: str = ""

    def matches(self, event: RegistryEvent) -> bool:
        if self.action is not None and event.action != self.action:
            return False
        return self.repository.lower() in event.repository.lower()

    def apply(self, events: Iterable[RegistryEvent]) -> list[RegistryEvent]:
        return [event for event in events if self.matches(event)]


def next_action(current: str | None) -> str | None:
    """The action filter after ``current`` in the cycle any -> push -> pull -> mount -> delete."""
    if current is None:
        return ACTIONS[0]
    index = ACTIONS.index(current) + 1 if current in ACTIONS else len(ACTIONS)
    return ACTIONS[index] if index < len(ACTIONS) else None
