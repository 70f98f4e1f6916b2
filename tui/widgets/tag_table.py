"""The table of tags of one repository: marks, digest, size, created, platforms, and pushed
where the registry tells when each tag was pushed (the bundled registry), pulled once it tells
that a tag's image was pulled."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.coordinate import Coordinate
from textual.widgets.data_table import CellKey, Column, ColumnKey, DuplicateKey, Row, RowKey
from textual.worker import Worker

from tui.logic.escape import visible, visible_markup
from tui.logic.fmt import compact_time, human_size, platforms_cell, short_digest
from tui.logic.tags import TagRow
from tui.widgets.table import Table

COLUMNS = (
    ("mark", " "),
    ("tag", "Tag"),
    ("digest", "Digest"),
    ("size", "Size"),
    ("created", "Created"),
    ("platforms", "Platforms"),
)
PUSHED_COLUMN = ("pushed", "Pushed")
PULLED_COLUMN = ("pulled", "Pulled")
EXPIRES_COLUMN = ("expires", "Expires")
ADD_CHUNK = 250
"""Rows made into cells and put into the table (or rewritten in place) in one step of the
event loop; more go in in later steps, one chunk each, the loop free between them (a key, a
frame). A bound in work, not in time: 1,000 rows at once held the loop 50-120 ms on a loaded
machine."""
IMMUTABLE_MARK = Text("⊘", style="bold cyan")
"""The mark of a tag the registry keeps from moving or going (``regtui.immutable``)."""
REWRITE_AT = 200
"""More changed rows than this are rewritten in place (:meth:`TagTable._rewrite_rows`), a
chunk of :data:`ADD_CHUNK` per step of the event loop; fewer cell by cell."""
STALE = object()
"""What a row's cells were made from once a column was added: nothing it can be again."""
PENDING = Text("…", style="dim")
"""The cell of a detail not read yet (one instance: DataTable never changes a cell's value)."""


class TagTable(Table[str | Text]):
    """Row keys are tag names. The screen decides order and filter; this only renders rows."""

    def __init__(self, *, id: str | None = None) -> None:
        self._order: list[Row] | None = []
        """The rows top to bottom, kept as they are added and sorted (``None``: a DataTable
        method changed them; then DataTable works the order out again). DataTable's own is
        keyed by its update count, which every cell written bumps: 10,000 rows looked up again
        (and their line offsets listed again) for each frame with a new value in it."""
        self._offsets: list[tuple[RowKey, int]] = []
        self._offsets_of: list[Row] | None = None
        self._in_view_key: tuple[int, int, int, int] | None = None
        self._in_view_tags: frozenset[str] = frozenset()
        self._row_of: dict[str, Row] = {}
        """Each row by its tag (a ``str`` key: a lookup at C speed, where a RowKey's hash is a
        Python call)."""
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)  # (it clears the rows)
        self._shown: dict[str, tuple[TagRow | object, bool]] = {}
        """What each row's cells were made from."""
        self._columns: tuple[tuple[str, str], ...] = COLUMNS
        self._to_add: deque[TagRow] = deque()
        """Rows of the last :meth:`show_rows` not added yet (added between frames)."""
        self._later: dict[str, tuple[TagRow, bool]] = {}
        self._rewrite: dict[str, TagRow] = {}
        """Shown rows whose cells are written again between frames, in this order."""
        self._rewrite_marked: Collection[str] = ()
        """Newer contents for rows not added yet."""
        self._marked: Collection[str] = ()
        self._cursor_tag: str | None = None
        """Where the cursor goes back to once its row is added."""
        self._final_order: Sequence[TagRow] | None = None
        """The order the rows go in once all are added (:meth:`_continue_adding`)."""
        self._stepping: Worker[None] | None = None
        """What adds and rewrites the rows left, a chunk per step of the event loop."""

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def shows_pushed(self) -> bool:
        return PUSHED_COLUMN in self._columns

    def show_pushed(self) -> None:
        """Add the Pushed column (once): the registry knows when each tag was pushed."""
        self._add_column(PUSHED_COLUMN)

    @property
    def shows_pulled(self) -> bool:
        return PULLED_COLUMN in self._columns

    def show_pulled(self) -> None:
        """Add the Pulled column (once): the registry says when tags' images were pulled."""
        self._add_column(PULLED_COLUMN)

    def show_expires(self) -> None:
        """Add the Expires column (once): the repository is a pull-through cache's."""
        self._add_column(EXPIRES_COLUMN)

    def _add_column(self, column: tuple[str, str]) -> None:
        if column in self._columns:
            return
        key, label = column
        self._append_column(label, key)
        self._columns = (*self._columns, column)
        # Every row's cells are made again, with the new column, by the next show_rows: in
        # place when it shows the same tags (see _rewrite_rows), not by adding every row again.
        self._shown = {tag: (STALE, marked) for tag, (_, marked) in self._shown.items()}

    def _append_column(self, label: str, key: str) -> None:
        """What ``add_column(label, key=key, default="")`` does, without marking each row's
        new cell for measuring: an empty cell never widens a column (DataTable's marks cost
        a third of a second over 10,000 rows, and measuring them on idle as much again)."""
        column_key = ColumnKey(key)
        if column_key in self._column_locations:
            raise DuplicateKey(f"The column key {key!r} already exists.")
        text = Text.from_markup(label)
        width = text.cell_len
        self.columns[column_key] = Column(
            column_key, text, width, content_width=width, auto_width=True
        )
        self._column_locations[column_key] = len(self._column_locations)
        for cells in self._data.values():
            cells[column_key] = ""
        self._require_update_dimensions = True
        self._update_count += 1
        self.check_idle()

    def show_rows(self, rows: Sequence[TagRow], marked: Collection[str]) -> None:
        """Show ``rows`` in this order. The same tags in a new order (a sort) only move: the
        rows are not built again, which keeps a sort of 10,000 tags within a frame or two.

        Other rows replace the table: the first :data:`ADD_CHUNK` at once, the rest in chunks
        of that many, a step of the event loop each (adding 10,000 rows at once froze the
        screen for a fifth of a second and more); :attr:`adding` until they are all in."""
        current = self._cursor_tag or self.current_tag
        shown = self._shown  # every row in the table, by tag (str keys: C-speed lookups)
        same_tags = len(rows) == len(shown) == self.row_count and all(
            row.tag in shown for row in rows
        )
        self._final_order = None
        if self._to_add and self._adding_the_same_tags(rows):
            self._continue_adding(rows, marked)
            return
        if same_tags and not self._to_add:
            changed = [
                row
                for row in rows
                if shown[row.tag][0] is not row or shown[row.tag][1] != (row.tag in marked)
            ]
            if len(changed) <= REWRITE_AT:
                for row in changed:
                    self._refresh_cells(row, marked=row.tag in marked)
            self._reorder(rows)
            self._restore_cursor(current)
            if len(changed) > REWRITE_AT:
                # In place, the rows in view first, a chunk per frame: 10,000 rows at once
                # held the screen for most of a second.
                in_view = set(self.visible_tags(margin=ADD_CHUNK))
                self._rewrite = {row.tag: row for row in changed if row.tag in in_view}
                self._rewrite.update((row.tag, row) for row in changed if row.tag not in in_view)
                self._rewrite_marked = marked
                self._rewrite_chunk()
            return
        self.clear()
        self._shown = {}
        self._rewrite = {}
        self._to_add = deque(rows)
        self._later = {}
        self._marked = marked
        self._cursor_tag = current
        self._add_chunk()

    def _adding_the_same_tags(self, rows: Sequence[TagRow]) -> bool:
        """``rows`` are the tags of the rows added so far and of those still to add."""
        shown, to_add = self._shown, self._to_add
        if len(rows) != len(shown) + len(to_add):
            return False
        pending = {row.tag for row in to_add}
        return all(row.tag in shown or row.tag in pending for row in rows)

    def _continue_adding(self, rows: Sequence[TagRow], marked: Collection[str]) -> None:
        """The tags being added, newer or in another order: the rows not added yet are added
        as they are now, those added are rewritten in place where they changed, and the table
        is put in the order of ``rows`` once every row is in. (Cleared and every row added
        again, 10,000 tags took twice as long to list when their report came in meanwhile.)"""
        shown = self._shown
        self._to_add = deque(row for row in rows if row.tag not in shown)
        self._later = {}
        self._marked = marked
        self._rewrite = {
            row.tag: row
            for row in rows
            if (was := shown.get(row.tag)) is not None
            and (was[0] is not row or was[1] != (row.tag in marked))
        }
        self._rewrite_marked = marked
        self._final_order = rows
        self._step_on()

    def _reorder(self, rows: Sequence[TagRow]) -> None:
        """The table's rows (the same tags) in the order of ``rows``: what ``sort`` does,
        without a key function called per row and the rows' order looked up again."""
        if self._order is None:
            # Sorted by the tag cells as shown (escaped: see cells).
            position = {visible_markup(row.tag): index for index, row in enumerate(rows)}
            self.sort("tag", key=position.__getitem__)
            return
        row_of = self._row_of
        order = [row_of[row.tag] for row in rows]
        self._row_locations = TwoWayDict({row.key: index for index, row in enumerate(order)})
        self._order = order
        self._update_count += 1
        self.refresh()

    @property
    def ordered_rows(self) -> list[Row]:
        order = self._order
        if order is not None and len(order) == self.row_count:
            return order
        return super().ordered_rows

    @property
    def _y_offsets(self) -> list[tuple[RowKey, int]]:
        """DataTable's, from :attr:`_order` (every row is one line high)."""
        order = self._order
        if order is None or len(order) != self.row_count:
            return super()._y_offsets
        if self._offsets_of is not order:
            self._offsets = [(row.key, 0) for row in order]
            self._offsets_of = order
        return self._offsets

    def clear(self, columns: bool = False) -> TagTable:
        super().clear(columns)
        self._order, self._offsets, self._offsets_of, self._row_of = [], [], None, {}
        return self

    def add_row(self, *cells: str | Text, **options: Any) -> RowKey:
        self._order = None  # not kept here: DataTable works the order out
        return super().add_row(*cells, **options)

    def remove_row(self, row_key: RowKey | str) -> None:
        self._order = None
        self._row_of.pop(str(row_key.value if isinstance(row_key, RowKey) else row_key), None)
        super().remove_row(row_key)

    def sort(self, *columns: ColumnKey | str, **options: Any) -> TagTable:
        self._order = None
        return super().sort(*columns, **options)

    @property
    def adding(self) -> bool:
        """Rows of the last :meth:`show_rows` are still being added or rewritten (between
        frames)."""
        return bool(self._to_add or self._rewrite)

    def _rewrite_chunk(self) -> None:
        """Rewrite the next :data:`ADD_CHUNK` rows; the rest in later steps."""
        self._step()
        self._step_on()

    def _add_chunk(self) -> None:
        """Add the next :data:`ADD_CHUNK` rows; the rest in later steps."""
        self._step()
        self._restore_cursor(self._cursor_tag)
        self._step_on()

    def _step(self) -> None:
        """One chunk of work: the next rows to add, else the next rows to rewrite."""
        if self._to_add:
            self._append_chunk(self._to_add)
            if not self._to_add:
                self._later = {}
                if self._final_order is not None:
                    order, self._final_order = self._final_order, None
                    self._reorder(order)
            self._restore_cursor(self._cursor_tag)
        elif self._rewrite:
            pending = self._rewrite
            tags = list(itertools.islice(pending, ADD_CHUNK))
            self._rewrite_rows([pending.pop(tag) for tag in tags], self._rewrite_marked)

    def _step_on(self) -> None:
        """What is left to add or rewrite, a chunk per step of the event loop: not paced by
        frames (10,000 rows in forty frames took seconds on a loaded machine), and no step
        longer than a chunk's work."""
        if (self._to_add or self._rewrite) and self._stepping is None:
            self._stepping = self.run_worker(self._steps(), group="tag-table-steps")

    async def _steps(self) -> None:
        try:
            while self._to_add or self._rewrite:
                await asyncio.sleep(0)  # the loop's turn: keys, frames, the app's other tasks
                self._step()
        finally:
            self._stepping = None

    def _append_chunk(self, to_add: deque[TagRow]) -> None:
        chunk: list[tuple[str, tuple[str | Text, ...]]] = []
        for _ in range(min(ADD_CHUNK, len(to_add))):
            row = to_add.popleft()
            row, is_marked = self._later.pop(row.tag, (row, row.tag in self._marked))
            chunk.append((row.tag, self.cells(row, is_marked)))
            self._shown[row.tag] = (row, is_marked)
        self._append_rows(chunk)

    def _append_rows(self, rows: Sequence[tuple[str, tuple[str | Text, ...]]]) -> None:
        """What ``add_row`` does for each of ``rows`` (key, cells), done once for them all.

        ``add_row`` orders the columns and sets the cursor (a reactive, with its watchers)
        for every row: 0.2 ms a row, two seconds of a repository of 10,000 tags. Here the
        columns are ordered and the cursor set once; the rows go into DataTable's own
        structures as ``add_row`` puts them (its data, rows and locations; the new rows are
        measured when the table is next idle, as ``add_row``'s)."""
        if not rows:
            return
        was_empty = self.row_count == 0
        keys = [column.key for column in self.ordered_columns]
        locations, data, table_rows, new_rows = (
            self._row_locations,
            self._data,
            self.rows,
            self._new_rows,
        )
        index = self.row_count
        row_of = self._row_of
        added: list[Row] = []
        for tag, cells in rows:
            row_key = RowKey(tag)
            if row_key in locations:
                raise DuplicateKey(f"The row key {row_key!r} already exists.")
            locations[row_key] = index
            index += 1
            data[row_key] = dict(zip(keys, cells, strict=True))
            table_rows[row_key] = row_of[tag] = row = Row(row_key, 1)
            added.append(row)
            new_rows.add(row_key)
        if self._order is not None:
            self._order = self._order + added  # a new list: one handed out before stays
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        if was_empty and self.columns and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()  # as add_row: a row for the cursor now exists
        self._update_count += 1
        self.check_idle()

    def _rewrite_rows(self, rows: Sequence[TagRow], marked: Collection[str]) -> None:
        """New cells for many rows at once (a column added, every detail arrived): written
        in place, the columns widened, one repaint (``update_cell`` repaints per cell)."""
        columns = [self.columns[ColumnKey(key)] for key, _ in self._columns]
        data = self._data
        widened = False
        for row in rows:
            is_marked = row.tag in marked
            cells = data[RowKey(row.tag)]
            for column, value in zip(columns, self.cells(row, is_marked), strict=True):
                cells[column.key] = value
                width = value.cell_len if isinstance(value, Text) else cell_len(value)
                if width > column.content_width:
                    column.content_width = width
                    widened = True
            self._shown[row.tag] = (row, is_marked)
        self._written([row.tag for row in rows], widened=widened)

    def _written(self, tags: Collection[str], *, widened: bool) -> None:
        """Cells of the rows of ``tags`` were written in place: what was rendered of them goes.

        A column widened: every line is rendered again (:meth:`_forget_rendered`). Otherwise
        DataTable's render caches are emptied without its update count bumped (which would
        make it work every row's order out again, and repaint the whole view), and the view
        is repainted only when one of those rows is in it: rows read out of view (most of
        them, while 10,000 tags' details arrive) cost no frame."""
        if widened:
            self._require_update_dimensions = True
            self._forget_rendered()
            self.check_idle()
            return
        for cache in (
            self._row_render_cache,
            self._cell_render_cache,
            self._row_renderable_cache,
            self._line_cache,
        ):
            cache.clear()
        in_view = self._in_view()
        if any(tag in in_view for tag in tags):
            self.refresh()

    def _in_view(self) -> frozenset[str]:
        """The tags of the rows in view (remembered while the view and the order stay)."""
        key = (int(self.scroll_offset.y), self.size.height, self._update_count, id(self._order))
        if self._in_view_key != key:
            self._in_view_tags = frozenset(self.visible_tags())
            self._in_view_key = key
        return self._in_view_tags

    def _restore_cursor(self, tag: str | None) -> None:
        """The cursor back on ``tag`` once its row is in."""
        if tag is not None and tag in self._shown:
            index = self.get_row_index(tag)
            if index != self.cursor_row:
                self.move_cursor(row=index)
            self._cursor_tag = None

    def update_row(self, row: TagRow, *, marked: bool) -> None:
        if row.tag not in self.rows:
            if self._to_add:
                self._later[row.tag] = (row, marked)  # used when its row is added
            return
        self._refresh_cells(row, marked=marked)

    def _refresh_cells(self, row: TagRow, *, marked: bool) -> None:
        """New cell values, written in place (:meth:`_written`); a column only ever widens
        here. (DataTable's own width update measures the whole column for every narrower
        cell: quadratic over 10,000 rows.)"""
        self._rewrite.pop(row.tag, None)  # this is newer than what its rewrite would write
        shown = self._shown.get(row.tag)
        if shown is not None and shown[0] is row and shown[1] == marked:
            return
        self._shown[row.tag] = (row, marked)
        cells = self._data[RowKey(row.tag)]
        written = widened = False
        for (key, _), value in zip(self._columns, self.cells(row, marked), strict=True):
            column = self.columns[ColumnKey(key)]
            if cells.get(column.key) == value:
                continue
            cells[column.key] = value
            written = True
            width = value.cell_len if isinstance(value, Text) else cell_len(value)
            if width > column.content_width:
                column.content_width = width
                widened = True
        if written:
            self._written((row.tag,), widened=widened)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """Widen the columns for new rows by their cells' length, then let DataTable size the
        table. Every cell here is one line (a ``str`` or a one-line ``Text``), so its length is
        its width; DataTable's own measure renders each cell through Rich: 10,000 new rows
        (a repository listed, a filter cleared) froze the screen for most of a second."""
        columns = [self.columns[ColumnKey(key)] for key, _ in self._columns]
        widest = [column.content_width for column in columns]
        get = self._data.get
        for row_key in new_rows:
            data = get(row_key)
            if data is None:
                continue  # removed before the table was idle
            # A row's cells are in column order (added so, columns only ever appended): no
            # lookup by column key, whose hash is a Python call (10,000 rows: 70,000 of them).
            for index, value in enumerate(data.values()):
                width = value.cell_len if isinstance(value, Text) else cell_len(str(value))
                if width > widest[index]:
                    widest[index] = width
        widened = False
        for column, width in zip(columns, widest, strict=True):
            if width > column.content_width:
                column.content_width = width
                widened = True
        if widened:
            self._forget_rendered()  # see Table
        super()._update_dimensions(())

    def _update_column_widths(self, updated_cells: Iterable[CellKey]) -> None:
        """Widen the columns to the updated cells (see :meth:`_refresh_cells`), never narrow.

        DataTable's own update measures the whole column when an updated cell is narrower
        than the column, as when two cells widened it in one batch and the wider one came
        first: a frame of 10,000 measures."""
        widened = False
        for row_key, column_key in updated_cells:
            column = self.columns.get(column_key)
            data = self._data.get(row_key)
            if column is None or data is None:
                continue
            value = data.get(column_key, "")
            width = value.cell_len if isinstance(value, Text) else cell_len(str(value))
            if width > column.content_width:
                column.content_width = width
                widened = True
        if widened:
            self._forget_rendered()
        self._require_update_dimensions = True

    def visible_tags(self, margin: int = 0) -> list[str]:
        """The tags of the rows in view (and ``margin`` rows below), top to bottom."""
        first = max(0, int(self.scroll_offset.y))
        last = min(self.row_count, first + self.size.height + margin)
        return [
            str(self.coordinate_to_cell_key(Coordinate(index, 0)).row_key.value)
            for index in range(first, last)
        ]

    @property
    def current_tag(self) -> str | None:
        if self.row_count == 0:
            return None
        if not self.is_valid_coordinate(self.cursor_coordinate):
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    def cells(self, row: TagRow, marked: bool) -> tuple[str | Text, ...]:
        """The row's cells, one per column shown; the registry's text escaped (a tag or an
        error may hold markup or control characters)."""
        tag = visible_markup(row.tag)
        mark = (
            Text("●", style="bold red")
            if marked
            else IMMUTABLE_MARK
            if row.immutable is not None
            else Text(" ")
        )
        # Compact dates and platforms: every column stays readable in 80 columns.
        pushed: tuple[str | Text, ...] = tuple(
            _when(getattr(row, key)) for key, _ in self._columns[len(COLUMNS) :]
        )
        if row.error:
            return (mark, tag, Text(visible(row.error), style="red"), "", "", "", *pushed)
        if not row.loaded:
            return (mark, tag, PENDING, PENDING, PENDING, PENDING, *pushed)
        return (
            mark,
            tag,
            short_digest(row.digest),
            human_size(row.size) if row.size is not None else "",
            _when(row.created),
            visible_markup(platforms_cell(row.platforms)),
            *pushed,
        )


def _when(value: datetime | None) -> str:
    return compact_time(value) if value is not None else ""
