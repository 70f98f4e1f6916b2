"""The first screen: every repository of the registry, grouped by namespace, with tag counts."""

from __future__ import annotations

import asyncio
import gc
import time

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import Footer, Header, Static

from tui.client.errors import CatalogUnsupportedError, RegistryClientError
from tui.dialogs.prompt import PromptDialog
from tui.logic.fmt import count_of
from tui.logic.repotree import RepoIndex
from tui.screens.base import RegtuiScreen
from tui.widgets.filter_bar import FilterBar
from tui.widgets.repo_tree import RepoTree

CATALOG_PAGE_SIZE = 1000
COUNT_DELAY = 0.3
"""Seconds of quiet (no filter change) before tag counts are fetched."""
COUNT_BATCH = 200
"""At most this many tag counts are requested at once (the tree asks for the rows in view)."""


def validate_repository_name(value: str) -> str | None:
    if not value:
        return "Enter a repository name, such as library/alpine."
    if value != value.lower() or " " in value:
        return "Repository names are lowercase, without spaces."
    return None


class RegistryScreen(RegtuiScreen):
    """Repositories by namespace. enter opens one; o opens one by name; f finds tags or a digest
    in every repository; g shows storage and GC; p plans retention; e shows the registry's
    events."""

    BINDINGS = [
        # Short words: every key of this screen fits the footer of an 80-column terminal.
        Binding("f", "find", "Find", id="find"),
        Binding(
            "o", "open_by_name", "Open", id="open-by-name", tooltip="Open a repository by name"
        ),
        Binding("g", "storage", "Storage", id="storage", tooltip="Storage and GC"),
        Binding("p", "retention", "Retention", id="retention"),
        Binding("r", "reload", "Reload", id="reload"),
        Binding("e", "events", "Events", id="events", tooltip="Recent pushes, pulls, deletes"),
    ]
    SHOWS_PALETTE_KEY = True

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self._index = RepoIndex([])
        self.catalog_complete = False
        self.first_paint_seconds: float | None = None
        self._query = ""
        self._shown_count = 0
        self._pending_counts: list[str] = []
        self._requested_counts: set[str] = set()
        self._count_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterBar("Filter repositories…")
        yield RepoTree(id="repos")
        yield Static("Connecting…", id="status", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Registry"
        self.sub_title = self.regtui.settings.title or self.regtui.settings.registry
        self.focus_main()
        self._started = time.perf_counter()
        self.load_catalog()

    def focus_main(self) -> None:
        self.query_one(RepoTree).focus()

    def on_screen_resume(self) -> None:
        # Back from a scrub: the images it found broken are marked in the catalog.
        self.repo_tree.set_broken(self.regtui.scrub_broken)

    @property
    def repo_tree(self) -> RepoTree:
        return self.query_one(RepoTree)

    @property
    def shown_query(self) -> str:
        """The filter the list currently shows (tests and the benchmark wait on it)."""
        return self._query

    def set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    # -- catalog ------------------------------------------------------------------------------
    @work(exclusive=True, group="catalog", exit_on_error=False)
    async def load_catalog(self) -> None:
        self._set_names([])
        self.catalog_complete = False
        self.set_status("Loading the catalog…")
        names: list[str] = []
        try:
            async for page in self.regtui.client.iter_catalog(page_size=CATALOG_PAGE_SIZE):
                names.extend(page)
                self._set_names(sorted(names))
                self._render_tree()
                self.set_status(f"Loading the catalog… {count_of(len(names), 'repository')} so far")
        except CatalogUnsupportedError:
            self.set_status("This registry does not list its repositories: press o to open one.")
            self.ask_repository()
            return
        except RegistryClientError as error:
            self.set_status(f"Cannot list repositories: {error}  (r to retry, o to open by name)")
            raise
        self.catalog_complete = True
        # The catalog's index lives as long as the screen: moving it (and everything else that
        # exists now) out of the collector's reach keeps full collections, which would otherwise
        # walk every node of a 10,000-repository tree, out of the filter's keystrokes.
        gc.freeze()
        if not names:
            self._render_tree()
        self.set_status(self._summary())

    def _set_names(self, names: list[str]) -> None:
        self.names = names
        self._index = RepoIndex(names)
        self._shown_count = len(names)

    def _summary(self) -> str:
        shown = self._shown_count
        if self._query:
            total = count_of(len(self.names), "repository")
            return f"{shown:,} of {total} match “{self._query}”"
        if not self.names:
            return "The registry has no repositories yet."
        return f"{count_of(len(self.names), 'repository')} · enter opens · / filters · ? help"

    def _render_tree(self) -> None:
        match = self._index.match(self._query)
        self._shown_count = match.total if match is not None else len(self.names)
        self.repo_tree.show(self._index.model, match)
        if self.first_paint_seconds is None and self.names:
            self.first_paint_seconds = time.perf_counter() - self._started

    def apply_filter(self, query: str) -> None:
        self._query = query.strip()
        self._render_tree()
        if self.catalog_complete:
            self.set_status(self._summary())

    # -- tag counts ---------------------------------------------------------------------------
    def on_repo_tree_repositories_shown(self, event: RepoTree.RepositoriesShown) -> None:
        fresh = [name for name in event.repositories if name not in self._requested_counts]
        fresh = fresh[:COUNT_BATCH]
        if not fresh:
            return
        self._requested_counts.update(fresh)
        self._pending_counts.extend(fresh)
        # Wait until the user stops typing: counting competes with repainting the tree.
        if self._count_timer is not None:
            self._count_timer.stop()
        self._count_timer = self.set_timer(COUNT_DELAY, self._start_counting)

    def _start_counting(self) -> None:
        # A running counter picks the new names up in its loop; cancelling it would lose the
        # batch it is waiting on.
        running = any(
            worker.node is self and worker.group == "counts" and not worker.is_finished
            for worker in self.workers
        )
        if not running:
            self.count_tags()

    @work(group="counts", exit_on_error=False)
    async def count_tags(self) -> None:
        client = self.regtui.client
        limit = asyncio.Semaphore(self.regtui.settings.max_concurrency)

        async def count(name: str) -> None:
            async with limit:
                try:
                    tags = await client.list_tags(name)
                except RegistryClientError as error:
                    self.repo_tree.set_count(name, error.title.lower())
                    return
            self.repo_tree.set_count(name, len(tags))

        while self._pending_counts:
            batch, self._pending_counts = self._pending_counts, []
            await asyncio.gather(*(count(name) for name in batch))

    # -- navigation ---------------------------------------------------------------------------
    def on_repo_tree_repository_selected(self, event: RepoTree.RepositorySelected) -> None:
        self.open_repository(event.repository)

    def open_repository(self, name: str) -> None:
        # The screens opened from here load on first use: all of them at start-up cost about
        # half a second (they are no import circle: see pyproject.toml's contracts).
        from tui.screens.repository import RepositoryScreen

        self.app.push_screen(RepositoryScreen(name))

    @work(exclusive=True, group="ask", exit_on_error=False)
    async def ask_repository(self) -> None:
        name = await self.app.push_screen_wait(
            PromptDialog(
                "Open a repository",
                "Repository name (this registry has no catalog, or you know the name):",
                placeholder="library/alpine",
                validate=validate_repository_name,
            )
        )
        if name:
            self.open_repository(name)

    def action_open_by_name(self) -> None:
        self.ask_repository()

    def action_find(self) -> None:
        from tui.screens.find import FindScreen

        self.app.push_screen(FindScreen())

    def action_reload(self) -> None:
        self._requested_counts.clear()
        self.repo_tree.counts.clear()
        self.load_catalog()

    def action_storage(self) -> None:
        from tui.screens.storage import StorageScreen

        self.app.push_screen(StorageScreen())

    def action_events(self) -> None:
        from tui.screens.events import EventsScreen  # loaded when first opened (start-up time)

        self.app.push_screen(EventsScreen())

    def action_retention(self) -> None:
        from tui.screens.retention import RetentionScreen

        self.app.push_screen(RetentionScreen())
