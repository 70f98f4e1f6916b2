"""Events: the bundled registry's recent pushes, pulls, mounts and deletes, live, with who did
each and from where (its administrative events extension, administrators only).

``a`` cycles the action shown (any, push, pull, mount, delete); ``/`` filters repositories by
name; ``c`` clears both. The list follows the registry by long poll; a refusal (not an
administrator) or a registry without the extension is a notification and a status line.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from tui.client import NotFoundError, RefusedError
from tui.client.ext import RegistryEvent, recent_events
from tui.logic.escape import visible_markup
from tui.logic.events import COLUMNS, EventFilter, next_action, row
from tui.screens.base import RegtuiScreen
from tui.widgets.filter_bar import FilterBar
from tui.widgets.table import Table

KEEP = 2000
"""Events the screen keeps (the server keeps as many)."""
POLL_WAIT = 20.0
"""Seconds of one long poll: the server answers at once when an event comes."""


class EventsScreen(RegtuiScreen):
    """The registry's events, newest first, live; filterable by action and repository."""

    BINDINGS = [
        Binding("a", "cycle_action", "Action", id="events-action", tooltip="Show one action"),
        Binding("c", "clear_filters", "Clear", id="events-clear", tooltip="Clear the filters"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.events: list[RegistryEvent] = []
        self.filter = EventFilter()
        self.live = False
        self.problem: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Reading the registry's events…", id="events-status", classes="heading")
        table: Table[str] = Table(id="events-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield FilterBar("Filter repositories…")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Events"
        self.sub_title = self.regtui.settings.title or self.regtui.settings.registry
        table = self.query_one("#events-table", DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        table.focus()
        self.follow()

    def focus_main(self) -> None:
        self.query_one("#events-table", DataTable).focus()

    @property
    def shown(self) -> list[RegistryEvent]:
        return self.filter.apply(reversed(self.events))

    def _render_rows(self) -> None:
        table = self.query_one("#events-table", DataTable)
        table.clear()
        for event in self.shown:
            table.add_row(*(visible_markup(cell) for cell in row(event)))
        self._status()

    def _status(self) -> None:
        if self.problem is not None:
            text = self.problem
        else:
            state = "live" if self.live else "connecting…"
            shown, total = len(self.shown), len(self.events)
            text = f"{shown} of {total} events · {state}"
        wanted = []
        if self.filter.action:
            wanted.append(f"action: {self.filter.action}")
        if self.filter.repository:
            wanted.append(f"repository contains {self.filter.repository!r}")
        hint = " · ".join(wanted) if wanted else "a: one action · /: repositories"
        self.query_one("#events-status", Static).update(visible_markup(f"{text} · {hint}"))

    def apply_filter(self, query: str) -> None:
        self.filter = EventFilter(self.filter.action, query.strip())
        self._render_rows()

    def action_cycle_action(self) -> None:
        self.filter = EventFilter(next_action(self.filter.action), self.filter.repository)
        self._render_rows()

    def action_clear_filters(self) -> None:
        bar = self.filter_bar
        if bar is not None and bar.value:
            bar.clear_and_close()
        self.filter = EventFilter()
        self._render_rows()

    @work(exclusive=True, group="events", exit_on_error=False)
    async def follow(self) -> None:
        """Read the events, then wait for new ones (long poll) while the screen is open."""
        client = self.regtui.client
        instance, since, wait = "", 0, 0.0
        try:
            while True:
                page = await recent_events(client, since=since, wait=wait)
                wait = POLL_WAIT  # the first answer at once; then wait for news
                if instance and page.instance != instance:  # the registry restarted
                    instance, since = page.instance, 0
                    continue
                instance, since = page.instance, page.next
                if page.events or not self.live:
                    self.events = (self.events + list(page.events))[-KEEP:]
                    self.live = True
                    self._render_rows()
        except Exception as exc:
            self.problem = f"No events: {_why(exc)}"
            self._status()
            raise


def _why(error: Exception) -> str:
    """The status line's reason (the notification has the registry's own words)."""
    if isinstance(error, RefusedError):
        return "the registry shows them to its administrators only"
    if isinstance(error, NotFoundError):
        return "this registry has none to show (regtui's bundled registry has)"
    return "they could not be read (see the notification)"
