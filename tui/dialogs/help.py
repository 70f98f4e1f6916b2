"""``?``: the keys of the screen below, with what they do."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

_KEY_NAMES = {
    "question_mark": "?",
    "slash": "/",
    "space": "space",
    "escape": "esc",
    "enter": "enter",
}


def key_label(key: str) -> str:
    return ", ".join(_KEY_NAMES.get(part, part) for part in key.split(","))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help-close")]

    def __init__(self, under: Screen[object]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2))
        table.add_column("Key", style="bold cyan")
        table.add_column("Action")
        seen: set[str] = set()
        for key, active in self.under.active_bindings.items():
            binding = active.binding
            if not binding.description or binding.description in seen:
                continue
            seen.add(binding.description)
            table.add_row(key_label(key), binding.description)
        doc = (self.under.__doc__ or "").strip().splitlines()
        with Vertical(id="dialog", classes="dialog help"):
            yield Static(
                f"Help — {self.under.title or self.under.__class__.__name__}",
                classes="dialog-title",
            )
            if doc:
                yield Static(doc[0], classes="dim")
            with VerticalScroll(classes="dialog-body"):
                yield Static(table)
            yield Static(
                "Every list filters with /. ctrl+p opens the command palette. esc goes back.",
                classes="dim",
            )

    def action_close(self) -> None:
        self.dismiss(None)
