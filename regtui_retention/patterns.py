"""Regular expressions from users, run in bounded time (pure).

``prune --keep-tag``, ``find --regex`` and a policy's ``keep_tags`` run user patterns over
every tag of a registry. Python's :mod:`re` backtracks: ``(a+)+$`` takes exponential time in
the length of a tag that almost matches (40 characters: hours), and nothing can interrupt it.
These patterns run on RE2 instead, whose time is linear in the text whatever the pattern: the
price is RE2's syntax, which has no lookaround (``(?!...)``) and no backreferences (``\\1``).
Such a pattern is refused with one line saying so, before anything is read or deleted.
"""

from __future__ import annotations

import re2

__all__ = ["RE2_LIMITS", "PatternError", "TagRegex"]

RE2_LIMITS = (
    "tag patterns run on RE2, in time linear in the tag: no lookaround (?=, ?!, ?<=, ?<!), "
    "no backreferences (\\1), repetition counts up to 1000"
)

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the reason comes back in the exception: no stderr noise


class PatternError(ValueError):
    """A pattern RE2 refuses; the message is one line: the pattern, why, and RE2's limits."""


def _reason(error: Exception) -> str:
    detail = error.args[0] if error.args else error
    text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    return " ".join(text.split())


class TagRegex:
    """A regular expression matched against the whole tag, in time linear in the tag."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        try:
            self._compiled = re2.compile(pattern, options=_OPTIONS)
        except re2.error as error:
            raise PatternError(
                f"regular expression {pattern!r} is refused: {_reason(error)} ({RE2_LIMITS})"
            ) from None

    def fullmatch(self, text: str) -> bool:
        return self._compiled.fullmatch(text) is not None

    def __repr__(self) -> str:
        return f"TagRegex({self.pattern!r})"
