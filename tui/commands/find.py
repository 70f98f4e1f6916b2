"""``regtui find``: placeholder replaced in the next commit."""

from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:
    del subparsers
