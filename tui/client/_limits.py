"""The bounds the client holds against any registry, and the helpers that hold them.

A registry the user does not control may send anything; whatever it sends, the client's memory,
time and stack stay bounded:

========================  ===================================================================
What                      Limit
========================  ===================================================================
manifest body             4 MiB (``MAX_MANIFEST_BYTES``, as Distribution), refused while
                          streaming: with or without ``Content-Length``, chunked too
catalog / tags / other    16 MiB per answer (``MAX_JSON_BYTES``): one page of names, the
JSON answers              referrers index, an extension report
small blob read whole     16 MiB (``MAX_SMALL_BLOB_BYTES``): image configs
token answers, 401s,      1 MiB (``MAX_SMALL_BODY_BYTES``)
redirects
JSON nesting              256 levels (``MAX_JSON_DEPTH``), checked before parsing
pagination                10,000 pages (``MAX_PAGES``; ``RegistryClient(max_pages=...)``), and
                          a repeated ``Link``/``last`` or a page with nothing new stops at once
request deadline          ``timeout`` seconds (default 30) for the whole request: connecting,
                          the auth round trips, the headers and the body (plus a second per
                          MiB of a request body to send); a timeout is not retried
blob streams              the headers within the deadline; then a stream that delivers fewer
                          than 1 KiB/s (``MIN_STREAM_RATE``) over a ``timeout``-second window
                          is abandoned as timed out (a layer of any size may take as long as
                          it needs while it keeps moving)
layers                    see :mod:`tui.client.layers`: 1 MiB decompressed at a time, 32 GiB
                          expanded, 1,000,000 entries, 64 MiB of names
========================  ===================================================================

Parsing a body over ``OFF_LOOP_BYTES`` (256 KiB) runs in a worker thread, so that a caller's
event loop (the app's) never stalls on it. A thread holds the interpreter for the whole of one
``json.loads`` call, though (a C call: 130 ms for 9 MB): :func:`loads_in_pieces` parses a long
document an element at a time, so the event loop runs between the pieces.
"""

from __future__ import annotations

import asyncio
import json
import json.scanner
import re
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from tui.client.collector import collector_paused
from tui.client.errors import MalformedResponseError, ResponseTooLargeError

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_MANIFEST_BYTES",
    "MAX_PAGES",
    "MAX_SMALL_BLOB_BYTES",
    "MAX_SMALL_BODY_BYTES",
    "MIN_STREAM_RATE",
    "OFF_LOOP_BYTES",
    "check_json_depth",
    "human_limit",
    "loads_in_pieces",
    "loads_json",
    "off_loop",
    "read_bounded",
]

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_JSON_BYTES = 16 * 1024 * 1024
MAX_SMALL_BLOB_BYTES = 16 * 1024 * 1024
MAX_SMALL_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 256
MAX_PAGES = 10_000
MIN_STREAM_RATE = 1024
OFF_LOOP_BYTES = 256 * 1024

T = TypeVar("T")


def human_limit(limit: int) -> str:
    """``4 MiB`` for 4194304: limits are powers of two, said the way the docs say them."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


async def read_bounded(response: httpx.Response, limit: int, what: str) -> bytes:
    """Read a streamed ``response`` whole, but never more than ``limit`` decoded bytes.

    A ``Content-Length`` over the limit is refused before reading; otherwise reading stops as
    soon as the limit is passed (chunked or length-less bodies too). The body is kept on the
    response, so ``response.content`` and ``response.json()`` work afterwards.
    """
    if hasattr(response, "_content"):
        content: bytes = response.content  # read already (by the auth flow)
        if len(content) > limit:
            raise _too_large(response, limit, what)
        return content
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limit:
        await response.aclose()
        raise _too_large(response, limit, what)
    buffer = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            buffer += chunk
            if len(buffer) > limit:
                raise _too_large(response, limit, what)
    finally:
        await response.aclose()
    body = bytes(buffer)
    response._content = body  # what httpx's own aread() keeps; .content and .json() read it
    return body


def _too_large(response: httpx.Response, limit: int, what: str) -> ResponseTooLargeError:
    host = response.request.url.netloc.decode() if response.request is not None else "the server"
    return ResponseTooLargeError(
        f"{host} sent more than {human_limit(limit)} for {what}; regtui stopped reading there",
        limit=limit,
        response=response,
    )


_STRING_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def check_json_depth(raw: bytes, what: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`MalformedResponseError` when ``raw`` nests arrays/objects over ``limit``.

    Done before parsing (Python's parser recurses, so 100,000 nested arrays would end in
    RecursionError): strings are cut out, the brackets kept, and innermost pairs removed one
    level per round; at most ``limit`` rounds of C-speed scans, and none for small documents.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    shape = _STRING_RE.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKETS)
    for depth in range(limit + 1):
        if not shape:
            return
        inner = shape.replace(b"()", b"")
        if inner == shape:
            # Unbalanced: what is left opens (or closes) without pairs; count it as depth.
            if depth + shape.count(b"(") <= limit:
                return
            break
        shape = inner
    raise MalformedResponseError(
        f"The {what} nests arrays or objects more than {limit} levels deep; regtui does not "
        "parse it"
    )


def loads_json(raw: bytes | str, what: str, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` with the nesting bounded; any failure is a :class:`MalformedResponseError`."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    check_json_depth(data, what, limit)
    try:
        return json.loads(data)
    except RecursionError as exc:  # not expected past the check; never escapes as such
        raise MalformedResponseError(f"The {what} nests too deeply to parse") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponseError(f"The {what} is not valid JSON ({exc})") from exc


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SCAN: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]  # typeshed names the scanner's own type
)
"""The C scanner behind ``json.loads``: one value at an index, and where it ends."""


def _skip(text: str, index: int) -> int:
    """Where the JSON whitespace at ``text[index:]`` ends."""
    match = _WHITESPACE.match(text, index)
    assert match is not None  # it matches the empty string
    return match.end()


def _value(text: str, index: int) -> tuple[Any, int]:
    """The JSON value at ``text[index]`` (one call into the C parser), and where it ends."""
    try:
        return _SCAN(text, index)
    except StopIteration as error:
        raise json.JSONDecodeError("Expecting value", text, error.value) from None


def loads_in_pieces(text: str) -> Any:
    """``json.loads(text)``, the top-level object's arrays parsed element by element.

    Each piece is one short call into the C parser: a worker thread that parses a report of
    megabytes this way lets the event loop's thread run between pieces, where one
    ``json.loads`` holds the interpreter for the whole document (130 ms for 9 MB). Raises
    what ``json.loads`` raises (``JSONDecodeError``, ``RecursionError``) for what it refuses."""
    index = _skip(text, 0)
    if not text.startswith("{", index):
        return json.loads(text)  # not an object: nothing to cut
    document: dict[str, Any] = {}
    index = _skip(text, index + 1)
    if text.startswith("}", index):
        index += 1
    else:
        while True:
            if not text.startswith('"', index):
                raise json.JSONDecodeError("Expecting property name in double quotes", text, index)
            key, index = _value(text, index)
            index = _skip(text, index)
            if not text.startswith(":", index):
                raise json.JSONDecodeError("Expecting ':' delimiter", text, index)
            index = _skip(text, index + 1)
            if text.startswith("[", index):
                document[key], index = _array_in_pieces(text, index)
            else:
                document[key], index = _value(text, index)
            index = _skip(text, index)
            if text.startswith(",", index):
                index = _skip(text, index + 1)
            elif text.startswith("}", index):
                index += 1
                break
            else:
                raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
    if _skip(text, index) != len(text):
        raise json.JSONDecodeError("Extra data", text, index)
    return document


def _array_in_pieces(text: str, index: int) -> tuple[list[Any], int]:
    """The array that opens at ``text[index]``, parsed an element per call; where it ends."""
    items: list[Any] = []
    append = items.append
    index = _skip(text, index + 1)
    if text.startswith("]", index):
        return items, index + 1
    scan = _SCAN
    while True:
        try:
            item, index = scan(text, index)
        except StopIteration as error:
            raise json.JSONDecodeError("Expecting value", text, error.value) from None
        append(item)
        char = text[index : index + 1]
        if char in _BLANK:
            index = _skip(text, index)
            char = text[index : index + 1]
        if char == ",":
            index += 1
            if text[index : index + 1] in _BLANK:
                index = _skip(text, index)
        elif char == "]":
            return items, index + 1
        else:
            raise json.JSONDecodeError("Expecting ',' delimiter", text, index)


_BLANK = frozenset(" \t\n\r")
"""JSON's whitespace (a compact document has none between elements: no regex call then)."""


async def off_loop(size: int, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)``, in a worker thread when ``size`` (the input's bytes) is large,
    with the garbage collector paused meanwhile (see :func:`_without_gc`)."""
    if size > OFF_LOOP_BYTES:
        return await asyncio.to_thread(_without_gc, function, *args)
    return function(*args)


def _without_gc(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` with automatic garbage collection off until it returns (see
    :mod:`tui.client.collector`): a parse allocates hundreds of thousands of objects that all
    live on, and the collector's passes over them would hold the interpreter (the app's event
    loop waits)."""
    with collector_paused():
        return function(*args)
