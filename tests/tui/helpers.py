"""Reading the app's state in tests: notifications, screens, widgets."""

from __future__ import annotations

from typing import Any

from textual.app import App


def notifications(app: App[Any]) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]
