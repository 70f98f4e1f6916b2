"""plain_cell_segments gives exactly the segments DataTable's Rich path gives a one-line cell."""

from __future__ import annotations

import pytest
from rich.console import Console
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.renderables.styled import Styled
from textual.widgets._data_table import default_cell_formatter

from tui.logic.cells import plain_cell_segments

VALUES: list[object] = [
    "abc",
    "",
    " ",
    "sha256:6c6c6c6c6c6c",
    "2024-02-13 10:00",
    "1.2 KiB",
    "日本語",
    "a\\[b]",  # escaped markup: Rich's path
    "[b]bold[/b]",  # markup: Rich's path
    "tab\there",  # Rich's path
    "two\nlines",  # Rich's path
    "abcdefghijklmnopqrstuvwxyz",  # wider than the narrow cells: Rich's path there
    Text("●", style="bold red"),
    Text("⊘", style=Style(bold=True, color="cyan")),
    Text(" "),
    Text("…", style="dim"),
    Text("manifest unknown", style="red"),
    Text(""),
    Text("", style="red"),
    Text("x", style="none"),
    Text.assemble(("a", "red"), "b"),  # spans: Rich's path
    Text("right", justify="right"),  # Rich's path
]
LEFT_TO_RICH = [
    "a\\[b]",
    "[b]bold[/b]",
    "tab\there",
    "two\nlines",
    Text(""),
    Text("", style="red"),
    Text("x", style="none"),
    Text.assemble(("a", "red"), "b"),
    Text("right", justify="right"),
]
STYLES = [
    (Style(bgcolor="grey11") + Style.from_meta({"row": 3, "column": 1}), Style.null()),
    (Style(color="white", bgcolor="blue", bold=True), Style.from_color(bgcolor=None)),
    (Style.null(), Style.null()),
    (Style(bgcolor="red"), Style(color="yellow")),
    (Style.null(), Style(bgcolor="green")),
]


def rich_cell(
    value: object, width: int, padding: int, pre: Style, post: Style, console: Console
) -> list[Segment]:
    """What DataTable renders for a cell of a one-line row (its ``_render_cell``)."""
    cell = default_cell_formatter(value, wrap=False, height=1) or Text()
    options = console.options.update_dimensions(width, 1).update(no_wrap=True)
    return console.render_lines(Styled(Padding(cell, (0, padding)), pre, post), options)[0]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_plain_cells_render_as_rich_renders_them(value: object) -> None:
    console = Console(width=200)
    fast_paths = 0  # widths where the value fits
    for width in (4, 9, 12, 30):
        for padding in (0, 1, 2):
            for pre, post in STYLES:
                fast = plain_cell_segments(value, width, padding, pre, post, console)
                if fast is None:
                    continue
                fast_paths += 1
                assert fast == rich_cell(value, width, padding, pre, post, console), (
                    width,
                    padding,
                    pre,
                    post,
                )
    assert fast_paths or value in LEFT_TO_RICH, "a plain one-line cell that fits is drawn directly"


def test_what_is_not_plain_one_line_text_is_left_to_rich() -> None:
    console = Console(width=200)
    style = Style(bgcolor="red")
    for value in ("[b]x[/b]", "a\tb", "a\nb", "toolongforit", Text.assemble(("a", "red"), "b")):
        assert plain_cell_segments(value, 8, 1, style, Style.null(), console) is None, value
    assert plain_cell_segments(42, 8, 1, style, Style.null(), console) is None
