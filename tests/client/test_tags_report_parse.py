"""The ``_regtui/tags`` report is parsed off the event loop, where deep nesting is caught
(the request skips the on-loop depth scan, which took 0.2 s and more for a report of 10,000
tags)."""

from __future__ import annotations

import asyncio
import gc
import json
import threading

import pytest

from tui.client import RepositoryStorage, _limits
from tui.client._limits import loads_in_pieces
from tui.client._pushtimes import _parse
from tui.client.errors import MalformedResponseError


def test_a_report_nested_too_deeply_is_one_readable_error() -> None:
    with pytest.raises(MalformedResponseError, match="nested too deeply"):
        _parse(b"[" * 200_000 + b"]" * 200_000, "team/app")


def test_a_report_that_is_not_json_is_one_readable_error() -> None:
    with pytest.raises(MalformedResponseError, match="not JSON"):
        _parse(b"{", "team/app")


def test_a_report_nested_too_deeply_inside_its_lists_is_one_readable_error() -> None:
    body = b'{"name":"team/app","tags":[' + b"[" * 200_000 + b"]" * 200_000 + b"]}"
    with pytest.raises(MalformedResponseError, match="nested too deeply"):
        _parse(body, "team/app")


def _report(tags: int) -> bytes:
    digest = "sha256:" + "ab" * 32
    return json.dumps(
        {
            "name": "team/app",
            "tags": [
                {"tag": f"v{n}", "digest": digest, "pushed": "2025-06-01T10:00:00Z"}
                for n in range(tags)
            ],
            "manifests": [
                {
                    "digest": digest,
                    "pushed": "2025-06-01T10:00:00Z",
                    "created": None,
                    "blobs": [{"digest": digest, "size": 123}],
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "size": 4567,
                }
            ],
            "later": {"a": [1, 2]},
        },
        indent=1,  # whitespace between the pieces too
    ).encode()


def test_a_long_report_is_parsed_a_piece_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker thread holds the interpreter for the whole of one call into the C parser: a
    report of 10,000 tags in one ``json.loads`` held the app's event loop for 130 ms. Parsed
    an element per call, no piece is more than a small part of it (and the result is the
    same)."""
    body = _report(2000)
    pieces: list[int] = []
    scan = _limits._SCAN

    def measured(text: str, index: int) -> tuple[object, int]:
        value, end = scan(text, index)
        pieces.append(end - index)
        return value, end

    monkeypatch.setattr(_limits, "_SCAN", measured)
    report = _parse(body, "team/app")
    assert report == RepositoryStorage.from_json(json.loads(body))
    assert len(report.tags) == 2000 and report.manifests[0].size == 4567
    assert pieces and max(pieces) < len(body) / 100, (len(pieces), max(pieces, default=0))


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        " { } ",
        '{"a" : [ ] , "b":[1, 2 ,{"c":[3]}], "d": {"e":1}}\n',
        '{"a":[1],"a":[2]}',
        '{"a":1e400, "b": [NaN, -Infinity]}',
        "[1, 2]",
        '"text"',
        '{"a":1,}',
        '{"a":[1,]}',
        '{"a":[1 2]}',
        '{"a":[1,\t]}',
        '{"a":1} x',
        '{"a"}',
        "{1:2}",
        '{"a":[',
        '{"a":[1',
        '{"a":tru}',
        "",
    ],
)
def test_parsed_in_pieces_is_what_json_loads_makes_of_it(text: str) -> None:
    try:
        expected: object = json.loads(text)
    except json.JSONDecodeError:
        with pytest.raises(json.JSONDecodeError):
            loads_in_pieces(text)
        return
    assert repr(loads_in_pieces(text)) == repr(expected)  # NaN is not equal to itself


async def test_a_big_parse_runs_with_the_garbage_collector_paused() -> None:
    """A parse in a worker thread allocates objects that all live on; a collection in the
    middle of it (over every object not frozen: 110 ms with a report of 10,000 tags) held the
    interpreter, and so the app's event loop. Paused meanwhile, for parses at once too, and
    on again after (only if it was on)."""
    assert gc.isenabled()
    started = threading.Barrier(2)
    seen: list[bool] = []

    def parse(document: bytes) -> object:
        started.wait(timeout=10)  # both parses at once
        seen.append(gc.isenabled())
        return json.loads(document)

    big = _report(3000)
    assert len(big) > _limits.OFF_LOOP_BYTES
    first, second = await asyncio.gather(
        _limits.off_loop(len(big), parse, big), _limits.off_loop(len(big), parse, big)
    )
    assert first == second and seen == [False, False]
    assert gc.isenabled()
    gc.disable()
    try:
        await _limits.off_loop(len(big), json.loads, big)
        assert not gc.isenabled()  # it was off: left off
    finally:
        gc.enable()
