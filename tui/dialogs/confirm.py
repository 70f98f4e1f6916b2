"""A yes/no dialog that states exactly what will happen (digests and tags, never vague)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tui.logic.escape import visible_lines, visible_markup


class ConfirmDialog(ModalScreen[bool]):
    """Returns ``True`` only when the user confirms; escape and ``n`` cancel.

    However long the body, the buttons stay in view: the body scrolls (up/down, page up/down)
    and the buttons are docked at the dialog's bottom edge (see ``app.tcss``).
    """

    BINDINGS = [
        Binding("escape,n", "cancel", "Cancel", id="confirm-cancel"),
        Binding("y", "confirm", "Confirm", id="confirm-yes"),
        Binding("up", "scroll_body('up')", "Scroll up", show=False),
        Binding("down", "scroll_body('down')", "Scroll down", show=False),
        Binding("pageup", "scroll_body('page_up')", "Page up", show=False),
        Binding("pagedown", "scroll_body('page_down')", "Page down", show=False),
    ]

    def __init__(
        self, title: str, body: str, *, confirm_label: str = "Delete", danger: bool = True
    ) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm_label = confirm_label
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            # Both may name tags and repositories from the registry: shown escaped, as text.
            yield Static(visible_markup(self.title_text), classes="dialog-title")
            with VerticalScroll(id="confirm-scroll", classes="dialog-body"):
                yield Static(visible_lines(self.body), id="confirm-body", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    f"{self.confirm_label} (y)",
                    id="confirm",
                    variant="error" if self.danger else "primary",
                )
                yield Button("Cancel (n)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_scroll_body(self, direction: str) -> None:
        body = self.query_one("#confirm-scroll", VerticalScroll)
        getattr(body, f"scroll_{direction}")(animate=False)

    def action_confirm(self) -> None:
        self.dismiss(True)
