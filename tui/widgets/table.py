"""DataTable that paints again when its columns widen."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

CellType = TypeVar("CellType")


class Table(DataTable[CellType]):
    """A DataTable whose lines painted before its columns widened are not kept.

    DataTable keys its render caches by an update count. Adding rows bumps it, but widening
    the columns for them (when the table is next idle) does not: the count is bumped again
    only by a Resize, which comes when the table's size changes, not its virtual size. A
    table as wide as its screen that was painted between the adding and the idle (a loaded
    machine) kept those lines, every cell cut to its label's width, until something else
    changed. Every table of the app is this one."""

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        before = [column.content_width for column in self.columns.values()]
        super()._update_dimensions(new_rows)
        if [column.content_width for column in self.columns.values()] != before:
            self._forget_rendered()

    def _forget_rendered(self) -> None:
        """Drop every line rendered so far (the caches are keyed by the update count)."""
        self._update_count += 1
        self.refresh()
