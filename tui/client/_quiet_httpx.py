"""httpx without the command-line tool its ``__init__`` pulls in.

httpx's ``__init__`` imports ``httpx._main`` (click, rich and pygments when they are
installed): a third of httpx's import time, paid by every ``regtui`` command and never used by
a library. :func:`install` (called by ``tui.client``'s ``__init__``, before any module of the
client imports httpx) puts a stand-in for ``httpx._main`` in ``sys.modules`` without importing
httpx itself, so a command that never makes a request through httpx does not load it at all;
``httpx.main`` still works, loading the real tool when called.
"""

from __future__ import annotations

import sys
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads both)
if TYPE_CHECKING:
    from typing import Any

_NAME = "httpx._main"


def main(*args: Any, **kwargs: Any) -> Any:
    """httpx's command-line tool, imported on first use (the stand-in leaves first)."""
    if getattr(sys.modules.get(_NAME), "main", None) is main:
        del sys.modules[_NAME]
    from httpx._main import main as real_main

    return real_main(*args, **kwargs)


def install() -> None:
    """The stand-in, unless httpx (or its tool) is loaded already."""
    if "httpx" in sys.modules or _NAME in sys.modules:
        return
    placeholder = types.ModuleType(_NAME)
    placeholder.main = main  # type: ignore[attr-defined]
    sys.modules[_NAME] = placeholder
