"""The "Copy to…" dialog: where an image goes (a registry, an OCI layout, a ``docker save``
archive), which platforms, and whether its referrers go along."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Static

from tui.data.copy_to import CopyRequest, parse_request

HELP = (
    "To: HOST/REPO[:TAG] (this registry or another), oci:DIR[:TAG] or "
    "docker-archive:FILE[:NAME:TAG]. Platform: all, or OS/ARCH[/VARIANT]. "
    "Enter copies, escape cancels."
)


class CopyDialog(ModalScreen[CopyRequest | None]):
    """Returns what to copy where, or ``None`` on escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="copy-cancel")]

    def __init__(self, source: str, destination: str) -> None:
        super().__init__()
        self.source = source
        self.initial = destination

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Static("Copy to…", classes="dialog-title")
            yield Static(f"From: {self.source}", markup=False)
            yield Input(value=self.initial, placeholder="HOST/REPO:TAG", id="copy-destination")
            yield Input(value="all", placeholder="all or OS/ARCH", id="copy-platform")
            yield Checkbox("Referrers too (signatures, SBOMs)", id="copy-referrers")
            yield Static(HELP, markup=False, classes="dim")
            yield Static("", id="copy-error", classes="error-text", markup=False)

    def on_mount(self) -> None:
        self.query_one("#copy-destination", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            request = parse_request(
                self.query_one("#copy-destination", Input).value,
                self.query_one("#copy-platform", Input).value,
                self.query_one("#copy-referrers", Checkbox).value,
            )
        except ValueError as error:
            self.query_one("#copy-error", Static).update(str(error))
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)
