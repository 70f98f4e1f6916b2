"""Import httpx without the command-line tool its ``__init__`` pulls in.

httpx's ``__init__`` imports ``httpx._main`` (click, rich and pygments when they are
installed): a third of httpx's import time, paid by every ``regtui`` command and never used by
a library. Imported first by ``tui.client``; ``httpx.main`` still works, loading the real tool
when called.
"""

from __future__ import annotations

import sys
import types
from typing import Any


def main(*args: Any, **kwargs: Any) -> Any:
    """httpx's command-line tool, imported on first use."""
    from httpx._main import main as real_main

    return real_main(*args, **kwargs)


def import_httpx() -> None:
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    placeholder = types.ModuleType("httpx._main")
    placeholder.main = main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = placeholder
    try:
        import httpx  # noqa: F401
    finally:
        del sys.modules["httpx._main"]  # a later import loads the real module


import_httpx()
