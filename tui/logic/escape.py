"""Text from a registry or an image, made safe to show on a terminal.

A hostile image can put ESC sequences in a label, an env value, a history line or a file name:
``\\x1b]52;c;…\\x07`` writes the terminal's clipboard, ``\\x1b[2J`` clears the screen, a newline
forges an output line, U+202E reverses what follows. A registry can send such text as a tag or
a repository name too (registries check names against the spec's grammar, a hostile one need
not). :func:`visible` shows every such character as an escape instead (``\\x1b``, ``\\n``,
``\\u202e``); printable text, backslashes included, is unchanged. Shown: the C0 controls, DEL,
the C1 controls (0x80-0x9f), the bidirectional overrides and isolates (U+202A-U+202E,
U+2066-U+2069), the line and paragraph separators (U+2028, U+2029) and lone surrogates (which
a JSON document may carry and which no terminal encoding can write).

Stdlib only: every CLI command imports it. The app's markup-parsing widgets need the text's
``[`` escaped as well: :func:`visible_markup`.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every control, bidi override and lone surrogate shown as an escape."""
    if _UNSAFE.search(text) is None:
        return text  # the usual case, at the cost of one scan (tables of 10,000 tags)
    return _UNSAFE.sub(_escape, text)


def visible_lines(text: str) -> str:
    """:func:`visible` line by line: the line breaks of a multi-line text stay line breaks."""
    return "\n".join(visible(line) for line in text.split("\n"))


def visible_markup(text: str) -> str:
    """:func:`visible`, then escaped for Rich/Textual markup: a str shown by a widget that
    parses markup (a ``DataTable`` cell, a ``Tree`` label, ``Static.update``) reads as it is."""
    text = visible(text)
    if "[" not in text:
        return text  # nothing markup could read as a tag
    from rich.markup import escape  # rich costs the CLI 40 ms at import: only the app needs it

    # The space keeps rich from doubling a trailing backslash (meant for text that markup
    # follows; both parsers would show it twice): no tag can end in it, so it is cut again.
    return escape(text + " ")[:-1]
