"""Per-item outcome of a bulk operation: what worked, what failed and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


@dataclass(frozen=True)
class ItemResult:
    label: str
    ok: bool
    detail: str = ""


class ResultsDialog(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,q", "close", "Close", id="results-close")]

    def __init__(self, title: str, results: Sequence[ItemResult]) -> None:
        super().__init__()
        self.title_text = title
        self.results = list(results)

    def compose(self) -> ComposeResult:
        ok = sum(1 for result in self.results if result.ok)
        with Vertical(id="dialog", classes="dialog"):
            yield Static(
                f"{self.title_text}: {ok} done, {len(self.results) - ok} failed",
                classes="dialog-title",
            )
            with VerticalScroll(id="results-scroll", classes="dialog-body"):
                yield Static(self._body(), id="results-body")
            yield Static("enter or escape closes", classes="dim dialog-footer")

    def _body(self) -> Text:
        text = Text()
        for result in self.results:
            mark, style = ("✓", "green") if result.ok else ("✗", "red")
            text.append(f"{mark} ", style=style)
            text.append(result.label)
            if result.detail:
                text.append(f" — {result.detail}", style="dim" if result.ok else "red")
            text.append("\n")
        return text

    def action_close(self) -> None:
        self.dismiss(None)
