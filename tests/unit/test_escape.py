"""``tui.logic.escape``: registry text is shown, never obeyed, by the terminal.

The oracle is written from the definition with :mod:`unicodedata`, not with the module's
regular expression: a character must be escaped when its category is ``Cc`` (C0, DEL, C1) or
``Cs`` (a lone surrogate), or when it is a bidi override or isolate or a line or paragraph
separator; anything else passes unchanged.
"""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st
from rich.markup import render
from textual.content import Content

from tui.logic.escape import visible, visible_lines, visible_markup

BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
SEPARATORS = {"\u2028", "\u2029"}


def must_escape(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cs") or char in BIDI | SEPARATORS


def oracle(text: str) -> str:
    out = []
    for char in text:
        if not must_escape(char):
            out.append(char)
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join(out)


# Every code point, hostile ones weighted up: controls, C1, bidi, separators, surrogates.
ANY_CHAR = st.one_of(
    st.characters(codec=None),
    st.sampled_from(
        [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))] + sorted(BIDI | SEPARATORS)
    ),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
)
ANY_TEXT = st.text(ANY_CHAR)
PRINTABLE = st.text(st.characters(codec=None).filter(str.isprintable))


@given(ANY_TEXT)
def test_nothing_a_terminal_obeys_is_left(text: str) -> None:
    shown = visible(text)
    assert not any(must_escape(char) for char in shown)
    assert shown == oracle(text)
    shown.encode("utf-8")  # no lone surrogate: a UTF-8 terminal can be written to


@given(PRINTABLE)
def test_printable_text_is_unchanged(text: str) -> None:
    assert visible(text) == text


@given(ANY_TEXT)
def test_line_breaks_stay_in_multi_line_text_only(text: str) -> None:
    assert visible_lines(text) == "\n".join(oracle(line) for line in text.split("\n"))


MARKUP_TEXT = st.text(
    st.one_of(st.sampled_from(["[", "]", "/", "@", "#", "b", "=", "\\", "\x1b", " "]), ANY_CHAR)
)


@given(MARKUP_TEXT)
def test_markup_shows_the_escaped_text_as_it_is(text: str) -> None:
    """Rich's parser (DataTable cells) shows exactly the escaped text, with no style; Textual's
    own (``Static.update``) too, but for a backslash before ``[`` that it shows doubled."""
    markup = visible_markup(text)
    rich_text = render(markup, emoji=False)
    assert rich_text.plain == oracle(text) and not rich_text.spans
    content = Content.from_markup(markup)
    assert not content.spans and not any(must_escape(char) for char in content.plain)
    if "\\" not in text:
        assert content.plain == oracle(text)


def test_a_tag_in_registry_text_is_no_markup() -> None:
    for hostile in ("[@click=app.quit]x[/]", "[/]", "[bold red]x", "RUN ls [/tmp] \\"):
        assert render(visible_markup(hostile)).plain == hostile
        assert Content.from_markup(visible_markup(hostile)).plain == hostile


def test_the_attacks_of_the_issue_are_shown() -> None:
    assert visible("a\x1b]52;c;ZXZpbA==\x07b") == "a\\x1b]52;c;ZXZpbA==\\x07b"
    assert visible("\x1b[2J\nX") == "\\x1b[2J\\nX"
    assert visible("\u202egnp.exe") == "\\u202egnp.exe"
    assert visible("\x9b31m") == "\\x9b31m"
