"""An image's filesystem as of a chosen layer, dive's main view, with wasted space and efficiency.

Opened from the image screen (``m`` on the layers tab). Every layer streams once into metadata
(progress bar, ``x`` cancels); then choosing a layer in the upper table shows the merged
filesystem as of that layer, each path marked ``A``dded / ``M``odified / ``D``eleted by it.
``s`` sorts by path or size, ``c`` shows only what the layer changed, ``/`` filters by path;
``t`` switches between the flat list and the tree that folds and unfolds (``space``), as dive
shows it.
Stacking runs in a thread: the screen never blocks.
"""

from __future__ import annotations

import asyncio
import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

from tui.client import ImageManifest, match_history
from tui.data.inside import ImageSource, LoadProgress, ResolvedImage, read_layers, resolve_image
from tui.logic.escape import visible, visible_markup
from tui.logic.fmt import count_of, human_size, short_digest
from tui.logic.fsmerge import (
    Change,
    LayerChanges,
    MergedView,
    PathKey,
    directory_sizes,
    merge_layers,
)
from tui.logic.inside_view import MAX_ROWS, MergedRow, efficiency_text, merged_rows, mode_string
from tui.screens.base import RegtuiScreen
from tui.widgets.filter_bar import FilterBar
from tui.widgets.merged_tree import MergedTree
from tui.widgets.table import Table

PROGRESS_INTERVAL = 0.1
MARKS = {
    Change.ADDED: Text("A", style="bold green"),
    Change.REMOVED: Text("D", style="bold red"),
    Change.MODIFIED: Text("M", style="bold yellow"),
    Change.UNCHANGED: Text(" "),
}


class MergedFsScreen(RegtuiScreen):
    """The merged filesystem of an image, layer by layer."""

    DEFAULT_CSS = """
    MergedFsScreen #merged-layers { height: auto; max-height: 8; }
    MergedFsScreen #merged-files { height: 1fr; }
    MergedFsScreen #merged-tree { height: 1fr; display: none; }
    MergedFsScreen.-tree #merged-tree { display: block; }
    MergedFsScreen.-tree #merged-files { display: none; }
    MergedFsScreen #merged-progress { padding: 0 1; height: 1; }
    """

    BINDINGS = [
        Binding("x", "cancel", "Cancel", id="merged-cancel"),
        Binding("s", "toggle_sort", "Sort", id="merged-sort"),
        Binding("c", "toggle_changes", "Only changes", id="merged-changes"),
        Binding("t", "toggle_tree", "Tree", id="merged-tree", tooltip="Tree or flat list"),
        Binding("left_square_bracket", "layer(-1)", "Layer below", id="merged-down", show=False),
        Binding("right_square_bracket", "layer(1)", "Layer above", id="merged-up", show=False),
    ]

    def __init__(self, repository: str, reference: str, layer: int | None = None) -> None:
        super().__init__()
        self.repository = repository
        self.reference = reference
        self.wanted_layer = layer
        self.image: ResolvedImage | None = None
        self.stack: list[LayerChanges] = []
        self.view: MergedView | None = None
        self.sizes: dict[PathKey, int] = {}
        self.rows: list[MergedRow] = []
        self.selected = -1
        self.layer_counts: dict[Change, int] = {}
        self.state = "loading"
        self.by_size = False
        self.only_changes = False
        self.as_tree = False
        self._query = ""
        self._last_progress = 0.0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            f"{visible_markup(self.repository)} · loading…", id="merged-heading", classes="heading"
        )
        yield FilterBar("Filter paths…")
        yield ProgressBar(total=1, id="merged-progress", show_eta=False)
        yield Table(id="merged-layers", cursor_type="row")
        yield Table(id="merged-files", cursor_type="row")
        yield MergedTree(id="merged-tree")
        yield Static("Reading the manifest…", id="status", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        label = short_digest(self.reference) if ":" in self.reference else self.reference
        self.title = visible(f"{self.repository} · files · {label}")
        layers = self.query_one("#merged-layers", DataTable)
        for label, width in (("#", 3), ("Layer", 12), ("Size", 9)):
            layers.add_column(label, width=width)
        layers.add_column("Created by")
        self.query_one("#merged-files", DataTable).add_columns("", "Mode", "Owner", "Size", "Path")
        self.query_one("#merged-layers", DataTable).focus()
        self.load()

    def focus_main(self) -> None:
        self.query_one("#merged-tree" if self.as_tree else "#merged-files").focus()

    def set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.state == "loading"
        if action in ("toggle_sort", "toggle_changes", "layer", "toggle_tree"):
            return self.state == "done"
        return super().check_action(action, parameters)

    # -- loading ------------------------------------------------------------------------------
    @work(exclusive=True, group="load", exit_on_error=False)
    async def load(self) -> None:
        label = f"{self.repository}@{short_digest(self.reference)}"
        source = ImageSource(self.regtui.client, self.repository, self.reference, label)
        try:
            image = await resolve_image(source)
            self.image = image
            self._show_layers(image)
            read = await read_layers(image, self._progress)
        except Exception:
            self.state = "failed"
            self.refresh_bindings()
            self.set_status("Could not read this image's layers.")
            raise
        self.stack = [changes for changes, _ in read]
        self.state = "done"
        self.refresh_bindings()
        self.query_one(ProgressBar).update(total=1, progress=1)
        if not self.stack:
            self.set_status("This image has no layers.")
            return
        last = len(self.stack) - 1
        start = last if self.wanted_layer is None else max(0, min(self.wanted_layer, last))
        table = self.query_one("#merged-layers", DataTable)
        table.move_cursor(row=start)
        self.select_layer(start)

    def _progress(self, progress: LoadProgress) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        self.query_one(ProgressBar).update(
            total=max(progress.bytes_total, 1), progress=progress.bytes_read
        )
        self.set_status(
            f"Reading layer {progress.step}/{progress.steps} · "
            f"{human_size(progress.bytes_read)} of {human_size(progress.bytes_total)} · "
            f"{count_of(progress.entries, 'entry')} · x cancels"
        )

    def _show_layers(self, image: ResolvedImage) -> None:
        table = self.query_one("#merged-layers", DataTable)
        table.clear()
        manifest: ImageManifest = image.manifest
        commands: dict[int, str] = {}
        if image.config is not None:
            for step in match_history(image.config, manifest.layers):
                if step.layer_index is not None:
                    commands[step.layer_index] = step.entry.created_by or step.entry.comment or ""
        for index, layer in enumerate(manifest.layers):
            table.add_row(
                str(index),
                short_digest(layer.digest),
                human_size(layer.size),
                visible_markup(" ".join(commands.get(index, "").split())[:120]),
                key=str(index),
            )

    # -- choosing a layer ---------------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "merged-layers" or self.state != "done":
            return
        # The cursor, not the event, says which layer: a stale event must not win.
        index = event.data_table.cursor_row
        if 0 <= index < len(self.stack) and index != self.selected:
            self.select_layer(index)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "merged-layers":
            self.focus_main()

    def action_layer(self, step: int) -> None:
        if not self.stack:
            return
        target = max(0, min(self.selected + step, len(self.stack) - 1))
        self.query_one("#merged-layers", DataTable).move_cursor(row=target)
        self.select_layer(target)

    def select_layer(self, index: int) -> None:
        self.selected = index
        self._stack_upto(index)

    @work(exclusive=True, group="merge", exit_on_error=False)
    async def _stack_upto(self, index: int) -> None:
        self.set_status(f"Stacking layers 0-{index}…")
        view = await asyncio.to_thread(merge_layers, self.stack, index)
        sizes = await asyncio.to_thread(directory_sizes, view.nodes)
        if self.selected != index:
            return  # another layer was chosen meanwhile
        self.view, self.sizes = view, sizes
        self.layer_counts = await asyncio.to_thread(_count_changes, view)
        await self.render_rows()

    async def render_rows(self) -> None:
        view = self.view
        if view is None:
            return
        rows = await asyncio.to_thread(
            merged_rows,
            view,
            self.sizes,
            query=self._query,
            by_size=self.by_size,
            only_changes=self.only_changes,
        )
        self.rows = rows
        table = self.query_one("#merged-files", DataTable)
        table.clear()
        for row in rows[:MAX_ROWS]:
            entry = row.entry
            path = row.path + ("/" if entry.is_dir else "")
            if entry.link_target:
                path += f" → {entry.link_target}"
            style = "strike dim" if row.change is Change.REMOVED else ""
            table.add_row(
                MARKS[row.change],
                mode_string(entry),
                f"{entry.uid}:{entry.gid}",
                human_size(row.size),
                Text(visible(path), style=style),
                key=row.path,
            )
        self.query_one(MergedTree).show(rows, self._size_below, by_size=self.by_size)
        self._update_heading(view, len(rows))

    def _size_below(self, path: str) -> int:
        """Bytes below the directory ``path`` of the view shown (0 for one it never had)."""
        key = self.view.find(path) if self.view is not None else None
        return self.sizes.get(key, 0) if key is not None else 0

    def _update_heading(self, view: MergedView, shown: int) -> None:
        assert self.image is not None
        counts = self.layer_counts
        self.query_one("#merged-heading", Static).update(
            f"{visible_markup(self.repository)}@{short_digest(self.image.digest)} · "
            f"layer {view.layer} of "
            f"{len(self.stack)} · {counts[Change.ADDED]} added, "
            f"{counts[Change.MODIFIED]} modified, {counts[Change.REMOVED]} removed"
        )
        capped = f" · showing {MAX_ROWS:,} of {shown:,}" if shown > MAX_ROWS else ""
        order = "size" if self.by_size else "path"
        only = " · only changes" if self.only_changes else ""
        self.set_status(
            f"{count_of(view.file_count, 'file')} · {human_size(view.total_bytes)} · "
            f"wasted {human_size(view.wasted_bytes)} · "
            f"efficiency {efficiency_text(view.efficiency)} · by {order}{only}{capped}"
        )

    # -- actions ------------------------------------------------------------------------------
    async def _rerender(self) -> None:
        await self.render_rows()

    def apply_filter(self, query: str) -> None:
        self._query = query.strip()
        self.run_worker(self._rerender(), exclusive=True, group="render", exit_on_error=False)

    def action_toggle_sort(self) -> None:
        self.by_size = not self.by_size
        self.run_worker(self._rerender(), exclusive=True, group="render", exit_on_error=False)

    def action_toggle_tree(self) -> None:
        """The flat list (sorted by path or size) or the tree (space folds a directory)."""
        self.as_tree = not self.as_tree
        self.set_class(self.as_tree, "-tree")
        self.focus_main()

    def action_toggle_changes(self) -> None:
        self.only_changes = not self.only_changes
        self.run_worker(self._rerender(), exclusive=True, group="render", exit_on_error=False)

    def action_cancel(self) -> None:
        if self.state != "loading":
            return
        self.workers.cancel_group(self, "load")
        self.state = "cancelled"
        self.refresh_bindings()
        self.set_status("Cancelled. escape goes back.")

    def action_back(self) -> None:
        if self.state == "loading":
            self.workers.cancel_group(self, "load")
        super().action_back()


def _count_changes(view: MergedView) -> dict[Change, int]:
    counts = {Change.ADDED: 0, Change.MODIFIED: 0, Change.REMOVED: 0}
    for change in view.layer_changes():
        counts[change.change] += 1
    return counts
