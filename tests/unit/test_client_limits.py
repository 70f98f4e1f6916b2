"""The client's bounds as pure functions: JSON nesting depth, limit wording, URL paths."""

from __future__ import annotations

import json

import pytest

from tui.client._base import _path_of
from tui.client._limits import MAX_JSON_DEPTH, check_json_depth, human_limit, loads_json
from tui.client.errors import MalformedResponseError
from tui.client.models import parse_config, parse_manifest


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_depth_up_to_the_limit_parses_and_one_more_is_refused() -> None:
    assert loads_json(nested(MAX_JSON_DEPTH), "doc") is not None
    with pytest.raises(MalformedResponseError, match="more than 256 levels deep"):
        loads_json(nested(MAX_JSON_DEPTH + 1), "doc")


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"s": "[" * 10_000, "t": 'q\\"{{{' * 1000, "list": [[1], [2]]}).encode()
    check_json_depth(text, "doc")
    assert loads_json(text, "doc")["list"] == [[1], [2]]


def test_wide_documents_are_not_deep() -> None:
    wide = json.dumps({"layers": [{"a": [1]} for _ in range(50_000)]}).encode()
    check_json_depth(wide, "doc")


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000, b'{"a":' * 100_000, b" " + nested(100_000), b"]" * 10 + b"[" * 100_000],
    ids=["unclosed-arrays", "unclosed-objects", "leading-space", "closers-first"],
)
def test_unbalanced_deep_input_is_refused_not_a_recursion_error(raw: bytes) -> None:
    with pytest.raises(MalformedResponseError, match="levels deep"):
        loads_json(raw, "doc")


def test_the_parsers_refuse_deep_documents() -> None:
    deep = b'{"schemaVersion": 2, "config": ' + nested(100_000) + b"}"
    with pytest.raises(MalformedResponseError, match="The manifest nests"):
        parse_manifest(deep)
    with pytest.raises(MalformedResponseError, match="The image config nests"):
        parse_config(b'{"config": ' + nested(100_000) + b"}")


def test_invalid_json_is_a_malformed_response() -> None:
    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        loads_json(b"{nope", "doc")


def test_limits_are_said_as_the_docs_say_them() -> None:
    assert human_limit(4 * 1024 * 1024) == "4 MiB"
    assert human_limit(32 * 1024**3) == "32 GiB"
    assert human_limit(1000) == "1000 bytes"


def test_path_of_a_url() -> None:
    assert _path_of("https://h:5000/v2/app/tags/list?n=1") == "/v2/app/tags/list"
    assert _path_of("http://h") == "/"
