"""Search the registry from the app: tags by pattern, or where a digest is used.

Opened from the command palette ("Find tags or digest…"). Type a tag glob (``1.*``), ``re:`` and
a regular expression, or a digest (``sha256:…``), then enter: hits appear as repositories are
scanned, with a progress line; esc (or ``x`` in the results) cancels. The query box keeps the
focus for the next query; down goes to the results, where enter opens an image.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from tui.client.reference import DIGEST_RE
from tui.data.search import SearchProgress, search_registry
from tui.logic.escape import visible_markup
from tui.logic.find import InvalidPatternError, TagPattern
from tui.logic.fmt import short_digest
from tui.screens.base import RegtuiScreen
from tui.screens.image import ImageScreen
from tui.widgets.table import Table

if TYPE_CHECKING:
    pass

PROGRESS_INTERVAL = 0.1


def parse_query(text: str) -> tuple[TagPattern | None, str | None]:
    """``sha256:…`` is a digest, ``re:EXPR`` a regular expression, anything else a glob."""
    text = text.strip()
    if DIGEST_RE.match(text) and ":" in text and not text.startswith("re:"):
        return None, text
    if text.startswith("re:"):
        return TagPattern(text[3:], regex=True), None
    return TagPattern(text or "*"), None


class FindScreen(RegtuiScreen):
    """Find across every repository; results arrive while the search runs."""

    DEFAULT_CSS = """
    FindScreen #find-query { margin: 0 1; }
    FindScreen #find-results { height: 1fr; }
    """

    BINDINGS = [
        Binding("x", "cancel", "Cancel", id="find-cancel"),
        # The query box keeps the focus after a search (the next query is typed at once):
        # down goes to the results, tab too.
        # Priority: the query box binds down itself (to scroll a one-line text). Only while
        # it has the focus (check_action): in the results, down moves the cursor.
        Binding(
            "down", "to_results", "Results", id="find-to-results", key_display="↓", priority=True
        ),
    ]

    def __init__(self, query: str = "") -> None:
        super().__init__()
        self.initial = query
        self.state = "idle"
        self.hits = 0
        self._last_progress = 0.0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            "Find: a tag glob (1.*), re: and a regular expression, or a digest (sha256:…)",
            classes="heading",
        )
        yield Input(value=self.initial, placeholder="1.* or sha256:…", id="find-query")
        yield Table(id="find-results", cursor_type="row")
        yield Static("Type a query and press enter.", id="status", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Find"
        self.query_one(DataTable).add_columns("Repository", "Tag", "Match", "Digest", "Platform")
        self.query_one(Input).focus()

    def focus_main(self) -> None:
        self.query_one(DataTable).focus()

    def set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.state == "searching"
        if action == "to_results":
            return isinstance(self.focused, Input) and self.query_one(DataTable).row_count > 0
        return super().check_action(action, parameters)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "find-query":
            return
        event.stop()
        try:
            pattern, digest = parse_query(event.value)
        except InvalidPatternError as error:
            self.set_status(str(error))
            return
        self.search(pattern, digest)

    @work(exclusive=True, group="find", exit_on_error=False)
    async def search(self, pattern: TagPattern | None, digest: str | None) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self.hits = 0
        self.state = "searching"
        self.refresh_bindings()
        self.set_status("Searching…")
        try:
            async for hit in search_registry(
                self.regtui.client, pattern=pattern, digest=digest, on_progress=self._progress
            ):
                self.hits += 1
                table.add_row(
                    visible_markup(hit.repository),
                    visible_markup(hit.tag),
                    "tag" if hit.digest is None else str(hit.kind),
                    short_digest(hit.digest) if hit.digest else "",
                    visible_markup(str(hit.platform)) if hit.platform else "",
                    key=f"{hit.repository}\n{hit.tag}\n{self.hits}",
                )
        except Exception:
            self.state = "failed"
            self.refresh_bindings()
            self.set_status("The search failed.")
            raise
        self.state = "done"
        self.refresh_bindings()
        self.set_status(
            f"{self.hits} found · ↓ goes to the results, enter there opens an image"
            if self.hits
            else "Nothing found · type another query"
        )

    def _progress(self, progress: SearchProgress) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL and not progress.catalog_complete:
            return
        self._last_progress = now
        seen = f"{progress.repositories_seen}" + ("" if progress.catalog_complete else "+")
        self.set_status(
            f"Searching… repositories {progress.repositories_done}/{seen} · "
            f"manifests {progress.manifests_read:,} · {progress.hits} found · esc cancels"
        )

    def action_to_results(self) -> None:
        self.focus_main()

    def action_cancel(self) -> None:
        if self.state != "searching":
            return
        self.workers.cancel_group(self, "find")
        self.state = "cancelled"
        self.refresh_bindings()
        self.set_status(f"Cancelled: {self.hits} found so far.")

    def action_back(self) -> None:
        """esc: stops a running search (the query box has the focus, where x is typed);
        otherwise back."""
        if self.state == "searching":
            self.action_cancel()
            return
        super().action_back()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key is None:
            return
        repository, tag, _ = str(key).split("\n", 2)
        self.app.push_screen(ImageScreen(repository, tag))
