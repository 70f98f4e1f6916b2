"""What every screen shares: the app's typed handle, the keys every screen has (``?``, ``q``,
``/``, esc, Home/End), the filter bar, keys that cannot work here, worker error routing."""

from __future__ import annotations

from typing import cast

from textual import events
from textual.actions import SkipAction
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input
from textual.worker import Worker

from tui.host import RegtuiHost
from tui.logic.fmt import fit_title
from tui.widgets.filter_bar import FilterBar


def guarded(
    key: str, action: str, description: str, *, id: str, tooltip: str = ""
) -> list[Binding]:
    """A key that may not work on every registry: ``key`` runs ``action`` where it can, and is
    hidden from the footer where it cannot; pressed there, it says why (never silently nothing).

    The screen names the reason in :meth:`RegtuiScreen.unavailable_reason`.
    """
    return [
        Binding(key, action, description, id=id, tooltip=tooltip),
        Binding(
            key,
            f"why_unavailable('{action}')",
            f"{tooltip or description} (unavailable here)",
            id=f"{id}-why",
            show=False,
        ),
    ]


class RegtuiScreen(Screen[None]):
    """Base screen. Subclasses implement ``apply_filter`` and ``focus_main``."""

    # ``?`` and ``q`` come first: the footer shows keys in this order, so they stay in view in
    # an 80-column terminal whatever the screen adds after them.
    BINDINGS = [
        Binding("question_mark", "app.help", "Help", id="help"),
        Binding("q", "app.quit", "Quit", id="quit"),
        # Not in the footer: the room is for the screen's own keys; each list's status line
        # says "/ filters", and help lists it.
        Binding("slash", "filter", "Filter", id="filter", show=False),
        Binding("escape", "back", "Back", id="back"),
        # Priority: a DataTable with a row cursor binds Home/End to a sideways scroll; these
        # move the cursor to the first/last row instead, in every table of every screen.
        Binding("home", "cursor_first", "First row", id="first-row", show=False, priority=True),
        Binding("end", "cursor_last", "Last row", id="last-row", show=False, priority=True),
    ]

    SHOWS_PALETTE_KEY = False
    """Whether the footer shows ``^p Commands`` (the registry screen; help names it elsewhere):
    at 80 columns, its 12 cells go to the screen's own keys instead."""

    @property
    def regtui(self) -> RegtuiHost:
        return cast("RegtuiHost", self.app)

    def on_mount(self) -> None:
        # A compact footer: one space between keys, so more of them fit in 80 columns.
        for footer in self.query(Footer):
            footer.compact = True
            footer.show_command_palette = self.SHOWS_PALETTE_KEY
        # Runs after the screen's own on_mount, which set the title.
        self._titles = (self.title or "", self.sub_title or self.app.sub_title or "")
        self._fit_titles(self.app.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self._fit_titles(event.size.width)

    def _fit_titles(self, width: int) -> None:
        """Titles keep the registry's host in view, however narrow the terminal."""
        titles = getattr(self, "_titles", None)
        if titles is None:
            return
        host = self.regtui.settings.registry
        for scheme in ("https://", "http://"):
            host = host.removeprefix(scheme)
        self.title, self.sub_title = fit_title(titles[0], titles[1], host, width)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker.StateChanged does not bubble: every screen forwards it to the one error path.
        self.regtui.handle_worker_state(event.worker, event.state)

    # -- filtering ----------------------------------------------------------------------------
    def apply_filter(self, query: str) -> None:
        """Show only the items matching ``query`` (overridden by screens with a list)."""

    def focus_main(self) -> None:
        """Give focus to the screen's main list."""

    @property
    def filter_bar(self) -> FilterBar | None:
        bars = self.query(FilterBar)
        return bars.first() if bars else None

    def action_filter(self) -> None:
        bar = self.filter_bar
        if bar is not None:
            bar.open()

    def on_input_changed(self, event: Input.Changed) -> None:
        if isinstance(event.input, FilterBar):
            self.apply_filter(event.value)
            self.refresh_bindings()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if isinstance(event.input, FilterBar):
            self.focus_main()

    def on_filter_bar_closed(self, event: FilterBar.Closed) -> None:
        self.apply_filter("")
        self.focus_main()
        self.refresh_bindings()

    def action_back(self) -> None:
        bar = self.filter_bar
        if bar is not None and bar.value:
            bar.clear_and_close()
            return
        if self._can_go_back():
            self.app.pop_screen()

    def _can_go_back(self) -> bool:
        # The first screen sits on Textual's default screen: there is nothing to go back to.
        stack = self.app.screen_stack
        below = stack[: stack.index(self)] if self in stack else stack
        return any(isinstance(screen, RegtuiScreen) for screen in below)

    # -- Home/End in tables -------------------------------------------------------------------
    def _focused_row_table(self) -> DataTable[object]:
        focused = self.focused
        if isinstance(focused, DataTable) and focused.cursor_type == "row":
            return focused
        raise SkipAction()  # the focused widget's own Home/End (a tree, an input) runs instead

    def action_cursor_first(self) -> None:
        table = self._focused_row_table()
        if table.row_count:
            table.move_cursor(row=0, animate=False)

    def action_cursor_last(self) -> None:
        table = self._focused_row_table()
        if table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)

    # -- keys that cannot work here -----------------------------------------------------------
    def unavailable_reason(self, action: str) -> str | None:
        """Why ``action`` cannot work now (a sentence), or ``None`` when it can.

        Screens override this for the actions they bind with :func:`guarded`.
        """
        return None

    def action_why_unavailable(self, action: str) -> None:
        reason = self.unavailable_reason(action)
        if reason:
            self.notify(reason, title="Not available", severity="warning")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter" and self.filter_bar is None:
            return False
        if action == "back":
            bar = self.filter_bar
            return self._can_go_back() or (bar is not None and bool(bar.value)) or False
        if action == "why_unavailable":
            wanted = str(parameters[0]) if parameters else ""
            return self.unavailable_reason(wanted) is not None
        if self.unavailable_reason(action) is not None:
            return False
        return super().check_action(action, parameters)

    def is_read_only(self) -> bool:
        return self.regtui.read_only
