"""The table of tags of one repository: marks, digest, size, created, platforms."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from rich.text import Text
from textual.widgets import DataTable

from tui.logic.fmt import format_created, human_size, short_digest
from tui.logic.tags import TagRow

COLUMNS = (
    ("mark", " "),
    ("tag", "Tag"),
    ("digest", "Digest"),
    ("size", "Size"),
    ("created", "Created"),
    ("platforms", "Platforms"),
)


class TagTable(DataTable[str | Text]):
    """Row keys are tag names. The screen decides order and filter; this only renders rows."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show_rows(self, rows: Sequence[TagRow], marked: Collection[str]) -> None:
        current = self.current_tag
        self.clear()
        for row in rows:
            self.add_row(*self._cells(row, row.tag in marked), key=row.tag)
        if current is not None and current in self.rows:
            self.move_cursor(row=self.get_row_index(current))

    def update_row(self, row: TagRow, *, marked: bool) -> None:
        if row.tag not in self.rows:
            return
        for (key, _), value in zip(COLUMNS, self._cells(row, marked), strict=True):
            self.update_cell(row.tag, key, value, update_width=True)

    @property
    def current_tag(self) -> str | None:
        if self.row_count == 0:
            return None
        if not self.is_valid_coordinate(self.cursor_coordinate):
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    @staticmethod
    def _cells(row: TagRow, marked: bool) -> tuple[str | Text, ...]:
        mark = Text("●", style="bold red") if marked else Text(" ")
        if row.error:
            return (mark, row.tag, Text(row.error, style="red"), "", "", "")
        if not row.loaded:
            dim = Text("…", style="dim")
            return (mark, row.tag, dim, dim, dim, dim)
        return (
            mark,
            row.tag,
            short_digest(row.digest),
            human_size(row.size) if row.size is not None else "",
            format_created(row.created),
            ", ".join(row.platforms),
        )
