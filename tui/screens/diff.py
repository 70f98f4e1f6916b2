"""Compare two tags of a repository: config, layers, sizes, then every file (streamed).

Opened from the repository screen (``=``: the two marked tags, one marked tag and the one under
the cursor, or the cursor's tag and a tag you type). Config and layers show at once; the files
follow while the layers stream, with a progress bar. ``x`` cancels, ``s`` sorts by path or by
size of the change, ``/`` filters by path.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

from tui.data.inside import ImageSource, LoadProgress, diff_images
from tui.logic.escape import visible, visible_markup
from tui.logic.fmt import count_of, human_size, signed_size
from tui.logic.fsmerge import Change, FileChange
from tui.logic.imagediff import ImageDiff, PlatformPickError, summarize_files
from tui.logic.inside_view import MAX_ROWS, diff_rows, diff_summary_lines, mode_string
from tui.screens.base import RegtuiScreen
from tui.widgets.filter_bar import FilterBar
from tui.widgets.table import Table

PROGRESS_INTERVAL = 0.1
MARKS = {
    Change.ADDED: Text("A", style="bold green"),
    Change.REMOVED: Text("D", style="bold red"),
    Change.MODIFIED: Text("M", style="bold yellow"),
}


class DiffScreen(RegtuiScreen):
    """Two images side by side: what changed, down to the file."""

    DEFAULT_CSS = """
    DiffScreen #diff-summary { height: auto; max-height: 12; padding: 0 1; }
    DiffScreen #diff-files { height: 1fr; }
    DiffScreen #diff-progress { padding: 0 1; height: 1; }
    """

    BINDINGS = [
        Binding("x", "cancel", "Cancel", id="diff-cancel"),
        Binding("s", "toggle_sort", "Sort", id="diff-sort"),
    ]

    def __init__(self, repository: str, before: str, after: str) -> None:
        super().__init__()
        self.repository = repository
        self.before = before
        self.after = after
        self.result: ImageDiff | None = None
        self.state = "loading"
        self.by_size = False
        self._query = ""
        self._last_progress = 0.0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            visible_markup(f"{self.repository}: {self.before} → {self.after}"),
            id="diff-heading",
            classes="heading",
        )
        yield FilterBar("Filter files by path…")
        yield ProgressBar(total=1, id="diff-progress", show_eta=False)
        with VerticalScroll(id="diff-summary"):
            yield Static("Loading…", id="diff-summary-text", markup=False)
        yield Table(id="diff-files", cursor_type="row")
        yield Static("Reading manifests…", id="status", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = visible(f"diff {self.repository}")
        table = self.query_one("#diff-files", DataTable)
        table.add_columns("", "Path", "Type", "Before", "After", "Change", "What changed")
        self.focus_main()
        self.load()

    def focus_main(self) -> None:
        self.query_one("#diff-files", DataTable).focus()

    def set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.state == "loading"
        return super().check_action(action, parameters)

    # -- loading ------------------------------------------------------------------------------
    def _source(self, reference: str) -> ImageSource:
        return ImageSource(
            self.regtui.client, self.repository, reference, f"{self.repository}:{reference}"
        )

    @work(exclusive=True, group="diff", exit_on_error=False)
    async def load(self) -> None:
        before, after = self._source(self.before), self._source(self.after)
        try:
            quick = await diff_images(before, after, files=False)
            self._show_summary(quick)
            self.set_status("Reading layers…")
            result = await diff_images(before, after, on_progress=self._progress)
        except PlatformPickError as error:
            self._stop("failed", f"Cannot compare: {error}")
            self.notify(str(error), title="Pick a platform", severity="warning")
            return
        except Exception:
            self._stop("failed", "Could not compare these images.")
            raise
        self.result = result
        self.query_one(ProgressBar).update(total=1, progress=1)
        self._show_summary(result)
        self._stop("done", None)
        self.render_files()

    def _stop(self, state: str, message: str | None) -> None:
        self.state = state
        self.refresh_bindings()
        if message:
            self.set_status(message)

    def _progress(self, progress: LoadProgress) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        bar = self.query_one(ProgressBar)
        bar.update(total=max(progress.bytes_total, 1), progress=progress.bytes_read)
        self.set_status(
            f"Reading {progress.label} · layer {progress.step}/{progress.steps} · "
            f"{human_size(progress.bytes_read)} of {human_size(progress.bytes_total)} · "
            f"{count_of(progress.entries, 'entry')} · x cancels"
        )

    def _show_summary(self, result: ImageDiff) -> None:
        self.query_one("#diff-summary-text", Static).update("\n".join(diff_summary_lines(result)))

    # -- the files table ----------------------------------------------------------------------
    def render_files(self) -> None:
        if self.result is None or self.result.files is None:
            return
        rows = diff_rows(self.result.files, query=self._query, by_size=self.by_size)
        table = self.query_one("#diff-files", DataTable)
        table.clear()
        for change in rows[:MAX_ROWS]:
            table.add_row(*_cells(change), key=change.path)
        counted = summarize_files(self.result.files)
        shown = f" · showing {MAX_ROWS:,} of {len(rows):,}" if len(rows) > MAX_ROWS else ""
        matching = f" · {len(rows):,} match" if self._query else ""
        order = "size of change" if self.by_size else "path"
        self.set_status(
            f"{counted.added} added · {counted.removed} removed · {counted.modified} modified · "
            f"{signed_size(counted.size_change)}{matching}{shown} · sorted by {order}"
        )

    def apply_filter(self, query: str) -> None:
        self._query = query.strip()
        self.render_files()

    def action_toggle_sort(self) -> None:
        self.by_size = not self.by_size
        self.render_files()

    def action_cancel(self) -> None:
        if self.state != "loading":
            return
        self.workers.cancel_group(self, "diff")
        self._stop("cancelled", "Cancelled: config and layers above are complete, files are not.")

    def action_back(self) -> None:
        if self.state == "loading":
            self.workers.cancel_group(self, "diff")
        super().action_back()


def _cells(change: FileChange) -> tuple[Text | str, ...]:
    shown = change.after or change.before
    assert shown is not None
    before = human_size(change.size_before) if change.before else "—"
    after = human_size(change.size_after) if change.after else "—"
    what = ", ".join(change.fields)
    if "mode" in change.fields and change.before and change.after:
        what = what.replace(
            "mode", f"mode {mode_string(change.before)}→{mode_string(change.after)}"
        )
    path = change.path + ("/" if shown.is_dir else "")
    return (
        MARKS[change.change],
        visible_markup(path),
        str(shown.type),
        before,
        after,
        signed_size(change.size_delta),
        what,
    )
