"""One image (or index, or artifact): overview, platforms, config, layers, raw JSON, referrers."""

from __future__ import annotations

from rich.syntax import Syntax
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from tui.client import (
    DeleteDisabledError,
    Descriptor,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    ManifestResult,
    Platform,
    RegistryClientError,
    Schema1Manifest,
    match_history,
)
from tui.data.deletion import plan_manifest_delete
from tui.data.details import index_children
from tui.dialogs.confirm import ConfirmDialog
from tui.logic.deletion import DELETES_DISABLED, describe_delete, gc_note, tags_phrase
from tui.logic.escape import visible, visible_markup
from tui.logic.fmt import count_of, human_size, short_digest
from tui.logic.image_view import (
    NO_REFERRERS,
    ChildManifest,
    IndexTotal,
    config_text,
    config_title,
    copy_notice,
    document_heading,
    index_total,
    is_artifact,
    manifest_title,
    overview_text,
    platform_size_cell,
    pull_command_for,
    raw_json,
    referrer_rows,
)
from tui.screens.base import RegtuiScreen
from tui.screens.copying import copy_flow
from tui.screens.layer_files import LayerFilesScreen
from tui.screens.merged_fs import MergedFsScreen
from tui.widgets.table import Table

TABS = ("overview", "config", "layers", "raw", "referrers")
DELETE_ACTIONS = frozenset({"delete", "delete_platform", "delete_referrer"})


class ImageScreen(RegtuiScreen):
    """An image. 1-5 switch tabs; c copies the pull command; d deletes it; x deletes a row."""

    CSS_PATH = "image.tcss"
    BINDINGS = [
        Binding("c", "copy_pull", "Copy pull", id="copy-pull"),
        Binding("C", "copy_to", "Copy to…", id="copy-to", show=False),
        Binding("d", "delete", "Delete", id="delete"),
        Binding("x", "delete_platform", "Delete platform", id="delete-platform"),
        Binding("x", "delete_referrer", "Delete referrer", id="delete-referrer"),
        Binding("r", "reload", "Reload", id="reload", show=False),
        Binding("1", "tab('overview')", "Overview", id="tab-overview", show=False),
        Binding("2", "tab('config')", "Config", id="tab-config", show=False),
        Binding("3", "tab('layers')", "Layers", id="tab-layers", show=False),
        Binding("4", "tab('raw')", "Raw", id="tab-raw", show=False),
        Binding("5", "tab('referrers')", "Referrers", id="tab-referrers", show=False),
        Binding("m", "merged_fs", "Merged files", id="merged-fs", show=False),
        # From the tab bar (or nowhere): down and enter reach the list of the tab, page keys
        # scroll its text. A focused list or text handles these keys itself first.
        Binding("down,enter", "into_tab", "", id="into-tab", show=False),
        Binding("pagedown", "page(1)", "", id="page-down", show=False),
        Binding("pageup", "page(-1)", "", id="page-up", show=False),
    ]

    def __init__(
        self,
        repository: str,
        reference: str,
        *,
        platform: Platform | None = None,
        parent_index: str | None = None,
    ) -> None:
        super().__init__()
        self.repository = repository
        self.reference = reference
        self.platform = platform
        """The platform the index listed this manifest under (when opened from an index)."""
        self.parent_index = parent_index
        """The digest of the index this manifest was opened from."""
        self.result: ManifestResult | None = None
        self.config: ImageConfig | None = None
        self.layer_list: list[Descriptor] = []
        self.referrers: list[Descriptor] = []
        self.referrers_loaded = False
        self.child_manifests: dict[str, ChildManifest] = {}
        self.index_total: IndexTotal | None = None
        self.raw_manifest = ""
        self.raw_config = ""
        self.deletes_refused = False
        """The registry answered 405 to a DELETE: the delete keys are hidden from then on."""
        self.active_tab = "overview"

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="image-tabs", initial="overview"):
            with TabPane("1 Overview", id="overview"), VerticalScroll(id="overview-scroll"):
                yield Static("Loading…", id="overview-text")
                yield Static("", id="platforms-title", classes="section-title")
                yield Table(id="platforms", cursor_type="row")
            with TabPane("2 Config", id="config"), VerticalScroll(id="config-scroll"):
                yield Static("", id="config-text")
            with TabPane("3 Layers", id="layers"):
                yield Table(id="layer-table", cursor_type="row")
            with TabPane("4 Raw", id="raw"), VerticalScroll(id="raw-scroll"):
                yield Static("", id="raw-manifest-heading", classes="raw-heading")
                yield Static("", id="raw-manifest")
                yield Static("", id="raw-config-heading", classes="raw-heading")
                yield Static("", id="raw-config")
            with TabPane("5 Referrers", id="referrers"):
                yield Static(NO_REFERRERS, id="referrers-empty")
                yield Table(id="referrer-table", cursor_type="row")
        yield Static("", id="image-status", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = visible(f"{self.repository}:{self.reference}")
        if self.reference.startswith("sha256:"):
            self.title = visible(f"{self.repository}@{short_digest(self.reference)}")
        self.sub_title = self.regtui.settings.title or self.regtui.settings.registry
        platforms = self.query_one("#platforms", DataTable)
        platforms.add_column("Platform")
        platforms.add_column("Digest")
        platforms.add_column("Media type")
        platforms.add_column("Image size", key="size")
        platforms.display = False
        self.query_one("#referrer-table", DataTable).add_columns(
            "Digest", "Artifact type", "Size", "Annotations"
        )
        self.query_one("#referrers-empty", Static).display = False
        self.load_image()

    def _tab_targets(self) -> list[str]:
        """What takes focus on the active tab, first choice first: its list, else its text."""
        return {
            "overview": ["#platforms", "#overview-scroll"],
            "config": ["#config-scroll"],
            "layers": ["#layer-table"],
            "raw": ["#raw-scroll"],
            "referrers": ["#referrer-table"],
        }.get(self.active_tab, [])

    def focus_main(self) -> None:
        """Focus the active tab's list (or its text): arrows, enter and page keys work at once."""
        for selector in self._tab_targets():
            widget = self.query_one(selector)
            if widget.display and widget.focusable:
                widget.focus()
                return

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.active_tab = tab
        self.refresh_bindings()
        self.focus_main()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.active_tab = event.pane.id or "overview"
        self.refresh_bindings()
        # Focus left in a hidden tab is lost: give it to the new tab's list or text (a click
        # on the tab bar, or its arrows, keep the focus there).
        focused = self.focused
        if focused is None or not focused.display or not focused.visible:
            self.call_after_refresh(self.focus_main)

    def action_into_tab(self) -> None:
        self.focus_main()

    def action_page(self, direction: int) -> None:
        for selector in self._tab_targets():
            widget = self.query_one(selector)
            if widget.display:
                if direction > 0:
                    widget.scroll_page_down()
                else:
                    widget.scroll_page_up()
                return

    def set_status(self, text: str) -> None:
        status = self.query_one("#image-status", Static)
        status.update(text)
        status.set_class(bool(text), "shown")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in DELETE_ACTIONS:
            if self.is_read_only() or self.deletes_refused or self.result is None:
                return False
            if action == "delete_platform":
                return self.active_tab == "overview" and bool(self.selected_platform())
            if action == "delete_referrer":
                return self.active_tab == "referrers" and bool(self.selected_referrer())
            return True
        if action == "copy_pull":
            return self.pull_command() is not None
        if action == "copy_to":
            return self.result is not None
        return super().check_action(action, parameters)

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_copy_to(self) -> None:
        if self.result is None:
            return
        tag = None if self.reference.startswith("sha256:") else self.reference
        try:
            await copy_flow(self, self.repository, self.result.digest, tag, self.set_status)
        finally:
            self.set_status("")

    def pull_command(self) -> str | None:
        """The ``docker pull`` command, or ``None`` while loading and for an artifact."""
        return pull_command_for(
            self.regtui.pull_host(), self.repository, self.reference, self.result
        )

    @property
    def shown_platform(self) -> Platform | None:
        return (self.config.platform if self.config else None) or self.platform

    # -- loading ------------------------------------------------------------------------------
    def action_reload(self) -> None:
        self.load_image()

    @work(exclusive=True, group="image", exit_on_error=False)
    async def load_image(self) -> None:
        client = self.regtui.client
        try:
            result = await client.get_manifest(self.repository, self.reference)
        except RegistryClientError as error:
            self.result = None  # nothing on screen to copy or delete any more
            self.refresh_bindings()
            self.query_one("#overview-text", Static).update(
                f"Cannot load this image: {visible_markup(str(error))}"
            )
            raise
        self.result = result
        manifest = result.manifest
        self.config = None
        if isinstance(manifest, ImageManifest) and not manifest.is_artifact:
            self.config = await client.get_config(self.repository, manifest)
        self._show_overview()
        self._show_raw(None)
        self._show_layers()
        self.refresh_bindings()
        if isinstance(manifest, ImageIndex):
            await self._load_children(manifest)
        if isinstance(manifest, ImageManifest) and not manifest.is_artifact:
            self._show_raw(await client.get_blob(self.repository, manifest.config.digest))
        self.load_referrers()

    async def _load_children(self, index: ImageIndex) -> None:
        """Read every platform manifest of the index: their image sizes and the total."""
        children = await index_children(self.regtui.client, self.repository, index)
        self.child_manifests = {child.descriptor.digest: child for child in children}
        self.index_total = index_total(children, listed=len(index.manifests))
        table = self.query_one("#platforms", DataTable)
        for row_key in table.rows:
            child = self.child_manifests.get(str(row_key.value))
            cell = platform_size_cell(child) if child is not None else "not read"
            table.update_cell(row_key, "size", cell, update_width=True)
        self._show_overview_text()
        missing = [child for child in children if child.missing]
        if missing:
            self.notify(
                f"This index lists {count_of(len(missing), 'manifest')} that the registry no "
                "longer has: pulling those platforms fails.",
                title="Broken index",
                severity="warning",
            )

    @work(exclusive=True, group="referrers", exit_on_error=False)
    async def load_referrers(self) -> None:
        if self.result is None:
            return
        table = self.query_one("#referrer-table", DataTable)
        self.referrers = await self.regtui.client.get_referrers(self.repository, self.result.digest)
        self.referrers_loaded = True
        table.clear()
        for ref, cells in zip(self.referrers, referrer_rows(self.referrers), strict=True):
            if ref.digest not in table.rows:
                table.add_row(*map(visible_markup, cells), key=ref.digest)
        table.display = bool(self.referrers)
        self.query_one("#referrers-empty", Static).display = not self.referrers
        tabs = self.query_one(TabbedContent)
        tabs.get_tab("referrers").label = f"5 Referrers ({len(self.referrers)})"
        self.refresh_bindings()

    def _show_overview_text(self) -> None:
        assert self.result is not None
        self.query_one("#overview-text", Static).update(
            overview_text(
                self.regtui.pull_host(),
                self.repository,
                self.reference,
                self.result,
                self.config,
                index_total=self.index_total,
                platform=self.platform,
                parent_index=self.parent_index,
            )
        )

    def _show_overview(self) -> None:
        assert self.result is not None
        self._show_overview_text()
        self.query_one("#config-text", Static).update(config_text(self.config, self.result))
        manifest = self.result.manifest
        if isinstance(manifest, ImageIndex):
            table = self.query_one("#platforms", DataTable)
            table.display = True
            # The list takes the keys, not the text around it: down and enter reach the
            # platforms, and focusing the list scrolls it into view.
            self.query_one("#overview-scroll").can_focus = False
            self.query_one("#platforms-title", Static).update(
                "Platforms (enter opens one; the size is the platform's image: config + layers)"
            )
            table.clear()
            for child in manifest.manifests:
                if child.digest in table.rows:
                    continue  # listed twice: one row
                table.add_row(
                    visible_markup(str(child.platform or "?")),
                    short_digest(child.digest),
                    child.media_type.rsplit(".", 2)[-2] if "." in child.media_type else "",
                    platform_size_cell(self.child_manifests.get(child.digest)),
                    key=child.digest,
                )
            if self.active_tab == "overview":
                table.focus()

    def _show_layers(self) -> None:
        assert self.result is not None
        manifest = self.result.manifest
        table = self.query_one("#layer-table", DataTable)
        # An image's layers come with the history step that made them; an artifact's blobs
        # have no history, only a media type.
        table.clear(columns=True)
        if is_artifact(manifest):
            table.add_columns("#", "Blob", "Size", "Media type")
        else:
            table.add_columns("#", "Layer", "Size", "Created by")
        if isinstance(manifest, ImageManifest):
            self.layer_list = list(manifest.layers)
            if self.config is not None:
                for step in match_history(self.config, manifest.layers):
                    created_by = visible_markup(step.entry.created_by or step.entry.comment or "")
                    if step.layer is None:
                        table.add_row("", "(no layer)", "", created_by, key=None)
                        continue
                    table.add_row(
                        str(step.layer_index),
                        short_digest(step.layer.digest),
                        human_size(step.layer.size),
                        created_by,
                        key=step.layer.digest,
                    )
            else:
                for index, layer in enumerate(manifest.layers):
                    table.add_row(
                        str(index),
                        short_digest(layer.digest),
                        human_size(layer.size),
                        visible_markup(layer.media_type),
                        key=layer.digest if layer.digest not in table.rows else None,
                    )
        elif isinstance(manifest, Schema1Manifest):
            for index, digest in enumerate(reversed(manifest.fs_layers)):
                table.add_row(str(index), short_digest(digest), "unknown", "", key=None)
        else:
            table.add_row("", "An index has no layers: open a platform.", "", "")

    def _show_raw(self, config_raw: bytes | None) -> None:
        """The manifest (and the config, once read), each under a heading saying what it is."""
        assert self.result is not None
        result = self.result
        self.raw_manifest = raw_json(result.raw)
        self.query_one("#raw-manifest-heading", Static).update(
            document_heading(
                manifest_title(result.manifest, self.shown_platform),
                result.digest,
                result.media_type,
                result.size,
            )
        )
        self.query_one("#raw-manifest", Static).update(
            Syntax(self.raw_manifest, "json", theme="ansi_dark", word_wrap=True)
        )
        manifest = result.manifest
        if config_raw is not None and isinstance(manifest, ImageManifest):
            self.raw_config = raw_json(config_raw)
            self.query_one("#raw-config-heading", Static).update(
                document_heading(
                    config_title(self.shown_platform),
                    manifest.config.digest,
                    manifest.config.media_type,
                    len(config_raw),
                )
            )
            self.query_one("#raw-config", Static).update(
                Syntax(self.raw_config, "json", theme="ansi_dark", word_wrap=True)
            )

    # -- actions ------------------------------------------------------------------------------
    def action_merged_fs(self) -> None:
        """The merged filesystem, starting at the layer highlighted in the Layers tab."""
        result = self.result
        if result is None:
            self.notify("The image is still loading.")
            return
        manifest = result.manifest
        if not isinstance(manifest, ImageManifest) or manifest.is_artifact:
            self.notify("Only an image has files: open one of its platforms.", severity="warning")
            return
        layer: int | None = None
        table = self.query_one("#layer-table", DataTable)
        if table.row_count and table.cursor_row >= 0:
            key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
            digests = [item.digest for item in manifest.layers]
            if key in digests:
                layer = digests.index(key)
        self.app.push_screen(MergedFsScreen(self.repository, result.digest, layer))

    def action_copy_pull(self) -> None:
        command = self.pull_command()
        if command is None:
            return
        self.app.copy_to_clipboard(command)
        self.notify(copy_notice(command), title="Pull command", markup=False, timeout=10)

    def selected_platform(self) -> str | None:
        return self._selected("#platforms")

    def selected_referrer(self) -> str | None:
        return self._selected("#referrer-table")

    def _selected(self, selector: str) -> str | None:
        tables = self.query(selector).results(DataTable)
        table = next(tables, None)
        if table is None or not table.display or table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_delete(self) -> None:
        """Delete the manifest on screen; then leave this screen and reload the one below."""
        if self.result is None:
            return
        if not await self._confirm_and_delete(self.result.digest, parent_hint=self.parent_index):
            return
        stack = self.app.screen_stack
        below = stack[-2] if len(stack) > 2 and stack[-1] is self else None
        if below is None:
            self.load_image()  # shows that it is gone
            return
        self.app.call_later(below.run_action, "reload")
        self.app.pop_screen()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_delete_platform(self) -> None:
        digest = self.selected_platform()
        if digest is None or self.result is None:
            return
        child = self.child_manifests.get(digest)
        if child is not None and child.missing:
            self.notify(f"{short_digest(digest)} is already gone from the registry.")
            return
        if await self._confirm_and_delete(digest, parent_hint=self.result.digest):
            self.load_image()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_delete_referrer(self) -> None:
        digest = self.selected_referrer()
        if digest is None:
            return
        if await self._confirm_and_delete(digest, parent_hint=None):
            self.load_referrers()

    async def _confirm_and_delete(self, digest: str, *, parent_hint: str | None) -> bool:
        """Name everything that points at ``digest``, ask, delete by digest; True if deleted."""
        client = self.regtui.client
        self.set_status(f"Finding every tag, index and referrer on {short_digest(digest)}…")
        try:
            context = await plan_manifest_delete(
                client, self.repository, digest, parent_hint=parent_hint
            )
        finally:
            self.set_status("")
        backend = await self.regtui.storage_backend()
        gc = gc_note(backend.gc_available, backend.gc_unavailable_reason)
        title, body = describe_delete(context, gc=gc)
        if not await self.app.push_screen_wait(ConfirmDialog(title, body)):
            self.notify("Nothing was deleted.")
            return False
        try:
            await client.delete_manifest(self.repository, digest)
        except DeleteDisabledError:
            self.deletes_refused = True
            self.refresh_bindings()
            self.notify(DELETES_DISABLED, title="Deletes disabled", severity="warning")
            return False
        message = f"Deleted {short_digest(digest)} ({tags_phrase(context.plan.tags)})."
        if context.parents:
            message += (
                f" {count_of(len(context.parents), 'index')} now "
                f"{'lists' if len(context.parents) == 1 else 'list'} a missing manifest."
            )
        self.notify(visible(message), title="Deleted", markup=False)
        return True

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key is None:
            return
        table_id = event.data_table.id
        if table_id == "platforms" and self.result is not None:
            child = self.child_manifests.get(str(key))
            platform = None
            if isinstance(self.result.manifest, ImageIndex):
                entry = next((m for m in self.result.manifest.manifests if m.digest == key), None)
                platform = entry.platform if entry is not None else None
            if child is not None and child.missing:
                self.notify(
                    f"The registry no longer has {short_digest(str(key))}: this index is broken.",
                    severity="warning",
                )
                return
            self.app.push_screen(
                ImageScreen(
                    self.repository,
                    str(key),
                    platform=platform,
                    parent_index=self.result.digest,
                )
            )
        elif table_id == "referrer-table":
            self.app.push_screen(ImageScreen(self.repository, str(key)))
        elif table_id == "layer-table":
            layer = next((item for item in self.layer_list if item.digest == key), None)
            if layer is not None:
                self.app.push_screen(LayerFilesScreen(self.repository, layer))
