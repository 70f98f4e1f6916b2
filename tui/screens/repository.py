"""One repository: its tags with details loading in the background; sorting; deletion."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterable
from datetime import datetime

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from tui.client import DeleteDisabledError, RegistryClientError
from tui.client.cache import CacheReport
from tui.client.collector import freeze_and_resume
from tui.data.details import DetailsLoader, TagFacts, cached_tags, tag_facts
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.prompt import PromptDialog
from tui.dialogs.results import ItemResult, ResultsDialog
from tui.logic.deletion import DeleteContext, describe_delete, gc_note
from tui.logic.escape import visible, visible_markup
from tui.logic.fmt import count_of, short_digest
from tui.logic.retention import (
    ActionKind,
    BulkAction,
    describe_bulk,
    format_duration,
    keep_newest,
    plan_bulk_delete,
)
from tui.logic.tags import TagRow, TagSort, filter_tags, name_key, sort_tags
from tui.screens.base import RegtuiScreen, guarded
from tui.screens.copying import copy_flow, retag_flow
from tui.screens.diff import DiffScreen
from tui.widgets.filter_bar import FilterBar
from tui.widgets.tag_table import ADD_CHUNK, TagTable

DELETE_ACTIONS = frozenset({"delete", "untag", "mark", "delete_marked", "keep_newest"})
WRITE_ACTIONS = frozenset({"retag"})
"""Keys that write to this registry without deleting: hidden in read-only mode only."""

UNTAG_FALLBACK = (
    "If the registry cannot delete a tag on its own (Distribution 2.8 cannot), regtui moves "
    "the tag onto a tiny empty manifest of its own and deletes that manifest by digest: the "
    "image and its other tags are not touched."
)
"""What the untag fallback does, in words (the client calls it a "placeholder")."""

UNTAG_METHODS = {
    "tag-delete": "the registry deleted the tag",
    "placeholder": "moved onto an empty manifest of regtui's, which was then deleted",
}


PROGRESSIVE_SORT_SECONDS = 1.0
"""While details load, how often rows sorted by date or size (or filtered) are put back in
order."""
SORT_COST_FACTOR = 20
"""While details load, rows are put in order at most once per this many times what the last
ordering cost (with 10,000 rows a sort and its table writes take tens of milliseconds: on a
registry that answers slowly, a sort every second would be much of the app's work)."""
FLUSH_SECONDS = 0.1
"""While details load, how often the rows read meanwhile go into the table (and the count)."""
HIDDEN_WRITE_SECONDS = 1.0
"""While details load, how often rows out of view are written into the table."""
VISIBLE_MARGIN = 20
"""Rows below the view whose details are read first too (a page down)."""
FREEZE_ROWS = 2000
"""From this many tags on, the objects alive are frozen for the garbage collector."""
FREEZE_SECONDS = 1.0
"""While details load, how often what lives is frozen again."""


REFREEZE_DELAY = 1.0
"""After a screen that froze the heap closes, when its objects are collected."""


def _collect_and_refreeze() -> None:
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _row(tag: str, facts: TagFacts, expires: datetime | None) -> TagRow:
    """The row of ``tag`` with what the registry's report says of it: when pushed and pulled,
    and its details when the report holds them (the bundled registry's)."""
    details = facts.details.get(tag)
    if details is None:
        return TagRow(
            tag,
            pushed=facts.pushed.get(tag),
            pulled=facts.pulled.get(tag),
            expires=expires,
            immutable=facts.immutable.get(tag),
        )
    image = details.facts
    return TagRow(  # made at once: a replace() per row of 10,000 is a tenth of a second
        tag,
        digest=details.digest,
        media_type=image.media_type,
        size=image.size,
        created=image.created,
        pushed=facts.pushed.get(tag),
        pulled=facts.pulled.get(tag),
        expires=expires,
        platforms=image.platforms,
        immutable=facts.immutable.get(tag),
        loaded=True,
    )


def validate_keep(value: str) -> str | None:
    if not value.isdigit():
        return "Enter a whole number (0 or more)."
    return None


class RepositoryScreen(RegtuiScreen):
    """Tags of one repository. enter opens an image; s sorts; d, u, space, D, k delete."""

    BINDINGS = [
        Binding("s", "cycle_sort", "Sort", id="sort"),
        Binding("S", "reverse_sort", "Reverse", id="reverse-sort", show=False),
        # Short words: the screen's keys fit an 80-column footer; help says them in full.
        *guarded("d", "delete", "Delete", id="delete", tooltip="Delete the digest"),
        *guarded("u", "untag", "Untag", id="untag"),
        *guarded("space", "mark", "Mark", id="mark"),
        *guarded("D", "delete_marked", "Del marked", id="delete-marked", tooltip="Delete marked"),
        *guarded("k", "keep_newest", "Keep N", id="keep-newest", tooltip="Keep newest N"),
        Binding("r", "reload", "Reload", id="reload", show=False),
        Binding("equals_sign", "diff", "Diff", id="diff", show=False, key_display="="),
        Binding("C", "copy_to", "Copy to…", id="copy-to", show=False),
        *guarded("t", "retag", "Retag", id="retag", tooltip="New tags on this image"),
    ]

    def __init__(self, repository: str, *, marked: Iterable[str] = ()) -> None:
        """``marked``: tags to show marked for review (a retention plan's tags that go)."""
        super().__init__()
        self.repository = repository
        self.cache: CacheReport | None = None
        """What a pull-through cache holds of this repository (``None``: not a mirror's)."""
        self.rows: dict[str, TagRow] = {}
        self.marked: set[str] = set(marked)
        self.sort_key = TagSort.NAME
        self.descending = False
        self._query = ""
        self.details_done = False
        self._loaded = False
        self._details_progress: tuple[int, int] | None = None
        self._failed = 0
        self._loader: DetailsLoader | None = None
        """What reads the details now (``None`` once they are all in)."""
        self._arrived: dict[str, TagRow] = {}
        """Rows read since the last flush (:meth:`_flush_details`)."""
        self._unwritten: set[str] = set()
        """Tags whose new details are not in the table yet (their rows are out of view)."""
        self._unsorted = False
        """Details came in since the rows were last put in order."""
        self._last_sort = self._last_write = 0.0
        self._sort_every = PROGRESSIVE_SORT_SECONDS
        """While details load: seconds between two orderings (:data:`SORT_COST_FACTOR`)."""
        self._status_text: str | None = None
        self._heading_text: str | None = None
        self._shown_count = 0
        """Rows that pass the filter (the table may still be adding them)."""
        self._froze = False
        """The garbage collector was told to skip the objects alive (:meth:`_freeze_heap`)."""
        self._last_freeze = 0.0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="repo-heading", classes="heading")
        yield FilterBar("Filter tags (name, digest, platform)…")
        yield TagTable(id="tags")
        yield Static("Loading tags…", id="status", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = visible(self.repository)
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
        """Say what is happening now; :meth:`show_summary` replaces it when that is over."""
        if text != self._status_text:
            self._status_text = text
            # One line high: a new text never changes the layout (a layout pass costs a
            # frame of the whole screen, and the count changes ten times a second).
            self.query_one("#status", Static).update(text, layout=False)

    def show_summary(self) -> None:
        """The status line for the current state (tags, filter, details, failures)."""
        self.set_status(self._summary())

    def _summary(self) -> str:
        if not self._loaded:
            return "Loading tags…"
        if not self.rows:
            return "No tags: this repository is empty."
        total = len(self.rows)
        if self._query:
            shown = self._shown_count
            text = f"{shown:,} of {count_of(total, 'tag')} match “{self._query}”"
        else:
            text = count_of(total, "tag")
        if not self.details_done:
            done, of = self._details_progress or (0, total)
            return f"{text} · reading details {done}/{of}…"
        text += " · enter opens · s sorts · / filters"
        if self._failed:
            text += f" · {self._failed} could not be read"
        return text

    def _update_heading(self) -> None:
        direction = "↓" if self.descending else "↑"
        marked = f" · {len(self.marked)} marked" if self.marked else ""
        read_only = " · read-only" if self.is_read_only() else ""
        cache = ""
        if self.cache is not None:
            ttl = self.cache.ttl_seconds
            kept = f"kept {format_duration(ttl)}" if ttl else "kept until removed"
            cache = f" · cache of {visible_markup(self.cache.upstream)}, {kept}"
        heading = (
            f"{visible_markup(self.repository)} · {count_of(len(self.rows), 'tag')} · "
            f"sorted by {self.sort_key} "
            f"{direction}{marked}{read_only}{cache}"
        )
        if heading != self._heading_text:
            self._heading_text = heading
            self.query_one("#repo-heading", Static).update(heading)

    def unavailable_reason(self, action: str) -> str | None:
        if action in WRITE_ACTIONS and self.is_read_only():
            return "Read-only mode (regtui was started with --read-only): nothing is written."
        if action not in DELETE_ACTIONS:
            return None
        if self.is_read_only():
            return "Read-only mode (regtui was started with --read-only): nothing is deleted."
        return self.regtui.deletion_refused

    def _deletion_refused(self, error: DeleteDisabledError) -> None:
        """The registry answered 405: hide the deletion keys from now on, and say why."""
        self.regtui.deletion_refused = (
            f"{error} For Distribution (registry:2), set storage.delete.enabled: true "
            "(REGISTRY_STORAGE_DELETE_ENABLED=true) and restart it."
        )
        self.refresh_bindings()

    # -- loading ------------------------------------------------------------------------------
    @work(exclusive=True, group="tags", exit_on_error=False)
    async def load_tags(self) -> None:
        self._loaded = False
        self.details_done = False
        self._details_progress = None
        self._failed = 0
        self._loader = None  # a reload: what the last load still reads is dropped
        self.workers.cancel_group(self, "details")
        self.show_summary()
        client = self.regtui.client
        try:
            tags = await client.list_tags(self.repository)
        except RegistryClientError:
            self.set_status(f"Cannot list the tags of {self.repository} (r to retry).")
            raise
        if len(tags) < FREEZE_ROWS:
            await self._show_tags(tags)
            return
        # Thousands of rows, the report's facts and the table's cells all live on: the
        # collector is kept off them while they are made (each of its passes over them held
        # the loop 50-100 ms), and they are frozen before it resumes (see _freeze_heap).
        self._froze = True
        with freeze_and_resume():
            await self._show_tags(tags)

    async def _show_tags(self, tags: list[str]) -> None:
        """The listed ``tags`` in the table, then what the registry's report says of them."""
        client = self.regtui.client
        # Push and pull times (and, from the bundled registry, every row's details) come from
        # a report of the whole repository, asked once the tags are listed: the registry
        # builds it from every manifest and config (seconds for 10,000 tags), and asked at
        # once it held up the listing behind it (1.9 s where it alone takes 0.2 s).
        pushing = asyncio.ensure_future(tag_facts(client, self.repository)) if tags else None
        self.rows = {tag: TagRow(tag) for tag in tags}
        self.marked &= set(self.rows)
        if len(tags) >= FREEZE_ROWS:
            # The names' sort keys worked out in a thread (it lets the loop run every few
            # milliseconds): on the loop, 10,000 of them held it 46 ms before the first rows.
            try:
                await asyncio.to_thread(lambda: [name_key(tag) for tag in tags])
            except BaseException:  # a reload cancelled this load: its report too
                if pushing is not None:
                    pushing.cancel()
                raise
        self._loaded = True
        self.details_done = not tags
        self._details_progress = (0, len(tags))
        self.render_rows()
        self.show_summary()
        if pushing is None:
            return
        facts = await pushing
        if facts.pushed:
            self.table.show_pushed()
        if facts.pulled:
            self.table.show_pulled()
        # A pull-through cache's repository: what is cached, and until when (the bundled
        # registry only: the only one that says when each tag was pushed).
        self.cache = await cached_tags(client, self.repository) if facts.pushed else None
        expires: dict[str, datetime] = {}
        if self.cache is not None:
            self.table.show_expires()
            expires = {t.tag: t.expires for t in self.cache.tags.values() if t.expires}
        listed, rows = self.rows, {}
        for number, tag in enumerate(tags, 1):
            row = _row(tag, facts, expires.get(tag))
            # A row the report adds nothing to stays the same object: the table keeps it.
            rows[tag] = listed[tag] if row == listed[tag] else row
            if number % ADD_CHUNK == 0:
                await asyncio.sleep(0)  # a step of the loop per chunk of rows, as the table's
        self.rows = rows
        unread = [row for row in rows.values() if not row.loaded]
        # A turn of the event loop between the steps: 10,000 rows made, sorted and written,
        # then the heap frozen, in one go held it a quarter of a second on a loaded machine.
        await asyncio.sleep(0)
        if any(rows[tag] is not listed[tag] for tag in tags):
            self.render_rows()
            await asyncio.sleep(0)
        self._details_progress = (len(tags) - len(unread), len(tags))
        self.details_done = not unread
        if unread:
            self.load_details(unread)
        self.show_summary()

    @work(exclusive=True, group="details", exit_on_error=False)
    async def load_details(self, unread: list[TagRow]) -> None:
        """Read the details of the ``unread`` rows, a request or two per tag (those the
        registry's report did not hold: every tag, on a registry other than the bundled one)."""
        loader = DetailsLoader(
            self.regtui.client,
            self.repository,
            unread,
            workers=self.regtui.settings.max_concurrency,
        )
        self._loader = loader
        self._freeze_heap()
        self._arrived = {}
        self._last_sort = self._last_write = time.monotonic()
        loader.prioritize(self.table.visible_tags(margin=VISIBLE_MARGIN))

        def arrived(row: TagRow) -> None:
            if self._loader is loader:
                self._arrived[row.tag] = row

        timer = self.set_interval(FLUSH_SECONDS, self._flush_details)
        try:
            await loader.run(arrived)
        finally:
            timer.stop()
        if self._loader is not loader:
            return
        self._take_arrived(loader)
        self._loader = None
        self.details_done = True
        self.render_rows()  # re-sorts by the new values and fits the columns to them
        self._freeze_heap()
        if self._failed:
            self.notify(
                f"{count_of(self._failed, 'tag')} of {self.repository} could not be read.",
                severity="warning",
            )
        self.show_summary()

    def _freeze_heap(self) -> None:
        """With thousands of tags, keep the garbage collector off the rows (and the rest).

        Every full collection walks every object the app keeps: with 10,000 rows in the table
        that is a pause of 100-200 ms, several times while their details load and again when
        they are sorted. Frozen objects are still freed when nothing refers to them; only
        the search for reference cycles skips them (Textual itself pauses the collector while
        it scrolls)."""
        if len(self.rows) >= FREEZE_ROWS:
            gc.collect(1)  # the young garbage first (cheap): only what lives is frozen
            gc.freeze()
            self._froze = True

    def on_unmount(self) -> None:
        if self._froze:
            self._froze = False
            # Frozen objects are never collected, and this screen's are garbage once it is
            # gone: then everything is unfrozen, collected once, and what lives frozen again
            # (the registry screen keeps its catalog frozen the same way).
            self.app.set_timer(REFREEZE_DELAY, _collect_and_refreeze)

    def _flush_details(self) -> None:
        """Put the details read since the last call into the table, in one go.

        Rows arrive by the hundred per second; each table write makes the next frame draw
        every line in view again (tens of milliseconds), so rows in view are written at once
        and rows out of view at most every :data:`HIDDEN_WRITE_SECONDS`. Sorted by date or size,
        or filtered, the rows are put in order every :data:`PROGRESSIVE_SORT_SECONDS`.
        """
        loader = self._loader
        if loader is None:
            return
        now = time.monotonic()
        self._take_arrived(loader)
        progressive = self._query or self.sort_key in (TagSort.DATE, TagSort.SIZE)
        if now - self._last_freeze >= FREEZE_SECONDS:
            self._last_freeze = now
            self._freeze_heap()
        if self._unsorted and progressive and now - self._last_sort >= self._sort_every:
            self.render_rows()  # writes every row, and puts them in order
            cost = time.monotonic() - now
            self._sort_every = max(PROGRESSIVE_SORT_SECONDS, SORT_COST_FACTOR * cost)
        elif self._unwritten:
            in_view = self.table.visible_tags()
            if now - self._last_write >= HIDDEN_WRITE_SECONDS or any(
                tag in self._unwritten for tag in in_view
            ):
                self._write_unwritten()
            loader.prioritize(self.table.visible_tags(margin=VISIBLE_MARGIN))
        self.show_summary()

    def _take_arrived(self, loader: DetailsLoader) -> None:
        """The rows read since the last call into :attr:`rows` and the counts."""
        arrived, self._arrived = self._arrived, {}
        if not arrived:
            return
        done, of = self._details_progress or (0, loader.total)
        self._details_progress = (done + len(arrived), of)
        self._failed += sum(1 for row in arrived.values() if row.error)
        self.rows.update((tag, row) for tag, row in arrived.items() if tag in self.rows)
        self._unwritten.update(arrived)
        self._unsorted = True

    def _write_unwritten(self) -> None:
        table = self.table
        for tag in self._unwritten:
            row = self.rows.get(tag)
            if row is not None:
                table.update_row(row, marked=tag in self.marked)
        self._unwritten.clear()
        self._last_write = time.monotonic()

    def render_rows(self) -> None:
        rows = sort_tags(self.rows.values(), self.sort_key, descending=self.descending)
        if self._query:
            rows = filter_tags(rows, self._query)
        self.table.show_rows(rows, self.marked)
        self._shown_count = len(rows)
        self._unwritten.clear()
        self._unsorted = False
        self._last_sort = self._last_write = time.monotonic()
        self._update_heading()

    def apply_filter(self, query: str) -> None:
        self._query = query.strip()
        self.render_rows()
        self.show_summary()

    # -- navigation and sorting ---------------------------------------------------------------
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        tag = event.row_key.value
        if tag is None:
            return
        # On first use: the image screen brings rich.syntax and pygments (~0.1 s) that a list of
        # tags does not need. No import circle is behind it (see pyproject.toml's contracts).
        from tui.screens.image import ImageScreen

        self.app.push_screen(ImageScreen(self.repository, str(tag)))

    def action_cycle_sort(self) -> None:
        self.sort_key = self.sort_key.next()
        if self.sort_key is TagSort.PUSHED and not self.table.shows_pushed:
            self.sort_key = self.sort_key.next()  # this registry does not say when
        if self.sort_key is TagSort.PULLED and not self.table.shows_pulled:
            self.sort_key = self.sort_key.next()  # nothing pulled (or not said)
        # Newest and biggest first are what people look for.
        self.descending = self.sort_key in (
            TagSort.DATE,
            TagSort.PUSHED,
            TagSort.PULLED,
            TagSort.SIZE,
            TagSort.VERSION,
        )
        self.render_rows()

    def action_reverse_sort(self) -> None:
        self.descending = not self.descending
        self.render_rows()

    def action_reload(self) -> None:
        self.load_tags()

    def action_diff(self) -> None:
        """Diff the two marked tags, a marked tag and the cursor's, or ask for the other tag."""
        marked = sorted(self.marked)
        current = self.table.current_tag
        if len(marked) == 2:
            self.app.push_screen(DiffScreen(self.repository, marked[0], marked[1]))
            return
        if len(marked) == 1 and current and current != marked[0]:
            self.app.push_screen(DiffScreen(self.repository, marked[0], current))
            return
        if len(marked) > 2:
            self.notify("Mark exactly two tags to compare them.", severity="warning")
            return
        base = marked[0] if marked else current
        if not base:
            self.notify("No tag to compare.", severity="warning")
            return
        tags = set(self.rows)

        def validate(value: str) -> str | None:
            return None if value in tags else f"No tag {value!r} in {self.repository}."

        def opened(other: str | None) -> None:
            if other:
                self.app.push_screen(DiffScreen(self.repository, base, other))

        self.app.push_screen(
            PromptDialog(
                "Compare with…",
                f"Compare {self.repository}:{base} with which tag?",
                validate=validate,
            ),
            opened,
        )

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
        message = f"Marked {count_of(len(plan.mark), 'tag')}; keeping {len(plan.keep)}."
        if plan.protected:
            message += f" Not marked (same image as a kept tag): {', '.join(plan.protected)}."
        self.notify(message, title="Keep newest")

    # -- copying ------------------------------------------------------------------------------
    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_copy_to(self) -> None:
        row = self.current_row()
        if row is None:
            return
        try:
            await copy_flow(self, self.repository, row.digest or row.tag, row.tag, self.set_status)
        finally:
            self.show_summary()
        self.load_tags()  # a copy within this repository adds a tag

    @work(exclusive=True, group="dialog", exit_on_error=False)
    async def action_retag(self) -> None:
        row = self.current_row()
        if row is None:
            return
        if await retag_flow(self, self.repository, row.digest or row.tag):
            self.load_tags()

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
        try:
            plan = await client.plan_delete(self.repository, row.digest)
        finally:
            self.show_summary()
        backend = await self.regtui.storage_backend()
        gc = gc_note(backend.gc_available, backend.gc_unavailable_reason)
        title, body = describe_delete(DeleteContext(plan), gc=gc)
        confirmed = await self.app.push_screen_wait(ConfirmDialog(title, body))
        if not confirmed:
            self.notify("Nothing was deleted.")
            return
        self.set_status(f"Deleting {short_digest(plan.digest)}…")
        try:
            now = await client.plan_delete(self.repository, plan.digest)
            newcomers = sorted(set(now.tags) - set(plan.tags))
            if newcomers:
                self.notify(
                    visible_markup(
                        f"Nothing was deleted: {', '.join(newcomers)} now point at "
                        f"{short_digest(plan.digest)} too, since you confirmed."
                    ),
                    severity="warning",
                )
                self.load_tags()
                return
            await client.delete_manifest(self.repository, plan.digest)
        except DeleteDisabledError as error:
            self._deletion_refused(error)
            raise
        finally:
            self.show_summary()
        self.notify(
            visible_markup(
                f"Deleted {short_digest(plan.digest)} and its tags: {', '.join(plan.tags) or '—'}"
            ),
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
            these = "This tag stays" if len(siblings) == 1 else "These tags stay"
            body.append(f"{these} on the same image: {', '.join(siblings)}")
        else:
            body.append("No other tag points at this image: it stays, untagged, until deleted.")
        body += ["", UNTAG_FALLBACK]
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog(f"Remove tag {row.tag}?", "\n".join(body), confirm_label="Untag")
        )
        if not confirmed:
            self.notify("Nothing was changed.")
            return
        self.set_status(visible_markup(f"Removing tag {row.tag}…"))
        try:
            result = await self.regtui.client.untag(self.repository, row.tag)
        except DeleteDisabledError as error:
            self._deletion_refused(error)
            raise
        finally:
            self.show_summary()
        how = UNTAG_METHODS.get(result.method, result.method)
        self.notify(visible_markup(f"Removed tag {row.tag} ({how})."), title="Untagged")
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
        body = describe_bulk(self.repository, actions)
        if any(action.kind is ActionKind.UNTAG for action in actions):
            body += f"\n\n{UNTAG_FALLBACK}"
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog(f"Delete {count_of(len(self.marked), 'marked tag')}?", body)
        )
        if not confirmed:
            self.notify("Nothing was deleted.")
            return
        try:
            results = await self._run_bulk(actions)
        finally:
            self.show_summary()
        self.marked.clear()
        await self.app.push_screen_wait(ResultsDialog("Delete marked", results))
        self.load_tags()

    async def _run_bulk(self, actions: list[BulkAction]) -> list[ItemResult]:
        client = self.regtui.client
        results: list[ItemResult] = []
        for number, action in enumerate(actions, 1):
            self.set_status(f"Deleting {number} of {len(actions)}…")
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
            except DeleteDisabledError as error:
                self._deletion_refused(error)
                results.append(ItemResult(label, False, str(error)))
                break  # every other deletion would be refused the same way
            except RegistryClientError as error:
                results.append(ItemResult(label, False, str(error)))
        return results
