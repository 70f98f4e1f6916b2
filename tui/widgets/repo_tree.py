"""Repositories as a tree by namespace, drawn virtually: only the rows on screen are rendered.

The widget holds a ``RepoNode`` model and a flat list of ``TreeRow`` (``visible_rows``); a
rebuild after a filter keystroke costs one pass over the open rows, and painting costs the height
of the widget, whatever the size of the registry (10,000 repositories stay under a few ms).
"""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.logic.escape import visible
from tui.logic.fmt import count_of
from tui.logic.repotree import Match, RepoNode, RowKind, TreeRow, namespace_paths, visible_rows


class RepoTree(ScrollView, can_focus=True):
    """Shows a ``RepoNode`` model, narrowed by a filter ``Match``. ``counts`` add "N tags"."""

    class RepositorySelected(Message):
        def __init__(self, tree: RepoTree, repository: str) -> None:
            super().__init__()
            self.tree = tree
            self.repository = repository

        @property
        def control(self) -> RepoTree:
            return self.tree

    class RepositoriesShown(Message):
        """Repositories came into view: their tag counts are wanted."""

        def __init__(self, tree: RepoTree, repositories: list[str]) -> None:
            super().__init__()
            self.tree = tree
            self.repositories = repositories

        @property
        def control(self) -> RepoTree:
            return self.tree

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", show=False),
        Binding("space", "toggle_namespace", "Open or close", show=False),
        Binding("shift+space", "toggle_all", "Open or close all", show=False),
        Binding("right", "expand", "Expand", show=False),
        Binding("left", "collapse", "Collapse", show=False),
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {"repo-tree--cursor", "repo-tree--guides"}

    DEFAULT_CSS = """
    RepoTree {
        background: $surface;
        color: $foreground;
        & > .repo-tree--cursor {
            background: $block-cursor-blurred-background;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .repo-tree--guides { color: $surface-lighten-2; }
        &:focus {
            background-tint: $foreground 5%;
            & > .repo-tree--guides { color: $surface-lighten-3; }
            & > .repo-tree--cursor {
                color: $block-cursor-foreground;
                background: $block-cursor-background;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """

    EXPAND_ALL_LIMIT = 300
    """When a (filtered) tree has at most this many repositories, every namespace opens."""
    COUNT_MARGIN = 20
    """Rows beyond the visible ones whose tag counts are asked for with them."""

    cursor_line: reactive[int] = reactive(0, always_update=True)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.counts: dict[str, int | str] = {}
        self.broken: dict[str, tuple[str, ...]] = {}
        """Broken images by repository, from the last scrub: marked in red."""
        self._model = RepoNode("", "")
        self._match: Match | None = None
        self._rows: list[TreeRow] = []
        self._user_opened: set[str] = set()
        """Namespaces the user opened (they stay open across filter keystrokes)."""
        self._user_closed: set[str] = set()
        """Namespaces the user closed in a small tree where every namespace opens by itself."""
        self._expanded: set[str] = set()
        self._open_all = False
        self.generation = 0
        """Bumped by every rebuild of the rows."""
        self.painted_generation = -1
        """The generation the last rendered line came from (benchmarks wait for the paint)."""

    # -- building -----------------------------------------------------------------------------
    def show(self, model: RepoNode, match: Match | None = None) -> None:
        """Show ``model`` (only what ``match`` holds, when given); the cursor stays on the same
        row when it is still there, else it goes to the first repository."""
        current = self.cursor_row
        cursor_key = (current.node.path, current.kind) if current else None
        self._model = model
        self._match = match
        total = match.total if match is not None else model.repo_count
        self._open_all = total <= self.EXPAND_ALL_LIMIT
        self._relayout(cursor_key)

    def _relayout(self, cursor_key: tuple[str, RowKind] | None) -> None:
        if self._open_all:
            self._expanded = namespace_paths(self._model, self._match) - self._user_closed
        else:
            self._expanded = self._user_opened
        self._rows = visible_rows(self._model, self._expanded, self._match)
        self.generation += 1
        self.virtual_size = Size(0, len(self._rows))
        line = self._find(cursor_key) if cursor_key else None
        if line is None:
            line = self._first_repository_line()
        self.cursor_line = line
        self._scroll_to_cursor()
        self.refresh()
        self._announce_visible()

    def _find(self, key: tuple[str, RowKind]) -> int | None:
        path, kind = key
        for index, row in enumerate(self._rows):
            if row.node.path == path and row.kind is kind:
                return index
        return None

    def _first_repository_line(self) -> int:
        for index, row in enumerate(self._rows):
            if row.kind is not RowKind.NAMESPACE:
                return index
        return 0

    def set_broken(self, broken: dict[str, tuple[str, ...]]) -> None:
        """Mark the repositories whose images the last scrub found broken."""
        if broken != self.broken:
            self.broken = dict(broken)
            self.refresh()

    def set_count(self, repository: str, count: int | str) -> None:
        self.counts[repository] = count
        self.refresh()

    # -- state --------------------------------------------------------------------------------
    @property
    def rows(self) -> list[TreeRow]:
        return self._rows

    @property
    def cursor_row(self) -> TreeRow | None:
        if 0 <= self.cursor_line < len(self._rows):
            return self._rows[self.cursor_line]
        return None

    def labels(self) -> list[str]:
        """Every row's text, without indentation or icons (what tests read)."""
        return [self.row_label(row).plain for row in self._rows]

    def expanded_paths(self) -> set[str]:
        return set(self._expanded)

    # -- drawing ------------------------------------------------------------------------------
    def row_label(self, row: TreeRow) -> Text:
        dim = "dim"
        node = row.node
        if row.kind is RowKind.NAMESPACE:
            label = Text(f"{visible(node.name)}/", style="bold")
            total = self._match.count(node) if self._match is not None else node.repo_count
            label.append(f"  {count_of(total, 'repository')}", style=dim)
            return label
        repository = node.repository or node.path
        name = visible(node.name)  # a hostile registry may send any name
        label = Text(f"{name} (this repository)" if row.kind is RowKind.OWN else name)
        count = self.counts.get(repository)
        if isinstance(count, int):
            label.append(f"  {count_of(count, 'tag')}", style=dim)
        elif count:
            label.append(f"  {count}", style="red")
        broken = self.broken.get(repository)
        if broken:
            label.append(f"  ✗ {count_of(len(broken), 'broken image')}", style="bold red")
        return label

    def render_line(self, y: int) -> Strip:
        self.painted_generation = self.generation
        width = self.size.width
        base = self.rich_style
        line = self.scroll_offset.y + y
        if line >= len(self._rows):
            return Strip.blank(width, base)
        row = self._rows[line]
        text = Text(style=base, end="")
        text.append(row.guides, style=self.get_component_rich_style("repo-tree--guides"))
        if row.kind is RowKind.NAMESPACE:
            text.append("▼ " if row.expanded else "▶ ", style=base)
        label = self.row_label(row)
        if line == self.cursor_line:
            label.stylize(self.get_component_rich_style("repo-tree--cursor"))
        text.append_text(label)
        text.stylize(Style(meta={"line": line}))
        strip = Strip(text.render(self.app.console), text.cell_len)
        return strip.crop_extend(0, width, base)

    # -- cursor and scrolling -----------------------------------------------------------------
    def watch_cursor_line(self, previous: int, line: int) -> None:
        self.refresh_line(previous)
        self.refresh_line(line)

    def refresh_line(self, line: int) -> None:
        y = line - self.scroll_offset.y
        if 0 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def _scroll_to_cursor(self) -> None:
        height = max(1, self.scrollable_content_region.height)
        top = self.scroll_offset.y
        if self.cursor_line < top:
            self.scroll_to(y=self.cursor_line, animate=False, immediate=True)
        elif self.cursor_line >= top + height:
            self.scroll_to(y=self.cursor_line - height + 1, animate=False, immediate=True)

    def _move(self, line: int) -> None:
        if not self._rows:
            return
        self.cursor_line = max(0, min(line, len(self._rows) - 1))
        self._scroll_to_cursor()

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._announce_visible()

    def _on_resize(self, event: events.Resize) -> None:
        self._announce_visible()

    def _announce_visible(self) -> None:
        top = int(self.scroll_offset.y)
        bottom = top + max(self.size.height, 40) + self.COUNT_MARGIN
        wanted = [
            row.repository
            for row in self._rows[top:bottom]
            if row.repository and row.repository not in self.counts
        ]
        if wanted:
            self.post_message(self.RepositoriesShown(self, wanted))

    # -- actions ------------------------------------------------------------------------------
    def action_cursor_up(self) -> None:
        self._move(self.cursor_line - 1)

    def action_cursor_down(self) -> None:
        self._move(self.cursor_line + 1)

    def action_page_up(self) -> None:
        self._move(self.cursor_line - max(1, self.size.height - 1))

    def action_page_down(self) -> None:
        self._move(self.cursor_line + max(1, self.size.height - 1))

    def action_first(self) -> None:
        self._move(0)

    def action_last(self) -> None:
        self._move(len(self._rows) - 1)

    def _set_open(self, path: str, is_open: bool) -> None:
        if is_open:
            self._user_opened.add(path)
            self._user_closed.discard(path)
        else:
            self._user_opened.discard(path)
            self._user_closed.add(path)
        row = self.cursor_row
        self._relayout((row.node.path, row.kind) if row else None)

    def action_toggle_namespace(self) -> None:
        row = self.cursor_row
        if row is not None and row.kind is RowKind.NAMESPACE:
            self._set_open(row.node.path, not row.expanded)

    def action_toggle_all(self) -> None:
        """Open every namespace in view (a filter narrows what "every" is), or close them all
        when they are all open already."""
        paths = namespace_paths(self._model, self._match)
        if paths <= self._expanded:
            self._user_opened -= paths
            self._user_closed |= paths
        else:
            self._user_opened |= paths
            self._user_closed -= paths
        row = self.cursor_row
        self._relayout((row.node.path, row.kind) if row else None)

    def action_expand(self) -> None:
        row = self.cursor_row
        if row is not None and row.kind is RowKind.NAMESPACE and not row.expanded:
            self._set_open(row.node.path, True)

    def action_collapse(self) -> None:
        row = self.cursor_row
        if row is None:
            return
        if row.kind is RowKind.NAMESPACE and row.expanded:
            self._set_open(row.node.path, False)
            return
        # On a repository (or a closed namespace): go to the namespace that holds it.
        for line in range(self.cursor_line - 1, -1, -1):
            candidate = self._rows[line]
            if candidate.depth < row.depth and candidate.kind is RowKind.NAMESPACE:
                self._move(line)
                return

    def action_select_cursor(self) -> None:
        row = self.cursor_row
        if row is None:
            return
        if row.kind is RowKind.NAMESPACE:
            self.action_toggle_namespace()
        elif row.repository:
            self.post_message(self.RepositorySelected(self, row.repository))

    async def _on_click(self, event: events.Click) -> None:
        line = event.style.meta.get("line")
        if isinstance(line, int) and 0 <= line < len(self._rows):
            self._move(line)
            self.action_select_cursor()
