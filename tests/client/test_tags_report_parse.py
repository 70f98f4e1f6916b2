"""The ``_regtui/tags`` report is parsed off the event loop, where deep nesting is caught
(the request skips the on-loop depth scan, which took 0.2 s and more for a report of 10,000
tags)."""

from __future__ import annotations

import pytest

from tui.client._pushtimes import _parse
from tui.client.errors import MalformedResponseError


def test_a_report_nested_too_deeply_is_one_readable_error() -> None:
    with pytest.raises(MalformedResponseError, match="nested too deeply"):
        _parse(b"[" * 200_000 + b"]" * 200_000, "team/app")


def test_a_report_that_is_not_json_is_one_readable_error() -> None:
    with pytest.raises(MalformedResponseError, match="not JSON"):
        _parse(b"{", "team/app")
