"""One image (or index, or artifact): overview, platforms, config, layers, raw JSON, referrers."""

from __future__ import annotations

from rich.syntax import Syntax
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from tui.client import (
    Descriptor,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    ManifestResult,
    RegistryClientError,
    Schema1Manifest,
    match_history,
)
from tui.logic.fmt import human_size, short_digest
from tui.logic.image_view import (
    config_text,
    overview_text,
    pull_command,
    raw_json,
    referrer_label,
)
from tui.screens.base import RegtuiScreen

TABS = ("overview", "config", "layers", "raw", "referrers")


class ImageScreen(RegtuiScreen):
    """An image. 1-5 switch tabs; c copies the pull command; enter opens a platform or layer."""

    BINDINGS = [
        Binding("c", "copy_pull", "Copy pull", id="copy-pull"),
        Binding("1", "tab('overview')", "Overview", id="tab-overview", show=False),
        Binding("2", "tab('config')", "Config", id="tab-config", show=False),
        Binding("3", "tab('layers')", "Layers", id="tab-layers", show=False),
        Binding("4", "tab('raw')", "Raw", id="tab-raw", show=False),
        Binding("5", "tab('referrers')", "Referrers", id="tab-referrers", show=False),
        Binding("m", "merged_fs", "Merged files", id="merged-fs", show=False),
    ]

    def __init__(self, repository: str, reference: str) -> None:
        super().__init__()
        self.repository = repository
        self.reference = reference
        self.result: ManifestResult | None = None
        self.config: ImageConfig | None = None
        self.layer_list: list[Descriptor] = []
        self.referrers: list[Descriptor] = []
        self.raw_manifest = ""
        self.raw_config = ""

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="image-tabs", initial="overview"):
            with TabPane("1 Overview", id="overview"), VerticalScroll():
                yield Static("Loading…", id="overview-text")
                yield Static("", id="platforms-title", classes="section-title")
                yield DataTable(id="platforms", cursor_type="row")
            with TabPane("2 Config", id="config"), VerticalScroll():
                yield Static("", id="config-text")
            with TabPane("3 Layers", id="layers"):
                yield DataTable(id="layer-table", cursor_type="row")
            with TabPane("4 Raw", id="raw"), VerticalScroll():
                yield Static("", id="raw-manifest")
                yield Static("", id="raw-config")
            with TabPane("5 Referrers", id="referrers"):
                yield DataTable(id="referrer-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"{self.repository}:{self.reference}"
        if self.reference.startswith("sha256:"):
            self.title = f"{self.repository}@{short_digest(self.reference)}"
        self.sub_title = self.regtui.settings.title or self.regtui.settings.registry
        platforms = self.query_one("#platforms", DataTable)
        platforms.add_columns("Platform", "Digest", "Media type", "Size")
        platforms.display = False
        self.query_one("#layer-table", DataTable).add_columns("#", "Layer", "Size", "Created by")
        self.query_one("#referrer-table", DataTable).add_columns(
            "Digest", "Artifact type", "Size", "Annotations"
        )
        self.load_image()

    def focus_main(self) -> None:
        active = self.query_one(TabbedContent).active
        target = {
            "overview": "#platforms",
            "layers": "#layer-table",
            "referrers": "#referrer-table",
        }
        selector = target.get(active)
        if selector:
            self.query_one(selector, DataTable).focus()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.focus_main()

    # -- loading ------------------------------------------------------------------------------
    @work(exclusive=True, group="image", exit_on_error=False)
    async def load_image(self) -> None:
        client = self.regtui.client
        try:
            result = await client.get_manifest(self.repository, self.reference)
        except RegistryClientError as error:
            self.query_one("#overview-text", Static).update(f"Cannot load this image: {error}")
            raise
        self.result = result
        manifest = result.manifest
        if isinstance(manifest, ImageManifest) and not manifest.is_artifact:
            self.config = await client.get_config(self.repository, manifest)
        self._show_overview()
        self._show_raw(result.raw, None)
        self._show_layers()
        if isinstance(manifest, ImageManifest) and not manifest.is_artifact:
            raw_config = await client.get_blob(self.repository, manifest.config.digest)
            self._show_raw(result.raw, raw_config)
        self.load_referrers()

    @work(exclusive=True, group="referrers", exit_on_error=False)
    async def load_referrers(self) -> None:
        if self.result is None:
            return
        table = self.query_one("#referrer-table", DataTable)
        self.referrers = await self.regtui.client.get_referrers(self.repository, self.result.digest)
        table.clear()
        for ref in self.referrers:
            annotations = ", ".join(f"{k}={v}" for k, v in sorted(ref.annotations.items()))
            table.add_row(
                short_digest(ref.digest),
                referrer_label(ref),
                human_size(ref.size),
                annotations,
                key=ref.digest,
            )
        tabs = self.query_one(TabbedContent)
        tabs.get_tab("referrers").label = f"5 Referrers ({len(self.referrers)})"

    def _show_overview(self) -> None:
        assert self.result is not None
        host = self.regtui.pull_host()
        self.query_one("#overview-text", Static).update(
            overview_text(host, self.repository, self.reference, self.result, self.config)
        )
        self.query_one("#config-text", Static).update(config_text(self.config, self.result))
        manifest = self.result.manifest
        if isinstance(manifest, ImageIndex):
            table = self.query_one("#platforms", DataTable)
            table.display = True
            self.query_one("#platforms-title", Static).update("Platforms (enter opens one)")
            table.clear()
            for child in manifest.manifests:
                table.add_row(
                    str(child.platform or "?"),
                    short_digest(child.digest),
                    child.media_type.rsplit(".", 2)[-2] if "." in child.media_type else "",
                    human_size(child.size),
                    key=child.digest,
                )
            table.focus()

    def _show_layers(self) -> None:
        assert self.result is not None
        manifest = self.result.manifest
        table = self.query_one("#layer-table", DataTable)
        table.clear()
        if isinstance(manifest, ImageManifest):
            self.layer_list = list(manifest.layers)
            if self.config is not None:
                for step in match_history(self.config, manifest.layers):
                    created_by = step.entry.created_by or step.entry.comment or ""
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
                        layer.media_type,
                        key=layer.digest,
                    )
        elif isinstance(manifest, Schema1Manifest):
            for index, digest in enumerate(reversed(manifest.fs_layers)):
                table.add_row(str(index), short_digest(digest), "?", "", key=digest)
        else:
            table.add_row("", "An index has no layers: open a platform.", "", "")

    def _show_raw(self, manifest_raw: bytes, config_raw: bytes | None) -> None:
        self.raw_manifest = raw_json(manifest_raw)
        self.query_one("#raw-manifest", Static).update(
            Syntax(self.raw_manifest, "json", theme="ansi_dark", word_wrap=True)
        )
        if config_raw is not None:
            self.raw_config = raw_json(config_raw)
            self.query_one("#raw-config", Static).update(
                Syntax(self.raw_config, "json", theme="ansi_dark", word_wrap=True)
            )

    # -- actions ------------------------------------------------------------------------------
    def action_merged_fs(self) -> None:
        from tui.screens.merged_fs import open_merged_fs

        open_merged_fs(self)

    def action_copy_pull(self) -> None:
        reference = self.reference
        command = pull_command(self.regtui.pull_host(), self.repository, reference)
        self.app.copy_to_clipboard(command)
        self.notify(command, title="Copied")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key is None:
            return
        table_id = event.data_table.id
        if table_id in ("platforms", "referrer-table"):
            self.app.push_screen(ImageScreen(self.repository, str(key)))
        elif table_id == "layer-table":
            layer = next((item for item in self.layer_list if item.digest == key), None)
            if layer is not None:
                from tui.screens.layer_files import LayerFilesScreen

                self.app.push_screen(LayerFilesScreen(self.repository, layer))
