"""Lists in sentences: ``a, b and c`` (plurals are :func:`tui.logic.fmt.plural`'s)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["join_and"]


def join_and(items: Sequence[str]) -> str:
    """``[]`` -> ``""``, ``[a]`` -> ``a``, ``[a, b]`` -> ``a and b``, ``[a, b, c]`` ->
    ``a, b and c``."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"
