"""Storage and garbage collection: du-style panel, dry run, confirm, progress, panel after."""

from __future__ import annotations

import time

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, ProgressBar, Static

from tui.data.storage import GcView, StorageBackend, UsageView
from tui.dialogs.confirm import ConfirmDialog
from tui.logic.fmt import human_size
from tui.screens.base import RegtuiScreen
from tui.widgets.usage_panel import UsagePanel, gc_table, usage_table


class StorageScreen(RegtuiScreen):
    """Disk usage per repository; n previews a GC (dry run), g runs it after a confirmation."""

    BINDINGS = [
        Binding("n", "dry_run", "Dry run", id="gc-dry-run"),
        Binding("g", "collect", "Collect garbage", id="gc-run"),
        Binding("t", "toggle_untagged", "Untagged too", id="gc-untagged"),
        Binding("r", "refresh_usage", "Refresh", id="refresh-usage"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.backend: StorageBackend | None = None
        self.before: UsageView | None = None
        self.after: UsageView | None = None
        self.preview: GcView | None = None
        self.delete_untagged = False
        self.running = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Reading storage usage…", id="storage-source", classes="heading")
        with VerticalScroll(id="storage-scroll"):
            yield UsagePanel("", id="usage-before")
            yield Static("", id="gc-explain", classes="explain")
            yield UsagePanel("", id="gc-preview")
            yield Static("", id="gc-activity", classes="dim")
            yield ProgressBar(id="gc-progress", total=None, show_eta=False, show_percentage=False)
            yield UsagePanel("", id="usage-after")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Storage & GC"
        self.sub_title = self.regtui.settings.title or self.regtui.settings.registry
        self.query_one(ProgressBar).display = False
        self.query_one("#storage-scroll").focus()
        self.load_usage()

    def focus_main(self) -> None:
        self.query_one("#storage-scroll").focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter":
            return False
        if action in ("dry_run", "collect", "toggle_untagged"):
            backend = self.backend
            if backend is None or not backend.gc_available or self.running:
                return None  # shown dimmed; the panel explains why
            if action == "collect" and self.is_read_only():
                return False
        return super().check_action(action, parameters)

    def _explain(self, text: str) -> None:
        self.query_one("#gc-explain", Static).update(text)

    @work(exclusive=True, group="usage", exit_on_error=False)
    async def load_usage(self) -> None:
        self.backend = await self.regtui.storage_backend()
        self.refresh_bindings()
        self.query_one("#storage-source", Static).update(f"Source: {self.backend.label}")
        self.before = await self.backend.usage()
        self.query_one("#usage-before", UsagePanel).update(usage_table(self.before, "Now"))
        self._explain(self._gc_explanation())

    def _gc_explanation(self) -> str:
        backend = self.backend
        assert backend is not None
        if not backend.gc_available:
            return f"Garbage collection is unavailable here: {backend.gc_unavailable_reason}"
        mode = (
            "tagged images only (untagged manifests go too)"
            if self.delete_untagged
            else ("every manifest kept (t: also remove untagged manifests)")
        )
        text = f"GC keeps {mode}. n shows what would go; g collects after a confirmation."
        if self.is_read_only():
            text += " Read-only mode: only the dry run is available."
        return text

    def action_toggle_untagged(self) -> None:
        self.delete_untagged = not self.delete_untagged
        self.preview = None
        self.query_one("#gc-preview", UsagePanel).update("")
        self._explain(self._gc_explanation())

    def action_refresh_usage(self) -> None:
        self.load_usage()

    @work(exclusive=True, group="gc", exit_on_error=False)
    async def action_dry_run(self) -> None:
        await self._preview()

    async def _preview(self) -> GcView | None:
        if self.backend is None or not self.backend.gc_available:
            return None
        self._explain("Dry run…")
        self.preview = await self.backend.collect_garbage(
            dry_run=True, delete_untagged=self.delete_untagged
        )
        self.query_one("#gc-preview", UsagePanel).update(gc_table(self.preview))
        self._explain(self._gc_explanation())
        return self.preview

    @work(exclusive=True, group="gc", exit_on_error=False)
    async def action_collect(self) -> None:
        backend = self.backend
        if backend is None or not backend.gc_available or self.before is None:
            return
        preview = await self._preview()
        if preview is None:
            return
        blobs = preview.count("blob")
        manifests = preview.count("manifest")
        lines = [
            f"{backend.label}",
            "",
            f"Remove {blobs} blob(s) and {manifests} manifest(s): "
            f"{human_size(preview.freed_bytes)}.",
            "",
            *[
                f"  • {item.kind} {item.name} {human_size(item.size)}"
                for item in preview.items[:40]
            ],
        ]
        if len(preview.items) > 40:
            lines.append(f"  … and {len(preview.items) - 40} more (listed on the screen)")
        if not preview.items:
            self.notify("Nothing to collect.", title="GC")
            return
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog("Collect garbage now?", "\n".join(lines), confirm_label="Collect")
        )
        if not confirmed:
            self.notify("Nothing was removed.")
            return
        # Neither GC path reports progress while it runs: an indeterminate bar and a sentence
        # of what is happening, rather than a percentage that would be invented.
        progress = self.query_one(ProgressBar)
        activity = self.query_one("#gc-activity", Static)
        progress.update(total=None, progress=0)
        progress.display = True
        activity.update(f"{backend.gc_activity[:1].upper()}{backend.gc_activity[1:]}…")
        self.query_one("#usage-after", UsagePanel).update("")
        self.running = True
        self.refresh_bindings()
        started = time.perf_counter()
        before = self.before
        try:
            result = await backend.collect_garbage(
                dry_run=False, delete_untagged=self.delete_untagged
            )
            activity.update("Reading the storage usage after the collection…")
            self.after = await backend.usage()
        except BaseException:
            activity.update(
                "The collection failed (see the notification); nothing is shown as done."
            )
            raise
        finally:
            self.running = False
            progress.display = False
            self.refresh_bindings()
        seconds = time.perf_counter() - started
        blob_data = human_size(result.blob_bytes if result.blob_bytes is not None else None)
        activity.update(
            f"Done in {seconds:.2f} s: removed {result.count('blob')} blob(s) "
            f"({blob_data} of blob data) and {result.count('manifest')} manifest revision(s); "
            f"{human_size(result.freed_bytes)} with links."
        )
        self.query_one("#gc-preview", UsagePanel).update(gc_table(result))
        self.query_one("#usage-before", UsagePanel).update(usage_table(before, "Before GC"))
        self.query_one("#usage-after", UsagePanel).update(
            usage_table(self.after, "After GC", before=before)
        )
        self.notify(f"Freed {human_size(result.freed_bytes)}.", title="GC done")
        self.before = self.after
