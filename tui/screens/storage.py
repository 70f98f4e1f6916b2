"""Storage and garbage collection: du-style panel, dry run, confirm, progress, panel after."""

from __future__ import annotations

import time

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, ProgressBar, Static

from tui.data.storage import GcView, StorageBackend, UsageView, grace_line, human_duration
from tui.dialogs.confirm import ConfirmDialog
from tui.logic.fmt import count_of, human_size
from tui.screens.base import RegtuiScreen, guarded
from tui.widgets.usage_panel import UsagePanel, gc_table, usage_table


class StorageScreen(RegtuiScreen):
    """Disk usage per repository; n previews a GC (dry run), g runs it after a confirmation;
    p switches the grace period between the registry's and 0 (nothing is being pushed)."""

    BINDINGS = [
        *guarded("n", "dry_run", "Dry run", id="gc-dry-run"),
        *guarded("g", "collect", "Collect garbage", id="gc-run"),
        *guarded("t", "toggle_untagged", "Untagged too", id="gc-untagged"),
        *guarded("p", "toggle_grace", "Grace period", id="gc-grace"),
        Binding("r", "refresh_usage", "Refresh", id="refresh-usage"),
        Binding("s", "scrub", "Scrub", id="scrub", tooltip="Scrub: verify every blob and link"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.backend: StorageBackend | None = None
        self.before: UsageView | None = None
        self.after: UsageView | None = None
        self.preview: GcView | None = None
        self.delete_untagged = False
        self.grace_period: float | None = None
        """The grace period GC runs with: ``None`` for the registry's own, or 0."""
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
        return super().check_action(action, parameters)

    def unavailable_reason(self, action: str) -> str | None:
        if action not in ("dry_run", "collect", "toggle_untagged", "toggle_grace"):
            return None
        backend = self.backend
        if backend is None:
            return "Still finding out what this registry offers: wait a moment."
        if not backend.gc_available:
            return f"Garbage collection is unavailable here: {backend.gc_unavailable_reason}"
        if self.running:
            return "A garbage collection is running: wait for it to finish."
        if action == "collect" and self.is_read_only():
            return "Read-only mode (regtui was started with --read-only): only the dry run (n)."
        if action == "toggle_grace" and not backend.grace_selectable:
            return "This storage source has no grace period to change."
        return None

    def _explain(self, text: str) -> None:
        self.query_one("#gc-explain", Static).update(text)

    def _set_activity(self, text: str) -> None:
        self.query_one("#gc-activity", Static).update(text)

    @work(exclusive=True, group="usage", exit_on_error=False)
    async def load_usage(self) -> None:
        source = self.query_one("#storage-source", Static)
        source.update("Reading storage usage…")
        try:
            self.backend = await self.regtui.storage_backend()
            self.refresh_bindings()
            source.update(f"Source: {self.backend.label} · reading usage…")
            self.before = await self.backend.usage()
        except Exception:
            where = f"Source: {self.backend.label} · " if self.backend is not None else ""
            source.update(f"{where}cannot read the storage usage (r to retry)")
            raise
        source.update(f"Source: {self.backend.label}")
        self.query_one("#usage-before", UsagePanel).update(usage_table(self.before, "Now"))
        self._explain(self._gc_explanation())

    def _gc_explanation(self) -> str:
        backend = self.backend
        assert backend is not None
        if not backend.gc_available:
            return f"Garbage collection is unavailable here: {backend.gc_unavailable_reason}"
        mode = (
            "tagged images only: untagged manifests go too (t: keep them)"
            if self.delete_untagged
            else "every manifest (t: also remove untagged manifests)"
        )
        text = f"GC keeps {mode}. n shows what would go; g collects after a confirmation."
        if backend.grace_selectable:
            text += f" {self._grace_text()}."
            kept = grace_line(self.before) if self.before is not None else None
            if kept is not None and self.grace_period is None:
                text += f"\n{kept}: p collects them now."
        if self.is_read_only():
            text += " Read-only mode: only the dry run is available."
        return text

    def _grace_text(self) -> str:
        server = self.before.grace_period if self.before is not None else None
        server_text = (
            f"the registry's {human_duration(server)}" if server is not None else ("the registry's")
        )
        if self.grace_period is None:
            return f"Grace period: {server_text} (p: 0, when nothing is being pushed right now)"
        return (
            f"Grace period: {human_duration(self.grace_period)} — only safe while nothing is "
            f"being pushed right now (p: back to {server_text})"
        )

    def _forget_preview(self) -> None:
        """The settings changed: the last preview (or result) no longer says what GC would do."""
        self.preview = None
        self.query_one("#gc-preview", UsagePanel).update("")
        self._set_activity("")
        self._explain(self._gc_explanation())

    def action_toggle_grace(self) -> None:
        self.grace_period = 0.0 if self.grace_period is None else None
        self._forget_preview()

    def action_toggle_untagged(self) -> None:
        self.delete_untagged = not self.delete_untagged
        self._forget_preview()

    def action_refresh_usage(self) -> None:
        self.load_usage()

    @work(exclusive=True, group="gc", exit_on_error=False)
    async def action_dry_run(self) -> None:
        await self._preview()

    async def _preview(self) -> GcView | None:
        if self.backend is None or not self.backend.gc_available:
            return None
        self._set_activity("")
        self._explain("Dry run: finding what garbage collection would remove…")
        try:
            self.preview = await self.backend.collect_garbage(
                dry_run=True, delete_untagged=self.delete_untagged, grace_period=self.grace_period
            )
        finally:
            self._explain(self._gc_explanation())
        preview = self.query_one("#gc-preview", UsagePanel)
        preview.update(gc_table(self.preview))
        # In 80x24 the preview sits below the usage panel: bring the explanation and the
        # preview (what would go) into view.
        self.call_after_refresh(self._show_widget, "#gc-explain")
        return self.preview

    def _show_widget(self, selector: str) -> None:
        self.query_one("#storage-scroll", VerticalScroll).scroll_to_widget(
            self.query_one(selector), top=True, animate=False
        )

    @work(exclusive=True, group="gc", exit_on_error=False)
    async def action_collect(self) -> None:
        backend = self.backend
        if backend is None or not backend.gc_available or self.before is None:
            return
        preview = await self._preview()
        if preview is None:
            return
        blobs = count_of(preview.count("blob"), "blob")
        manifests = count_of(preview.count("manifest"), "manifest")
        lines = [
            f"{backend.label}",
            "",
            f"Remove {blobs} and {manifests}: {human_size(preview.freed_bytes)}.",
            f"{self._grace_text().split(' (p:')[0]}.",
            "",
        ]
        for item in preview.items[:40]:
            # Two lines each: the whole digest (what is removed, exactly) fits in 80 columns.
            where = f" in {item.repo}" if item.repo else ""
            lines += [f"  • {item.kind}{where}, {human_size(item.size)}", f"    {item.name}"]
        if len(preview.items) > 40:
            lines.append(f"  … and {len(preview.items) - 40} more (listed on the screen)")
        if not preview.items:
            kept = grace_line(self.before) if self.grace_period is None else None
            hint = f" {kept}: p sets the grace period to 0." if kept else ""
            self.notify(f"Nothing to collect.{hint}", title="GC")
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
        self.call_after_refresh(self._show_widget, "#gc-activity")
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
                dry_run=False, delete_untagged=self.delete_untagged, grace_period=self.grace_period
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
            f"Done in {seconds:.2f} s: removed {count_of(result.count('blob'), 'blob')} "
            f"({blob_data} of blob data) and "
            f"{count_of(result.count('manifest'), 'manifest revision')}; "
            f"{human_size(result.freed_bytes)} with links."
        )
        self.query_one("#gc-preview", UsagePanel).update(gc_table(result))
        self.query_one("#usage-before", UsagePanel).update(usage_table(before, "Before GC"))
        self.query_one("#usage-after", UsagePanel).update(
            usage_table(self.after, "After GC", before=before)
        )
        self.notify(f"Freed {human_size(result.freed_bytes)}.", title="GC done")
        self.before = self.after
        self._explain(self._gc_explanation())

    def action_scrub(self) -> None:
        from tui.screens.scrub import ScrubScreen  # loaded on first use, as the app's screens

        self.app.push_screen(ScrubScreen())
