"""One repository: its tags with details loading in the background; sorting; deletion."""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from tui.client import RegistryClientError
from tui.data.details import tag_details
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.prompt import PromptDialog
from tui.dialogs.results import ItemResult, ResultsDialog
from tui.logic.fmt import short_digest
from tui.logic.retention import (
    ActionKind,
    BulkAction,
    describe_bulk,
    keep_newest,
    plan_bulk_delete,
)
from tui.logic.tags import TagRow, TagSort, filter_tags, sort_tags
from tui.screens.base import RegtuiScreen
from tui.widgets.filter_bar import FilterBar
from tui.widgets.tag_table import TagTable

DELETE_ACTIONS = frozenset({"delete", "untag", "mark", "delete_marked", "keep_newest"})


def validate_keep(value: str) -> str | None:
    if not value.isdigit():
        return "Enter a whole number (0 or more)."
    return None


class RepositoryScreen(RegtuiScreen):
    """Tags of one repository. enter opens an image; s sorts; d, u, space, D, k delete."""

    BINDINGS = [
        Binding("s", "cycle_sort", "Sort", id="sort"),
        Binding("S", "reverse_sort", "Reverse", id="reverse-sort", show=False),
        Binding("space", "mark", "Mark", id="mark"),
        Binding("d", "delete", "Delete digest", id="delete"),
        Binding("u", "untag", "Untag", id="untag"),
        Binding("D", "delete_marked", "Delete marked", id="delete-marked"),
        Binding("k", "keep_newest", "Keep newest N", id="keep-newest"),
        Binding("r", "reload", "Reload", id="reload", show=False),
        Binding("equals_sign", "diff", "Diff", id="diff", show=False),
    ]

    def __init__(self, repository: str) -> None:
        super().__init__()
        self.repository = repository
        self.rows: dict[str, TagRow] = {}
        self.marked: set[str] = set()
        self.sort_key = TagSort.NAME
        self.descending = False
        self._query = ""
        self.details_done = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="repo-heading", classes="heading")
        yield FilterBar("Filter tags (name, digest, platform)…")
        yield TagTable(id="tags")
        yield Static("Loading tags…", id="status", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = self.repository
        self.sub_title = self.regtui.settings.title or self.regtui.settings.registry
        self._update_heading()
        self.focus_main()
        self.load_tags()

    @property
    def table(self) -> TagTable:
        return self.query_one(TagTable)

    def focus_main(self) -> None:
        self.table.focus()

    def set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    def _update_heading(self) -> None:
        direction = "↓" if self.descending else "↑"
        marked = f" · {len(self.marked)} marked" if self.marked else ""
        read_only = " · read-only" if self.is_read_only() else ""
        self.query_one("#repo-heading", Static).update(
            f"{self.repository} · {len(self.rows)} tags · sorted by {self.sort_key} "
            f"{direction}{marked}{read_only}"
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in DELETE_ACTIONS and self.is_read_only():
            return False
        return super().check_action(action, parameters)

    # -- loading ------------------------------------------------------------------------------
    @work(exclusive=True, group="tags", exit_on_error=False)
    async def load_tags(self) -> None:
        self.set_status("Loading tags…")
        self.details_done = False
        try:
            tags = await self.regtui.client.list_tags(self.repository)
        except RegistryClientError:
            self.set_status(f"Cannot list the tags of {self.repository} (r to retry).")
            raise
        self.rows = {tag: TagRow(tag) for tag in tags}
        self.marked &= set(self.rows)
        self.render_rows()
        self.set_status(f"{len(tags)} tags · loading details…" if tags else "No tags.")
        if tags:
            self.load_details()

    @work(exclusive=True, group="details", exit_on_error=False)
    async def load_details(self) -> None:
        client = self.regtui.client
        limit = asyncio.Semaphore(self.regtui.settings.max_concurrency)
        pending = list(self.rows.values())

        async def one(row: TagRow) -> TagRow:
            async with limit:
                return await tag_details(client, self.repository, row)

        done = failed = 0
        for finished in asyncio.as_completed([one(row) for row in pending]):
            row = await finished
            if row.tag not in self.rows:
                continue
            self.rows[row.tag] = row
            self.table.update_row(row, marked=row.tag in self.marked)
            done += 1
            failed += 1 if row.error else 0
            if done % 10 == 0 or done == len(pending):
                self.set_status(f"{len(self.rows)} tags · details {done}/{len(pending)}")
        self.details_done = True
        self.render_rows()  # re-sorts by the new values and fits the columns to them
        summary = f"{len(self.rows)} tags · enter opens · s sorts · / filters"
        if failed:
            summary += f" · {failed} could not be read"
            self.notify(
                f"{failed} tag(s) of {self.repository} could not be read.", severity="warning"
            )
        self.set_status(summary)

    def render_rows(self) -> None:
        rows = sort_tags(self.rows.values(), self.sort_key, descending=self.descending)
        if self._query:
            rows = filter_tags(rows, self._query)
        self.table.show_rows(rows, self.marked)
        self._update_heading()

    def apply_filter(self, query: str) -> None:
        self._query = query.strip()
        self.render_rows()

    # -- navigation and sorting ---------------------------------------------------------------
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        tag = event.row_key.value
        if tag is None:
            return
        from tui.screens.image import ImageScreen

        self.app.push_screen(ImageScreen(self.repository, str(tag)))

    def action_cycle_sort(self) -> None:
        self.sort_key = self.sort_key.next()
        # Newest and biggest first are what people look for.
        self.descending = self.sort_key in (TagSort.DATE, TagSort.SIZE, TagSort.VERSION)
        self.render_rows()

    def action_reverse_sort(self) -> None:
        self.descending = not self.descending
        self.render_rows()

    def action_reload(self) -> None:
        self.load_tags()

    def action_diff(self) -> None:
        from tui.screens.diff import open_diff

        open_diff(self)

    # -- marking ------------------------------------------------------------------------------
    def current_row(self) -> TagRow | None:
        tag = self.table.current_tag
        return self.rows.get(tag) if tag else None

    def action_mark(self) -> None:
        row = self.current_row()
        if row is None:
            return
        self.marked.symmetric_difference_update({row.tag})
        self.table.update_row(row, marked=row.tag in self.marked)
        self.table.action_cursor_down()
        self._update_heading()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_keep_newest(self) -> None:
        value = await self.app.push_screen_wait(
            PromptDialog(
                "Keep the newest N",
                "Keep how many of the newest tags? The others are marked for review "
                "(nothing is deleted until you press D and confirm).",
                value="5",
                validate=validate_keep,
            )
        )
        if value is None:
            return
        if not self.details_done:
            self.notify("Details are still loading: tags without a date are kept.")
        plan = keep_newest(self.rows.values(), int(value))
        self.marked = set(plan.mark)
        self.render_rows()
        message = f"Marked {len(plan.mark)} tag(s); keeping {len(plan.keep)}."
        if plan.protected:
            message += f" Not marked (same image as a kept tag): {', '.join(plan.protected)}."
        self.notify(message, title="Keep newest")

    # -- deletion -----------------------------------------------------------------------------
    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_delete(self) -> None:
        row = self.current_row()
        if row is None:
            return
        if not row.digest:
            self.notify("The digest of this tag is not known yet.", severity="warning")
            return
        client = self.regtui.client
        self.set_status(f"Finding every tag on {short_digest(row.digest)}…")
        plan = await client.plan_delete(self.repository, row.digest)
        lines = [
            f"Repository: {self.repository}",
            f"Manifest:   {plan.digest}",
            f"Type:       {plan.media_type}",
            "",
            f"These {len(plan.tags)} tag(s) point at it and will ALL disappear:",
            *[f"  • {tag}" for tag in plan.tags],
        ]
        if plan.children:
            lines += ["", f"Its {len(plan.children)} platform manifest(s) stay, untagged:"]
            lines += [f"  • {child.digest} {child.platform or ''}" for child in plan.children]
        if plan.referrers:
            lines += ["", f"{len(plan.referrers)} referrer(s) will point at nothing:"]
            lines += [
                f"  • {ref.digest} {ref.artifact_type or ref.media_type}" for ref in plan.referrers
            ]
        lines += ["", "Blobs are freed only by garbage collection (g on the registry screen)."]
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog(f"Delete manifest {short_digest(plan.digest)}?", "\n".join(lines))
        )
        self.set_status("")
        if not confirmed:
            self.notify("Nothing was deleted.")
            return
        await client.delete_manifest(self.repository, plan.digest)
        self.notify(
            f"Deleted {short_digest(plan.digest)} and its tags: {', '.join(plan.tags) or '—'}",
            title="Deleted",
        )
        self.marked -= set(plan.tags)
        self.load_tags()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_untag(self) -> None:
        row = self.current_row()
        if row is None:
            return
        siblings = sorted(
            other.tag
            for other in self.rows.values()
            if row.digest and other.digest == row.digest and other.tag != row.tag
        )
        body = [
            f"Repository: {self.repository}",
            f"Tag:        {row.tag}",
            f"Digest:     {row.digest or '(not loaded yet)'}",
            "",
            "Only this tag is removed.",
        ]
        if siblings:
            body.append(f"These tags stay on the same image: {', '.join(siblings)}")
        else:
            body.append("No other tag points at this image: it stays, untagged, until deleted.")
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog(f"Remove tag {row.tag}?", "\n".join(body), confirm_label="Untag")
        )
        if not confirmed:
            self.notify("Nothing was changed.")
            return
        result = await self.regtui.client.untag(self.repository, row.tag)
        self.notify(f"Removed tag {row.tag} ({result.method}).", title="Untagged")
        self.marked.discard(row.tag)
        self.load_tags()

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_delete_marked(self) -> None:
        if not self.marked:
            self.notify("No tag is marked: space marks one, k marks all but the newest N.")
            return
        try:
            actions = plan_bulk_delete(self.marked, self.rows.values())
        except ValueError as error:
            self.notify(f"Wait for the details: {error}.", severity="warning")
            return
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog(
                f"Delete {len(self.marked)} marked tag(s)?",
                describe_bulk(self.repository, actions),
            )
        )
        if not confirmed:
            self.notify("Nothing was deleted.")
            return
        results = await self._run_bulk(actions)
        self.marked.clear()
        await self.app.push_screen_wait(ResultsDialog("Delete marked", results))
        self.load_tags()

    async def _run_bulk(self, actions: list[BulkAction]) -> list[ItemResult]:
        client = self.regtui.client
        results: list[ItemResult] = []
        for number, action in enumerate(actions, 1):
            self.set_status(f"Deleting {number}/{len(actions)}…")
            label = f"{action.kind} {short_digest(action.digest)} ({', '.join(action.tags)})"
            try:
                if action.kind is ActionKind.DELETE_MANIFEST:
                    await client.delete_manifest(self.repository, action.digest)
                    results.append(ItemResult(label, True))
                else:
                    for tag in action.tags:
                        await client.untag(self.repository, tag)
                    results.append(
                        ItemResult(label, True, f"kept {', '.join(action.kept_siblings)}")
                    )
            except RegistryClientError as error:
                results.append(ItemResult(label, False, str(error)))
        self.set_status("")
        return results
