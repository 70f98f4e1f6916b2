"""Lists in sentences: ``a, b and c`` (plurals are :func:`tui.logic.fmt.plural`'s). The function
lives in :mod:`regtui_retention.words`, which the retention plans' sentences share."""

from __future__ import annotations

from regtui_retention.words import join_and

__all__ = ["join_and"]
