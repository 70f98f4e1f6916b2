"""The files inside one layer, read while the blob streams (cancellable)."""

from __future__ import annotations

import time

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, ProgressBar, Static
from textual.worker import get_current_worker

from tui.client import Descriptor
from tui.client.layers import FileNode, LayerReader
from tui.logic.escape import visible, visible_markup
from tui.logic.fmt import count_of, human_size, short_digest
from tui.logic.image_view import filter_files
from tui.screens.base import RegtuiScreen
from tui.widgets.file_tree import FileTree
from tui.widgets.filter_bar import FilterBar

PROGRESS_INTERVAL = 0.1
"""Seconds between progress bar updates (the stream itself is not slowed)."""


EXPAND_MATCHES = 2000
"""A filter that leaves at most this many entries opens every directory on the way to them."""


class LayerFilesScreen(RegtuiScreen):
    """Files of a layer with sizes per directory; whiteouts show as deletions. x cancels the
    reading; / filters the tree by path (the directories leading to a match open)."""

    BINDINGS = [
        Binding("x", "cancel", "Cancel", id="cancel-read"),
        Binding("e", "expand_all", "Expand all", id="expand-all"),
    ]

    def __init__(self, repository: str, layer: Descriptor) -> None:
        super().__init__()
        self.repository = repository
        self.blob = layer
        self.root_node: FileNode | None = None
        self.compression = ""
        self.state = "reading"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            f"Layer {short_digest(self.blob.digest)} · {human_size(self.blob.size)} · "
            f"{visible_markup(self.blob.media_type)}",
            id="layer-heading",
            classes="heading",
        )
        yield FilterBar("Filter paths…")
        yield ProgressBar(total=max(self.blob.size, 1), id="layer-progress", show_eta=False)
        yield Static("Reading…", id="status", classes="status")
        yield FileTree(id="files")
        yield Footer()

    def on_mount(self) -> None:
        self.title = visible(f"{self.repository} · layer {short_digest(self.blob.digest)}")
        self.query_one(FileTree).focus()
        self.read_layer()

    def focus_main(self) -> None:
        self.query_one(FileTree).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter":
            return self.state == "done"
        if action == "cancel":
            return self.state == "reading"
        return super().check_action(action, parameters)

    def set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    @work(exclusive=True, group="layer", exit_on_error=False)
    async def read_layer(self) -> None:
        worker = get_current_worker()
        reader = LayerReader()
        bar = self.query_one(ProgressBar)
        last = 0.0
        try:
            async with self.regtui.client.stream_blob(self.repository, self.blob.digest) as blob:
                async for chunk in blob:
                    if worker.is_cancelled:
                        return
                    await reader.feed_async(chunk)  # decompression off the event loop
                    now = time.monotonic()
                    if now - last >= PROGRESS_INTERVAL:
                        last = now
                        bar.update(progress=reader.bytes_in)
                        self.set_status(
                            f"Reading… {human_size(reader.bytes_in)} of "
                            f"{human_size(self.blob.size)} · {reader.entries:,} entries"
                        )
            root = await reader.finish_async()
        except Exception:
            self.state = "failed"
            self.set_status("Could not read this layer.")
            self.refresh_bindings()
            raise
        bar.update(progress=self.blob.size)
        self.root_node = root
        self.state = "done"
        self.refresh_bindings()
        self.query_one(FileTree).show(root)
        self.compression = f"{reader.compression}"
        self._summary()

    def _summary(self) -> None:
        root = self.root_node
        if root is None:
            return
        deletions = root.deletions()
        self.set_status(
            f"{root.file_count:,} files · {human_size(root.total_size)} uncompressed · "
            f"{self.compression} · {count_of(len(deletions), 'deletion')} · / filters"
        )

    def apply_filter(self, query: str) -> None:
        root = self.root_node
        if root is None:
            return
        tree = self.query_one(FileTree)
        if not query.strip():
            tree.show(root)
            self._summary()
            return
        shown, matched = filter_files(root, query)
        tree.show(shown)
        if matched and sum(1 for _ in shown.walk()) <= EXPAND_MATCHES:
            tree.expand_everything()
        self.set_status(
            f"{count_of(matched, 'entry')} {'matches' if matched == 1 else 'match'} "
            f"“{query.strip()}”"
            if matched
            else f"Nothing matches “{query.strip()}” · esc clears the filter"
        )

    def action_cancel(self) -> None:
        if self.state != "reading":
            return
        self.workers.cancel_group(self, "layer")
        self.state = "cancelled"
        self.refresh_bindings()
        self.set_status("Cancelled. escape goes back.")

    def action_back(self) -> None:
        if self.state == "reading":
            self.workers.cancel_group(self, "layer")
        super().action_back()

    def action_expand_all(self) -> None:
        tree = self.query_one(FileTree)
        if self.root_node is not None and self.root_node.file_count <= 5000:
            tree.expand_everything()
        else:
            self.notify("Too many files to open every directory at once.")
