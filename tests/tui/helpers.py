"""Reading the app's state in tests: notifications, screens, widgets."""

from __future__ import annotations

from textual.app import App


def notifications(app: App[object]) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]
