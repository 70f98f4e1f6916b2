"""Registry access flags shared by ``connect`` and the scripting commands, the password, and
the output group (``--json``).

One definition, so every command that talks to a registry takes the same flags with the same
meaning: ``--username``, ``--password-stdin``, ``--insecure``, ``--ca-cert``, ``--timeout``.
"""

from __future__ import annotations

import argparse
import os
import sys

ENV_PASSWORD = "REGTUI_PASSWORD"  # tui.client.auth's; not imported: the parsers stay cheap


class PasswordError(Exception):
    """No password where one is needed, or ``--password-stdin`` used wrongly: a usage error
    (exit code 2)."""


def add_access_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the access flags to ``parser`` as a "registry access" group; return the group."""
    group = parser.add_argument_group("registry access")
    group.add_argument(
        "--username",
        "-u",
        help="user name (or REGTUI_USERNAME); the password is asked for at a terminal",
    )
    group.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin, asked for without echo at a terminal (or "
        "REGTUI_PASSWORD, or Docker's config.json)",
    )
    group.add_argument(
        "--insecure", action="store_true", help="allow plain HTTP and unverified TLS"
    )
    group.add_argument("--ca-cert", metavar="FILE", help="trust this CA (PEM) for TLS")
    group.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    return group


def add_output_arguments(
    parser: argparse.ArgumentParser, json_help: str = "machine-readable output"
) -> argparse._ArgumentGroup:
    """Add ``--json`` to ``parser`` in an "output" group (not "registry access"); return it."""
    group = parser.add_argument_group("output")
    group.add_argument("--json", action="store_true", help=json_help)
    return group


def read_password(args: argparse.Namespace) -> str | None:
    """The password, never echoed or logged: from stdin with ``--password-stdin`` (asked for
    without echo when stdin is a terminal), asked for without echo when ``--username`` came
    without one (neither ``--password-stdin`` nor ``REGTUI_PASSWORD``); ``None`` when the client
    finds the credentials itself (no ``--username``, or ``REGTUI_PASSWORD``).

    Without a terminal to ask on, a missing password is a :class:`PasswordError`: one line that
    says how to give it.
    """
    username = getattr(args, "username", None)
    if not getattr(args, "password_stdin", False):
        if not username or os.environ.get(ENV_PASSWORD) is not None:
            return None
        if not sys.stdin.isatty():
            raise PasswordError(
                f"no password for {username}: pipe it with --password-stdin, set "
                f"{ENV_PASSWORD}, or run at a terminal to be asked"
            )
        return _ask(username)
    if not username:
        raise PasswordError("--password-stdin needs --username")
    if sys.stdin.isatty():
        return _ask(username)
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise PasswordError("--password-stdin: nothing on stdin")
    return password


def _ask(username: str) -> str:
    """Ask for ``username``'s password on the terminal, without echo (:func:`getpass.getpass`)."""
    import getpass

    try:
        password = getpass.getpass(f"Password for {username}: ")
    except EOFError:
        password = ""
    if not password:
        raise PasswordError(f"no password given for {username}")
    return password
