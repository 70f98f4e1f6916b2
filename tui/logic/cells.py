"""One-line table cells rendered straight to segments.

A DataTable renders each cell through Rich: the value formatted (markup parsed), wrapped in a
``Padding`` and a ``Styled``, then ``render_lines``: about half a millisecond a cell, so a frame
of a 40-row table that changed (details arriving, a sort) costs a tenth of a second. Almost
every cell of the app is one line of plain text (a ``str`` without markup, or a ``Text`` of
one style): for those, :func:`plain_cell_segments` builds the very segments Rich would
(a test compares them), in a few microseconds. Anything else (markup, several spans, a line
break, a tab, a text wider than its cell) answers ``None``: rendered by Rich as before.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

__all__ = ["plain_cell_segments"]


def _apply(style: Style | None, pre: Style, post: Style) -> Style | None:
    """What ``Segment.apply_style(segments, pre, post)`` makes of a segment's ``style``."""
    result = pre + style if pre else style
    if post:
        result = result + post if result else post
    return result


def plain_cell_segments(
    value: object, width: int, padding: int, pre: Style, post: Style, console: Console
) -> list[Segment] | None:
    """The segments of ``value`` in a one-line cell ``width`` cells wide with ``padding`` cells
    each side, styled ``pre`` under and ``post`` over it: what
    ``render_lines(Styled(Padding(cell, (0, padding)), pre, post))[0]`` gives, or ``None`` when
    the value is not one line of plain text that fits (then Rich must render it)."""
    if isinstance(value, str):
        if "[" in value or not value.isprintable():
            return None  # markup (or what Text would strip): Rich's own path
        plain = value
        text_style: Style | None = None
    elif isinstance(value, Text):
        plain = value.plain
        if value.spans or value.justify not in (None, "default") or not plain.isprintable():
            return None
        if not plain:
            return None  # an empty text with a style: rare, left to Rich
        style = value.style
        text_style = console.get_style(style) if style else None
        if text_style is not None and text_style._null:  # Text("x", style="none")
            return None
    else:
        return None
    inner = width - 2 * padding
    length = cell_len(plain)
    if inner < 1 or length > inner:
        return None  # cropped (or no room at all): Rich's own path
    pad_style = _apply(Style.null(), pre, post)
    segments: list[Segment] = []
    if padding:
        segments.append(Segment(" " * padding, pad_style))
    segments.append(Segment(plain, _apply(text_style, pre, post)))
    if length < inner:
        segments.append(Segment(" " * (inner - length), pad_style))
    if padding:
        segments.append(Segment(" " * padding, pad_style))
    return segments
