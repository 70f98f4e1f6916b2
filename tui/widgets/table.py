"""DataTable that paints again when its columns widen, and renders plain cells cheaply."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from rich.style import Style
from textual._types import SegmentLines
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from tui.logic.cells import plain_cell_segments

CellType = TypeVar("CellType")


class Table(DataTable[CellType]):
    """A DataTable whose lines painted before its columns widened are not kept, and whose
    one-line plain cells skip Rich's renderables.

    DataTable keys its render caches by an update count. Adding rows bumps it, but widening
    the columns for them (when the table is next idle) does not: the count is bumped again
    only by a Resize, which comes when the table's size changes, not its virtual size. A
    table as wide as its screen that was painted between the adding and the idle (a loaded
    machine) kept those lines, every cell cut to its label's width, until something else
    changed. Every table of the app is this one.

    A cell of a one-line row that is plain text (:func:`tui.logic.cells.plain_cell_segments`)
    is rendered to its segments directly: the same segments, a hundredth of the time (Rich's
    way, a ``Padding`` in a ``Styled`` per cell and every cell of the row formatted again
    for each, costs half a millisecond a cell: a tenth of a second a frame of 40 rows)."""

    _row_styles: dict[tuple[str, object], Style]
    """Component styles of rows by name and pseudo-classes (see :meth:`_get_row_style`)."""

    def _get_row_style(self, row_index: int, base_style: Style) -> Style:
        """DataTable's, remembered: it works the row's component style out again for every
        line painted (the ancestors' colours walked each time, a third of a line's cost)."""
        if row_index == -1:
            name = "datatable--header"
        elif row_index < self.fixed_rows:
            name = "datatable--fixed"
        elif self.zebra_stripes:
            name = "datatable--odd-row" if row_index % 2 else "datatable--even-row"
        else:
            return base_style
        try:
            cache = self._row_styles
        except AttributeError:
            cache = self._row_styles = {}
        key = (name, self._pseudo_class_state)
        style = cache.get(key)
        if style is None:
            style = cache[key] = self.get_component_styles(name).rich_style
        return style

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._row_styles = {}  # a theme, a stylesheet: the components' styles change

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        before = [column.content_width for column in self.columns.values()]
        super()._update_dimensions(new_rows)
        if [column.content_width for column in self.columns.values()] != before:
            self._forget_rendered()

    def _forget_rendered(self) -> None:
        """Drop every line rendered so far (the caches are keyed by the update count)."""
        self._update_count += 1
        self.refresh()

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> SegmentLines:
        """DataTable's, but a plain one-line body cell becomes its segments directly (cached
        under DataTable's own key: what invalidates its renders invalidates these)."""
        if row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cache_key = (
            row_key,
            column_key,
            base_style,
            cursor,
            hover,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
        )
        cache = self._cell_render_cache
        lines = cache.get(cache_key)
        if lines is not None:
            return lines
        row = self.rows.get(row_key)
        data = self._data.get(row_key)
        if row is None or data is None or row.height != 1 or column_key not in data:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            row_index < self.fixed_rows or column_index < self.fixed_columns,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        pre = base_style + Style.from_meta({"row": row_index, "column": column_index})
        segments = plain_cell_segments(
            data[column_key],
            width,
            self.cell_padding,
            pre + component_style,
            post_style,
            self.app.console,
        )
        if segments is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        lines = [segments]
        cache[cache_key] = lines
        return lines
