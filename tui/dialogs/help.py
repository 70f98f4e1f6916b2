"""``?``: the keys of the screen below, its own keys first, then the list's, then the rest."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

_KEY_NAMES = {
    # Words where Textual would show a symbol: help is read, not matched against a keycap.
    "space": "space",
    "escape": "esc",
    "enter": "enter",
    "pageup": "page up",
    "pagedown": "page down",
}

COMMON_BINDING_IDS = frozenset(
    {"help", "quit", "filter", "back", "palette", "first-row", "last-row"}
)
"""Keys every screen has: listed last, under "Everywhere"."""

SECTIONS = ("This screen", "In the list", "Everywhere")


def _one_key(key: str) -> str:
    *modifiers, name = key.strip().split("+")
    shown = _KEY_NAMES.get(name) or format_key(name)
    return "+".join([*modifiers, shown])


def key_label(key: str) -> str:
    """A binding's key as the user types it: ``equals_sign`` -> ``=``, ``question_mark`` ->
    ``?``, ``left_square_bracket`` -> ``[``, ``ctrl+pagedown`` -> ``ctrl+page down``; several
    keys joined by commas."""
    return ", ".join(_one_key(part) for part in key.split(",") if part.strip())


@dataclass(frozen=True)
class HelpEntry:
    section: str
    key: str
    description: str
    enabled: bool = True


def help_entries(under: Screen[object]) -> list[HelpEntry]:
    """The active keys of ``under``, grouped into :data:`SECTIONS` in that order.

    "This screen": keys bound by the screen itself (not the shared ones); "In the list": keys
    of the focused widget (moving, opening); "Everywhere": the keys every screen shares and the
    app's. A key that cannot work here is listed with its reason's short form.
    """
    grouped: dict[str, list[HelpEntry]] = {section: [] for section in SECTIONS}
    seen: set[str] = set()
    app = under.app
    # Textual's own screen keys (tab, shift+tab, ctrl+c) are the same on every screen.
    textual_keys = {
        (key, binding.action)
        for key, bindings in Screen._merge_bindings().key_to_bindings.items()
        for binding in bindings
    }
    for key, active in under.active_bindings.items():
        binding = active.binding
        if not binding.description or binding.description in seen:
            continue
        seen.add(binding.description)
        common = binding.id in COMMON_BINDING_IDS or (key, binding.action) in textual_keys
        if active.node is app or common:
            section = "Everywhere"
        elif active.node is under:
            section = "This screen"
        else:
            section = "In the list"
        grouped[section].append(
            # The tooltip, where a binding has one, is the footer's short word said in full.
            HelpEntry(
                section, key_label(key), binding.tooltip or binding.description, active.enabled
            )
        )
    return [entry for section in SECTIONS for entry in grouped[section]]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help-close")]

    def __init__(self, under: Screen[object]) -> None:
        super().__init__()
        self.under = under
        self.entries = help_entries(under)

    def _table(self) -> Table:
        table = Table(box=None, show_header=False, padding=(0, 2))
        table.add_column("Key", style="bold cyan", no_wrap=True)
        table.add_column("Action")
        section = ""
        for entry in self.entries:
            if entry.section != section:
                if section:
                    table.add_row("", "")
                section = entry.section
                table.add_row(Text(section, style="bold"), "")
            description = Text(entry.description, style="" if entry.enabled else "dim")
            table.add_row(entry.key, description)
        return table

    def compose(self) -> ComposeResult:
        # The screen's docstring, first paragraph: what the screen is for.
        doc = " ".join((self.under.__doc__ or "").strip().split("\n\n")[0].split())
        with Vertical(id="dialog", classes="dialog help"):
            yield Static(
                f"Help — {self.under.title or self.under.__class__.__name__}",
                classes="dialog-title",
            )
            if doc:
                yield Static(doc, classes="dim")
            with VerticalScroll(id="help-scroll", classes="dialog-body"):
                yield Static(self._table(), id="help-keys")
            yield Static(
                "Every list filters with /. ctrl+p opens the command palette. esc goes back.",
                classes="dim dialog-footer",
            )

    def on_mount(self) -> None:
        self.query_one("#help-scroll", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
