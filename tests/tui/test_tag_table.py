"""TagTable on its own: thousands of rows added a chunk per frame, updates to rows not added yet
kept, marks and the cursor kept, a sort of the same rows only moving them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from rich.console import Console, ConsoleOptions
from rich.segment import Segment
from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.widgets import DataTable
from textual.widgets.data_table import CellKey, ColumnKey, RowKey

from tests.tui.conftest import wait_for
from tui.logic.fmt import short_digest
from tui.logic.tags import TagRow
from tui.widgets.table import Table
from tui.widgets.tag_table import ADD_CHUNK, COLUMNS, TagTable

COUNT = ADD_CHUNK * 2 + 500


class BothTables(App[None]):
    """A TagTable (``#fast``) beside a plain Table (``#plain``): what the TagTable builds
    itself is compared with what DataTable's own methods build; ``highlighted`` records the
    row-highlighted messages of both, as (table id, row key)."""

    CSS = "DataTable { height: 1fr; }"

    def __init__(self) -> None:
        super().__init__()
        self.highlighted: list[tuple[str | None, str]] = []

    def compose(self) -> ComposeResult:
        yield TagTable(id="fast")
        yield Table(id="plain", cursor_type="row", zebra_stripes=True)

    def on_data_table_row_highlighted(self, event: Table.RowHighlighted) -> None:
        self.highlighted.append((event.data_table.id, str(event.row_key.value)))


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TagTable(id="tags")


class FullTableApp(TableApp):
    CSS = "TagTable { height: 1fr; width: 1fr; }"


def order(table: TagTable) -> list[str]:
    return [str(row.key.value) for row in table.ordered_rows]


async def test_thousands_of_rows_arrive_in_chunks_with_their_latest_details() -> None:
    rows = [TagRow(f"t-{n:05d}") for n in range(COUNT)]
    late = rows[-1].with_details(
        digest="sha256:" + "ab" * 32,
        size=1234,
        created=datetime(2024, 5, 1, tzinfo=UTC),
        platforms=("linux/arm64",),
    )
    marked = {rows[0].tag, late.tag}
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(TagTable)
        table.show_rows(rows, marked)
        assert table.row_count == ADD_CHUNK and table.adding  # the rest in later loop steps
        table.update_row(late, marked=True)  # its row is not in the table yet
        await wait_for(pilot, lambda: not table.adding)
        assert order(table) == [row.tag for row in rows]
        cells = [str(cell) for cell in table.get_row(late.tag)]
        assert cells[:4] == ["●", late.tag, short_digest(late.digest), "1.2 KiB"]
        assert cells[5] == "linux/arm64"
        assert str(table.get_row(rows[0].tag)[0]) == "●"
        assert str(table.get_row(rows[1].tag)[0]) == " "

        # The same rows in another order only move; the cursor stays on its tag.
        table.move_cursor(row=table.get_row_index("t-00010"))
        table.show_rows(list(reversed(rows)), marked)
        assert not table.adding
        assert order(table) == [row.tag for row in reversed(rows)]
        assert table.current_tag == "t-00010"

        # Fewer rows (a filter) replace the table; the cursor goes back to its tag once added.
        table.show_rows(rows[5:], marked)
        await wait_for(pilot, lambda: not table.adding)
        assert table.row_count == COUNT - 5
        assert table.current_tag == "t-00010"
        visible = table.visible_tags()
        assert visible and all(tag in order(table) for tag in visible)


async def test_rows_painted_before_the_table_sizes_its_columns_are_painted_again_after() -> None:
    """On a loaded machine the screen can paint new rows before the table is idle and widens
    its columns for them; the lines painted at the labels' widths must not outlive that."""
    row = TagRow("3.12-slim").with_details(
        digest="sha256:" + "6c" * 32,
        size=4_800_000,
        created=datetime(2024, 2, 13, tzinfo=UTC),
        platforms=("linux/amd64", "linux/arm64"),
    )
    app = FullTableApp()  # as on the Tags screen: new rows do not resize the table
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(TagTable)
        await pilot.pause()
        table.show_rows([row], ())
        # A paint now, before the table's idle: every column still as wide as its label.
        early = table.render_line(1).text
        assert short_digest(row.digest) not in early and "2: amd64, arm64" not in early
        await pilot.pause()
        assert table.columns[ColumnKey("digest")].content_width == len(short_digest(row.digest))
        line = table.render_line(1).text
        assert short_digest(row.digest) in line and "2: amd64, arm64" in line, line


async def test_every_table_of_the_app_paints_again_when_its_columns_widen() -> None:
    class PlainApp(App[None]):
        CSS = "Table { height: 1fr; width: 1fr; }"

        def compose(self) -> ComposeResult:
            yield Table(id="plain")

    app = PlainApp()
    async with app.run_test(size=(80, 10)) as pilot:
        table: Table[str] = app.query_one(Table)
        table.add_column("Path")
        table.add_column("Size")
        await pilot.pause()
        table.add_row("usr/lib/x86_64-linux-gnu/libc.so.6", "2.1 MiB")
        early = table.render_line(1).text  # painted before the table is idle
        assert "libc.so.6" not in early
        await pilot.pause()
        line = table.render_line(1).text
        assert "usr/lib/x86_64-linux-gnu/libc.so.6" in line and "2.1 MiB" in line, line


def _detailed(count: int) -> list[TagRow]:
    return [
        TagRow(f"v{n}").with_details(
            digest="sha256:" + hashlib.sha256(str(n).encode()).hexdigest(),
            size=1000 * n,
            created=datetime(2024, 1, 1 + n % 28, tzinfo=UTC),
            platforms=("linux/amd64",),
        )
        for n in range(count)
    ]


async def test_rows_added_at_once_are_those_add_row_would_add() -> None:
    """TagTable adds its rows into DataTable's structures itself (add_row costs 0.2 ms a
    row): the table must be the one add_row builds: cells, order, widths, the cursor and the
    message that the cursor's row is highlighted (the screens listen to it)."""
    rows = _detailed(30)
    app = BothTables()
    highlighted = app.highlighted
    async with app.run_test(size=(120, 40)) as pilot:
        fast = app.query_one("#fast", TagTable)
        plain: Table[object] = app.query_one("#plain", Table)
        for key, label in COLUMNS:
            plain.add_column(label, key=key)
        await pilot.pause()
        fast.show_rows(rows, {"v3"})
        for row in rows:
            plain.add_row(*fast.cells(row, row.tag == "v3"), key=row.tag)
        await pilot.pause()
        assert fast.row_count == plain.row_count == len(rows)
        assert order(fast) == [str(r.key.value) for r in plain.ordered_rows]
        for row in rows:
            assert fast.get_row(row.tag) == plain.get_row(row.tag)
        assert fast.cursor_coordinate == plain.cursor_coordinate
        assert fast.current_tag == "v0"
        assert [c.content_width for c in fast.columns.values()] == [
            c.content_width for c in plain.columns.values()
        ]
        assert sorted(highlighted) == [("fast", "v0"), ("plain", "v0")]
        assert fast.render_line(1).text == plain.render_line(1).text


async def test_a_column_added_to_many_rows_rewrites_them_in_place() -> None:
    rows = _detailed(ADD_CHUNK)
    app = FullTableApp()
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(TagTable)
        table.show_rows([TagRow(row.tag) for row in rows], ())
        await pilot.pause()
        cleared: list[bool] = []
        original = table.clear

        def counting_clear(columns: bool = False) -> TagTable:
            cleared.append(columns)
            return original(columns)

        table.clear = counting_clear  # type: ignore[method-assign]
        table.show_pushed()
        pushed = [row.with_details(pushed=datetime(2024, 3, 1, tzinfo=UTC)) for row in rows]
        table.show_rows(pushed, ())
        assert not table.adding and cleared == []  # no row was added again
        await pilot.pause()
        cells = [str(cell) for cell in table.get_row("v7")]
        assert cells[2] == short_digest(rows[7].digest) and cells[-1] == "2024-03-01", cells
        line = table.render_line(1).text
        assert short_digest(rows[0].digest) in line and "2024-03-01" in line, line


async def test_many_rows_rewritten_a_chunk_per_step_in_view_first_and_newer_kept() -> None:
    rows = _detailed(3000)
    app = FullTableApp()
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(TagTable)
        table.show_rows([TagRow(row.tag) for row in rows], ())
        await wait_for(pilot, lambda: not table.adding)
        table.move_cursor(row=2500)  # the view is near the end
        await pilot.pause()
        table.show_pushed()
        pushed = [row.with_details(pushed=datetime(2024, 3, 1, tzinfo=UTC)) for row in rows]
        table.show_rows(pushed, ())
        assert table.adding  # the rest comes in later steps of the event loop
        in_view = table.visible_tags()
        assert in_view and all(str(table.get_row(tag)[-1]) == "2024-03-01" for tag in in_view)
        # The first chunk: the rows in view and below, then from the top: not v1500.
        assert str(table.get_row("v1500")[-1]) == ""
        newer = pushed[1600].with_details(pushed=datetime(2024, 4, 2, tzinfo=UTC))
        table.update_row(newer, marked=False)  # arrives before its row's rewrite
        await wait_for(pilot, lambda: not table.adding)
        assert str(table.get_row("v1600")[-1]) == "2024-04-02"  # not overwritten by the rewrite
        others = [row for row in pushed if row.tag != "v1600"]
        assert all(str(table.get_row(row.tag)[-1]) == "2024-03-01" for row in others)


async def test_cells_rendered_directly_are_the_segments_datatable_renders() -> None:
    """Table renders plain one-line cells to segments itself (tui.logic.cells): every line of
    a tags table (marks, pending, errors, details, the cursor row, zebra stripes, markup in a
    tag) must be DataTable's own, segment for segment, style for style."""
    rows = [
        *_detailed(12),
        TagRow("pending"),
        TagRow("gone").with_details(error="manifest unknown"),
        TagRow("[b]not bold[/b]").with_details(digest="sha256:" + "0f" * 32, size=5),
        TagRow("immutable", immutable="regtui.immutable[0]"),
    ]

    class Both(App[None]):
        CSS = "DataTable { height: 1fr; }"

        def compose(self) -> ComposeResult:
            yield Table(id="ours", cursor_type="row", zebra_stripes=True)
            yield DataTable(id="theirs", cursor_type="row", zebra_stripes=True)

    app = Both()
    async with app.run_test(size=(120, 50)) as pilot:
        ours: Table[object] = app.query_one("#ours", Table)
        theirs: DataTable[object] = app.query_one("#theirs", DataTable)
        maker = TagTable()  # only its cells
        rendered: list[int] = []
        original = Text.__rich_console__

        for table in (ours, theirs):
            for key, label in COLUMNS:
                table.add_column(label, key=key)
            for row in rows:
                table.add_row(*maker.cells(row, row.tag in {"v3", "gone"}), key=row.tag)
            table.move_cursor(row=4)
        app.set_focus(None)  # both alike (a focused table's header is another colour)
        await pilot.pause()

        def counting(self: Text, console: Console, options: ConsoleOptions) -> Iterable[Segment]:
            rendered.append(1)
            return original(self, console, options)

        def lines(table: DataTable[object]) -> list[list[Segment]]:
            return [list(table.render_line(y)) for y in range(len(rows) + 1)]

        Text.__rich_console__ = counting  # type: ignore[method-assign]
        try:
            assert lines(ours) == lines(theirs)
            ours.focus()  # the cursor's and the header's colours change with the focus
            await pilot.pause()
            focused = lines(ours)
            theirs.focus()
            await pilot.pause()
            assert focused == lines(theirs)
        finally:
            Text.__rich_console__ = original  # type: ignore[method-assign]
        # Rich rendered the headers, the markup, not the plain cells: DataTable renders every
        # cell through Rich (3 times: 1 header + 16 rows, 6 cells each).
        assert len(rendered) < 3 * (len(rows) + 1) * len(COLUMNS) // 2, len(rendered)


def _datatable_order(table: TagTable) -> tuple[list[str], list[tuple[str, int]]]:
    """The order and line offsets as DataTable itself works them out (from its locations)."""
    rows = DataTable.ordered_rows.fget(table)  # type: ignore[attr-defined]
    offsets = DataTable._y_offsets.fget(table)  # type: ignore[attr-defined]
    return [str(row.key.value) for row in rows], [(str(key.value), y) for key, y in offsets]


async def test_the_order_kept_by_the_table_is_the_one_datatable_works_out() -> None:
    rows = _detailed(ADD_CHUNK + 300)
    app = FullTableApp()
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(TagTable)

        def check() -> None:
            kept = [str(row.key.value) for row in table.ordered_rows]
            offsets = [(str(key.value), y) for key, y in table._y_offsets]
            assert (kept, offsets) == _datatable_order(table)
            assert [table.get_row_index(tag) for tag in kept] == list(range(len(kept)))

        table.show_rows([TagRow(row.tag) for row in rows], ())
        check()  # the first chunk
        await wait_for(pilot, lambda: not table.adding)
        check()
        table.show_rows(rows, ())  # every row rewritten in place
        await wait_for(pilot, lambda: not table.adding)
        check()
        table.show_rows(sorted(rows, key=lambda row: row.size or 0, reverse=True), ())
        check()
        assert order(table)[0] == rows[-1].tag
        table.show_rows(rows[::3], ())  # a filter: fewer rows
        await wait_for(pilot, lambda: not table.adding)
        check()
        table.add_row(*table.cells(TagRow("extra"), False), key="extra")  # DataTable's own
        check()
        table.show_rows(rows[::3], ())
        await wait_for(pilot, lambda: not table.adding)
        check()
        assert order(table) == [row.tag for row in rows[::3]]


async def test_a_frame_after_a_detail_arrives_costs_the_rows_in_view_not_every_row() -> None:
    """Writing a row's new details must not make the next frame look up every row of the
    table again (DataTable's order is keyed by its update count, which each write bumps):
    with 10,000 tags that was tens of milliseconds a frame, ten frames a second."""
    rows = _detailed(ADD_CHUNK * 3)
    app = FullTableApp()
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(TagTable)
        table.show_rows([TagRow(row.tag) for row in rows], ())
        await wait_for(pilot, lambda: not table.adding)
        await pilot.pause()
        locations = table._row_locations
        get_key = locations.get_key
        lookups: list[int] = []

        def counting(index: int) -> RowKey | None:
            lookups.append(index)
            return get_key(index)

        locations.get_key = counting  # type: ignore[method-assign,assignment]
        for row in rows[:5]:
            table.update_row(row, marked=False)
            lines = [table.render_line(y).text for y in range(table.size.height)]
            assert any(short_digest(row.digest) in line for line in lines)
        # A line of the view looks its row up a few times (DataTable's: every row, each frame).
        assert len(lookups) < len(rows), len(lookups)


async def test_rows_read_out_of_view_cost_no_repaint_and_show_when_scrolled_to() -> None:
    """While 10,000 tags' details arrive, most rows written are out of view: writing them
    must not repaint the view (each repaint renders every line in it again), and they must
    show their new cells once scrolled to (nothing rendered before is kept)."""
    rows = _detailed(1000)
    app = FullTableApp()
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(TagTable)
        table.show_rows([TagRow(row.tag) for row in rows], ())
        await wait_for(pilot, lambda: not table.adding)
        table.move_cursor(row=505)  # rows near 505 rendered (pending)
        await pilot.pause()
        assert "v505" in table.visible_tags()
        table.move_cursor(row=0)
        await pilot.pause()
        assert "v505" not in table.visible_tags()
        table.update_row(rows[-1], marked=False)  # the columns widen to the details (a repaint)
        await pilot.pause()
        refreshes: list[int] = []
        refresh = table.refresh

        def counting(*regions: Region, **options: bool) -> TagTable:
            refreshes.append(len(regions))
            return refresh(*regions, **options)

        table.refresh = counting  # type: ignore[method-assign]
        for row in rows[500:510]:
            table.update_row(row, marked=False)  # out of view, no column widened by it
        rows_out = len(refreshes)
        table.update_row(rows[1], marked=False)  # in view
        assert rows_out == 0 and len(refreshes) == 1, refreshes
        await pilot.pause()
        line = next(text for y in range(20) if "v1 " in (text := table.render_line(y).text))
        assert short_digest(rows[1].digest) in line, line
        table.move_cursor(row=505)
        await pilot.pause()
        lines = [table.render_line(y).text for y in range(20)]
        assert any(short_digest(rows[505].digest) in line for line in lines), lines


async def test_a_column_added_is_the_one_add_column_adds() -> None:
    """The Pushed column goes in without DataTable's per-row marks (a third of a second over
    10,000 rows): the table must be the one ``add_column(default="")`` makes."""
    rows = _detailed(60)  # (DataTable's own measures the column again per row: quadratic)

    app = BothTables()
    async with app.run_test(size=(120, 40)) as pilot:
        fast = app.query_one("#fast", TagTable)
        plain: Table[object] = app.query_one("#plain", Table)
        for key, label in COLUMNS:
            plain.add_column(label, key=key)
        await pilot.pause()
        fast.show_rows(rows, ())
        for row in rows:
            plain.add_row(*fast.cells(row, False), key=row.tag)
        await wait_for(pilot, lambda: not fast.adding)
        updated: list[CellKey] = []
        widths = fast._update_column_widths

        def measuring(cells: Iterable[CellKey]) -> None:
            updated.extend(cells)
            widths(cells)

        fast._update_column_widths = measuring  # type: ignore[method-assign,assignment]
        fast.show_pushed()
        plain.add_column("Pushed", key="pushed", default="")
        await pilot.pause()
        assert list(fast.columns) == list(plain.columns)
        for mine, theirs in zip(fast.columns.values(), plain.columns.values(), strict=True):
            assert (mine.label, mine.width, mine.content_width, mine.auto_width) == (
                theirs.label,
                theirs.width,
                theirs.content_width,
                theirs.auto_width,
            )
        for row in rows:
            assert fast.get_row(row.tag) == plain.get_row(row.tag)
        assert fast.render_line(1).text == plain.render_line(1).text
        assert updated == []  # no cell measured again for an empty column


async def test_the_same_tags_shown_while_they_are_added_are_not_added_again() -> None:
    """The report of 10,000 tags can come in while their rows are still being added: their
    details (and a new order) go into the rows added so far in place and into the rows still
    to add, and no row is added twice (the table cleared and filled again took twice as long
    to list them)."""
    detailed = _detailed(ADD_CHUNK * 4)
    plain = [TagRow(row.tag) for row in detailed]
    detailed.reverse()
    app = FullTableApp()
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(TagTable)
        appended: list[int] = []
        append = table._append_rows

        def counted(rows: Sequence[tuple[str, tuple[str | Text, ...]]]) -> None:
            appended.append(len(rows))
            append(rows)

        table._append_rows = counted  # type: ignore[method-assign]
        table.show_rows(plain, ())
        assert table.adding and table.row_count == ADD_CHUNK
        table.show_rows(detailed, {detailed[0].tag})
        await wait_for(pilot, lambda: not table.adding)
        assert sum(appended) == len(plain), appended
        assert order(table) == [row.tag for row in detailed]
        for row in (detailed[0], detailed[-1], detailed[len(detailed) // 2]):
            cells = [str(cell) for cell in table.get_row(row.tag)]
            assert cells[1:3] == [row.tag, short_digest(row.digest)], cells
        assert str(table.get_row(detailed[0].tag)[0]) == "●"
        assert str(table.get_row(detailed[1].tag)[0]) == " "
