"""What every screen shares: the app's typed handle, the filter bar, worker error routing."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input
from textual.worker import Worker

from tui.widgets.filter_bar import FilterBar

if TYPE_CHECKING:
    from tui.app import RegtuiApp


class RegtuiScreen(Screen[None]):
    """Base screen. Subclasses implement ``apply_filter`` and ``focus_main``."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("escape", "back", "Back", id="back"),
    ]

    @property
    def regtui(self) -> RegtuiApp:
        return cast("RegtuiApp", self.app)

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

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if isinstance(event.input, FilterBar):
            self.focus_main()

    def on_filter_bar_closed(self, event: FilterBar.Closed) -> None:
        self.apply_filter("")
        self.focus_main()

    def action_back(self) -> None:
        bar = self.filter_bar
        if bar is not None and bar.value:
            bar.clear_and_close()
            return
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter" and self.filter_bar is None:
            return False
        return super().check_action(action, parameters)

    def is_read_only(self) -> bool:
        return self.regtui.read_only
