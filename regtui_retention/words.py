"""Tags in natural order and lists in sentences (pure)."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

__all__ = ["join_and", "natural_key"]

_TOKEN = re.compile(r"\d+|[^\d]+")


@functools.lru_cache(maxsize=1 << 16)
def natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """``"build10"`` after ``"build9"``: digits compare as numbers, the rest as lowercase text."""
    return tuple(
        (0, int(token), "") if token.isdigit() else (1, 0, token.lower())
        for token in _TOKEN.findall(text)
    )


def join_and(items: Sequence[str]) -> str:
    """``[]`` -> ``""``, ``[a]`` -> ``a``, ``[a, b]`` -> ``a and b``, ``[a, b, c]`` ->
    ``a, b and c``."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"
