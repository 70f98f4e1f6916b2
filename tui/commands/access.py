"""Registry access flags shared by ``connect`` and the scripting commands, and the password.

One definition, so every command that talks to a registry takes the same flags with the same
meaning: ``--username``, ``--password-stdin``, ``--insecure``, ``--ca-cert``, ``--timeout``.
"""

from __future__ import annotations

import argparse
import sys


class PasswordError(Exception):
    """``--password-stdin`` was used wrongly: a usage error (exit code 2)."""


def add_access_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the access flags to ``parser`` as a "registry access" group; return the group."""
    group = parser.add_argument_group("registry access")
    group.add_argument("--username", "-u", help="user name (or REGTUI_USERNAME)")
    group.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin (or REGTUI_PASSWORD, or Docker's config.json)",
    )
    group.add_argument(
        "--insecure", action="store_true", help="allow plain HTTP and unverified TLS"
    )
    group.add_argument("--ca-cert", metavar="FILE", help="trust this CA (PEM) for TLS")
    group.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    return group


def read_password(args: argparse.Namespace) -> str | None:
    """The password from stdin when ``--password-stdin`` was given; never echoed or logged."""
    if not getattr(args, "password_stdin", False):
        return None
    if not args.username:
        raise PasswordError("--password-stdin needs --username")
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise PasswordError("--password-stdin: nothing on stdin")
    return password
