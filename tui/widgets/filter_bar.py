"""The ``/`` filter: an input that appears on demand and filters the list as you type."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class FilterBar(Input):
    """Hidden until ``open()``; ``escape`` clears it, hides it and posts ``Closed``."""

    BINDINGS = [Binding("escape", "close", "Clear filter", id="filter-close")]

    class Closed(Message):
        """The user left the filter with escape (the filter is now empty)."""

    def __init__(self, placeholder: str = "Filter…", *, id: str | None = "filter") -> None:
        super().__init__(placeholder=placeholder, id=id)
        self.display = False

    def open(self) -> None:
        self.display = True
        self.focus()

    def clear_and_close(self) -> None:
        self.value = ""
        self.display = False
        self.post_message(self.Closed())

    def action_close(self) -> None:
        self.clear_and_close()
