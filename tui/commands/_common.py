"""The CLI plumbing every command uses: exit codes, the one-line error, the client, tables,
the progress line and JSON.

Nothing here imports the client library, the server or a third-party module at import time: the
parsers of every command are built from this module on each start, so it stays cheap. The JSON
convention of every command (``docs/json.md``): snake_case keys, sizes as integer bytes, times as
RFC 3339 UTC strings, platforms as ``{"os", "architecture", "variant"}`` objects.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence

from tui.commands.access import (
    PasswordError,
    add_access_arguments,
    add_output_arguments,
    read_password,
)
from tui.commands.exits import (  # noqa: F401  (every command's codes, re-exported)
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOTHING_FOUND,
    EXIT_OK,
    EXIT_PLAN_NOT_EMPTY,
    EXIT_USAGE,
)
from tui.commands.top_help import columns
from tui.logic.escape import visible

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads both)

if TYPE_CHECKING:  # typing itself is not loaded at run time: every start builds a parser
    from typing import Any, TypeAlias

    from tui.client import Reference, RegistryClient
    from tui.client.models import Platform

Command: TypeAlias = "Callable[[argparse.Namespace], Coroutine[Any, Any, int]]"


class UsageError(Exception):
    """A mistake in the command line: exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse's parser with its help laid out for :func:`~tui.commands.top_help.columns` (the
    formatter class it
    is given, or argparse's, told the width); its subparsers are of this class too."""

    def __init__(
        self,
        *args: Any,
        formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter,
        **kwargs: Any,
    ) -> None:
        width = columns() - 2
        sized = functools.partial(formatter_class, width=width)
        super().__init__(*args, formatter_class=sized, **kwargs)  # type: ignore[arg-type,misc]


def common_parser() -> argparse.ArgumentParser:
    """The access flags and ``--json``: the parent parser of every scripting command."""
    common = Parser(add_help=False)
    add_access_arguments(common)
    add_output_arguments(common)
    return common


def fail(message: str) -> None:
    """The one line of a failure on stderr, ``regtui: error: ...``, its text escaped."""
    print(f"regtui: error: {visible(message)}", file=sys.stderr)


def warn(message: str) -> None:
    """One line of warning on stderr, ``regtui: warning: ...``, its text escaped."""
    print(f"regtui: warning: {visible(message)}", file=sys.stderr)


def run(
    args: argparse.Namespace,
    command: Command,
    *,
    usage: tuple[type[Exception], ...] = (),
    errors: tuple[type[Exception], ...] = (),
) -> int:
    """Run an async command; usage mistakes (:class:`UsageError`, a bad reference, and
    ``usage``) exit 2, registry errors (and ``errors``) 1, each as one line."""
    import asyncio

    from tui.client import InvalidReferenceError, RegistryClientError

    usage_errors: tuple[type[Exception], ...] = (UsageError, InvalidReferenceError, *usage)
    failures: tuple[type[Exception], ...] = (RegistryClientError, *errors)
    try:
        return asyncio.run(command(args))
    except usage_errors as exc:
        fail(str(exc))
        return EXIT_USAGE
    except failures as exc:
        fail(str(exc))
        return EXIT_ERROR


def handler(
    command: Command, quick: Callable[[argparse.Namespace], int | None] | None = None
) -> Callable[[argparse.Namespace], int]:
    """``set_defaults(handler=handler(_ls))``: runs ``_ls`` through :func:`run`. ``quick``, when
    given, is tried first, synchronously (no event loop, no full client: see
    :mod:`tui.client.quick`); it returns ``None`` to hand over to ``command``, which reports
    what went wrong, or raises a ``RegistryClientError`` (a timeout) that is reported here."""

    def handle(args: argparse.Namespace) -> int:
        if quick is not None:
            try:
                code = quick(args)
            except Exception as exc:
                from tui.client import RegistryClientError  # (loaded on this path only)

                if not isinstance(exc, RegistryClientError):
                    raise
                fail(str(exc))  # a timeout: the registry had its time, it is not asked again
                return EXIT_ERROR
            if code is not None:
                return code
        return run(args, command)

    return handle


_PASSWORD = "_regtui_password"


def password(args: argparse.Namespace) -> str | None:
    """The password of the access flags, read once (stdin can be read only once: a command
    with two clients asks for it once); a bad source is a :class:`UsageError`."""
    if _PASSWORD not in vars(args):
        try:
            setattr(args, _PASSWORD, read_password(args))
        except PasswordError as error:
            raise UsageError(str(error)) from None
    value: str | None = getattr(args, _PASSWORD)
    return value


def client(args: argparse.Namespace, registry: str, **kw: Any) -> RegistryClient:
    """A client for ``registry`` with the access flags of ``args``."""
    from tui.client import RegistryClient

    return RegistryClient(
        registry,
        username=args.username,
        password=password(args),
        insecure=args.insecure,
        ca_cert=args.ca_cert,
        timeout=args.timeout,
        **kw,
    )


def registry_of(ref: Reference) -> str:
    """What to hand the client for ``ref``'s registry (its scheme kept when given)."""
    return f"{ref.scheme}://{ref.registry}" if ref.scheme else ref.registry


def host_registry(text: str) -> tuple[str, str]:
    """``HOST`` as given -> (the host without scheme, what to hand the client)."""
    from tui.client.reference import parse_registry

    scheme, host = parse_registry(text)
    return host, f"{scheme}://{host}" if scheme else host


def repo_ref(text: str) -> Reference:
    from tui.client import parse_reference

    ref = parse_reference(text)
    if ref.tag is not None or ref.digest is not None:
        raise UsageError(f"{text!r}: give HOST/REPO without a tag or digest")
    return ref


# ---------------------------------------------------------------------- progress


class ProgressLine:
    """One line on stderr, rewritten at most ten times a second, only on a terminal: the text
    ``describe`` makes of each progress report (escaped, at most 200 characters). Call
    :meth:`clear` before printing a result line, and when done."""

    def __init__(self, describe: Callable[[Any], str]) -> None:
        self.enabled = sys.stderr.isatty()
        self._describe = describe
        self._last = 0.0
        self._shown = False

    def __call__(self, progress: object) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.1:
            return
        self._last = now
        self._shown = True
        sys.stderr.write(f"\r\x1b[K{visible(self._describe(progress)[:200])}")
        sys.stderr.flush()

    def clear(self) -> None:
        if self._shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._shown = False


# ---------------------------------------------------------------------- JSON


JSON_WRITE_SIZE = 1 << 16
"""Characters :func:`print_json` gathers before each write to stdout."""


def print_json(data: Any) -> None:
    """``data`` on stdout as ``json.dumps(data, indent=2)`` writes it, streamed: a list may be
    given as an iterator (a GC report's hundreds of thousands of removals, each made when
    written), and the text is written in pieces of ``JSON_WRITE_SIZE`` characters, never held
    whole (json.dump would write piece by piece, a system call each when stdout is unbuffered:
    86,000 of them for a GC report of 2,400 removals)."""
    pending: list[str] = []
    gathered = 0
    for piece in json_pieces(data):
        pending.append(piece)
        gathered += len(piece)
        if gathered >= JSON_WRITE_SIZE:
            sys.stdout.write("".join(pending))
            pending, gathered = [], 0
    pending.append("\n")
    sys.stdout.write("".join(pending))


def json_pieces(data: Any) -> Iterator[str]:
    """The text of ``json.dumps(data, indent=2)``, in pieces; a list may be an iterator."""
    import json
    from json.encoder import encode_basestring_ascii as string

    def pieces(value: Any, newline: str) -> Iterator[str]:
        # newline: a line break and the indentation of the line value starts on.
        if isinstance(value, str):
            yield string(value)
        elif value is None or value is True or value is False:
            yield "null" if value is None else "true" if value else "false"
        elif isinstance(value, int):
            yield int.__repr__(value)
        elif isinstance(value, dict):
            inner, opening = newline + "  ", "{"
            for key, item in value.items():
                if not isinstance(key, str):  # json's text of an int, float, bool or None key
                    key = json.dumps(key) if key is None or isinstance(key, int | float) else key
                yield opening + inner + string(key) + ": "
                opening = ","
                yield from pieces(item, inner)
            yield "{}" if opening == "{" else newline + "}"
        elif isinstance(value, list | tuple | Iterator):
            inner, opening = newline + "  ", "["
            for item in value:
                yield opening + inner
                opening = ","
                yield from pieces(item, inner)
            yield "[]" if opening == "[" else newline + "]"
        else:
            yield json.dumps(value)  # a float (NaN and infinities as json has them); or TypeError

    return pieces(data, "\n")


def platform_json(platform: Platform | None) -> dict[str, str | None] | None:
    """A platform as the JSON convention has it: ``{"os", "architecture", "variant"}``."""
    if platform is None:
        return None
    return {"os": platform.os, "architecture": platform.architecture, "variant": platform.variant}


def rfc3339(value: str | None) -> str | None:
    """An image config's time (any offset, up to nanoseconds) as RFC 3339 UTC, ``...Z``;
    ``None`` when absent or unreadable."""
    from datetime import UTC

    from tui.logic.fmt import parse_created

    parsed = parse_created(value)
    if parsed is None:
        return None
    return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")


def media_kind(media_type: str) -> str:
    """``index``, ``schema1``, ``docker`` or ``oci``: the short type of a manifest."""
    from tui.client.models import DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, INDEX_MEDIA_TYPES

    if media_type in INDEX_MEDIA_TYPES:
        return "index"
    if media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
        return "schema1"
    return "docker" if "docker" in media_type else "oci"


# ---------------------------------------------------------------------- human output
# Text from a registry or an image (names, tags, labels, file names, error messages) is shown
# through ``visible``: a control character or bidi override in it is printed as an escape
# (``\x1b``), never sent to the terminal. JSON output needs nothing: json.dumps escapes.


def say(line: str) -> None:
    """Print one line of human output that holds text from a registry, escaped."""
    print(visible(line))


def size(n: int | None) -> str:
    """Bytes for people, as the app writes them (:func:`tui.logic.fmt.human_size`: ``999 B``,
    ``1.5 KiB``, ``2.0 MiB``); ``-`` when unknown."""
    from tui.logic.fmt import human_size

    return human_size(n, unknown="-")


def table(rows: Sequence[Sequence[str]], header: Sequence[str], right: Sequence[int] = ()) -> None:
    """Columns two spaces apart; the columns numbered in ``right`` aligned right (numbers).
    Every cell is shown escaped (:func:`say`)."""
    shown = [[visible(str(cell)) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in shown) for i in range(len(header))]
    for row in shown:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


REPO_USAGE_HEADER = ("REPOSITORY", "MANIFESTS", "TAGS", "TOTAL", "EXCLUSIVE")
"""The columns of ``du HOST`` and ``du --root`` alike, in this order."""


def repo_usage_table(rows: Sequence[tuple[str, int, int, int, int]]) -> None:
    """``du``'s table: (name, manifests, tags, total bytes the repository references, exclusive
    bytes: those no other repository references). The app's usage table names them alike."""
    table(
        [[name, str(m), str(t), size(ref), size(only)] for name, m, t, ref, only in rows],
        REPO_USAGE_HEADER,
        right=(1, 2, 3, 4),
    )


def short_digest(digest: str | None, length: int = 12) -> str:
    """``sha256:abcdef…`` -> ``abcdef012345`` (the hex part, cut)."""
    return digest.split(":", 1)[-1][:length] if digest else ""
