"""``regtui connect HOST[:PORT]`` and the app side of ``regtui serve --local [--demo]``.

This module is the allowed bridge into ``embedded_registry`` for the app: with ``--storage DIR``
it wraps the server's own usage and GC code in a storage backend the app can call; the app's
screens never import the server.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tui.client import RegistryClientError
from tui.commands.access import PasswordError, add_access_arguments, read_password
from tui.data.storage import CallableBackend, GcView, StorageBackend, UsageView

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
STARTUP_TIMEOUT = 30.0
LISTENING_PREFIX = "listening on http://"


class CommandError(Exception):
    """A one-line error for the user (exit code in ``code``)."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "connect",
        help="explore a registry in the terminal app",
        description="Open the explorer on a registry (any OCI / Docker v2 registry).",
    )
    parser.add_argument("host", metavar="HOST[:PORT]", help="registry, e.g. 127.0.0.1:5000")
    add_access_arguments(parser)
    parser.add_argument(
        "--read-only", action="store_true", help="hide every deletion and garbage collection"
    )
    parser.add_argument(
        "--storage",
        metavar="DIR",
        help="the registry's storage directory (registry:2 layout): exact usage and GC offline",
    )
    parser.set_defaults(handler=run_connect)


def _fail(message: str) -> None:
    print(f"regtui: error: {message}", file=sys.stderr)


def _read_password(args: argparse.Namespace) -> str | None:
    try:
        password = read_password(args)
    except PasswordError as error:
        raise CommandError(str(error), EXIT_USAGE) from None
    if password is not None:
        _reattach_terminal()
    return password


def _reattach_terminal() -> None:
    """After reading a piped password, give the app the terminal as its input."""
    if sys.stdin.isatty():
        return
    try:
        tty = os.open("/dev/tty", os.O_RDONLY)
    except OSError as error:
        raise CommandError(f"no terminal for the app after reading stdin: {error}") from error
    os.dup2(tty, 0)
    os.close(tty)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - replaces the process's stdin


def directory_backend(
    root: Path, *, grace_period: float | None = None, label: str | None = None
) -> StorageBackend:
    """Usage and GC run in-process on a storage directory, off the event loop.

    ``grace_period`` (seconds) protects recent blobs and uploads; the server's default when
    ``None``.
    """
    from embedded_registry import gc as server_gc
    from embedded_registry import usage as server_usage
    from tui.data.backends import gc_view_from_report, usage_view_from_report

    label = label or f"storage directory {root}"
    grace = server_gc.DEFAULT_GRACE_PERIOD if grace_period is None else grace_period

    async def usage() -> UsageView:
        report = await asyncio.to_thread(
            functools.partial(server_usage.storage_usage, root, grace_period=grace)
        )
        return usage_view_from_report(report, source=label)

    async def collect(dry_run: bool, delete_untagged: bool) -> GcView:
        run = functools.partial(
            server_gc.collect_garbage,
            root,
            dry_run=dry_run,
            delete_untagged=delete_untagged,
            grace_period=grace,
        )
        return gc_view_from_report(await asyncio.to_thread(run))

    return CallableBackend(label, usage, collect)


def _check_storage(path: str) -> Path:
    root = Path(path)
    if not (root / "docker" / "registry" / "v2").is_dir():
        raise CommandError(
            f"{path} is not a registry storage directory (no docker/registry/v2 inside)",
            EXIT_USAGE,
        )
    return root


def run_connect(args: argparse.Namespace) -> int:
    from tui.app import AppSettings, make_app

    try:
        password = _read_password(args)
        storage = _check_storage(args.storage) if args.storage else None
        settings = AppSettings(
            registry=args.host,
            username=args.username,
            password=password,
            insecure=args.insecure,
            ca_cert=args.ca_cert,
            read_only=args.read_only,
            timeout=args.timeout,
        )
        app = make_app(settings, storage=directory_backend(storage) if storage else None)
        app.run()
    except CommandError as error:
        _fail(str(error))
        return error.code
    except RegistryClientError as error:
        _fail(str(error))
        return EXIT_ERROR
    return EXIT_OK if app.return_code in (None, 0) else EXIT_ERROR


# -- serve --local ----------------------------------------------------------------------------


class LocalRegistry:
    """The bundled registry as a child process on a free loopback port."""

    def __init__(self, process: subprocess.Popen[str], port: int, root: Path) -> None:
        self.process = process
        self.port = port
        self.root = root

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def _read_port(stdout: IO[str], process: subprocess.Popen[str]) -> int:
    line = stdout.readline()
    if not line.startswith(LISTENING_PREFIX):
        process.kill()
        process.wait()
        raise CommandError(f"the bundled registry did not start (it said: {line.strip()!r})")
    return int(line.strip().rsplit(":", 1)[1].rstrip("/"))


@contextmanager
def local_registry(
    root: Path, *, log: IO[str] | None = None, extra_args: Sequence[str] = ()
) -> Iterator[LocalRegistry]:
    """Start ``python -m embedded_registry`` on 127.0.0.1:0; terminate it on exit.

    ``extra_args`` go to the server as they are (``--config FILE``, ``--read-only``).
    """
    command = [
        sys.executable,
        "-m",
        "embedded_registry",
        *extra_args,
        "--addr",
        "127.0.0.1:0",
        "--root",
        str(root),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=log if log is not None else subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = _read_port(process.stdout, process)
        yield LocalRegistry(process, port, root)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _registry_is_empty(url: str) -> bool:
    import httpx

    response = httpx.get(f"{url}/v2/_catalog", params={"n": 1}, timeout=10)
    response.raise_for_status()
    return not response.json().get("repositories")


def _local_root(args: argparse.Namespace) -> Path:
    """The storage root of ``serve --local``: the same as ``regtui serve`` would use.

    ``--root``, else the config file's ``storage.filesystem.rootdirectory`` (and ``REGISTRY_``
    overrides), else the default under ``$XDG_DATA_HOME``: what was pushed to the local
    registry is still there next time.
    """
    from embedded_registry.config import ConfigError, load_config

    if getattr(args, "root", None):
        return Path(args.root)
    config_path = getattr(args, "config", None)
    try:
        return load_config(Path(config_path) if config_path else None).storage.root
    except ConfigError as error:
        raise CommandError(str(error)) from None


def run_local(args: argparse.Namespace) -> int:
    """``regtui serve --local [--demo] [--root DIR]``: a private registry with the app on it."""
    from tui.app import AppSettings, make_app

    read_only = bool(getattr(args, "read_only", False))
    try:
        root = _local_root(args)
    except CommandError as error:
        _fail(str(error))
        return error.code
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _fail(f"cannot use {root} as the registry's storage: {error.strerror}")
        return EXIT_ERROR
    extra_args: list[str] = []
    if getattr(args, "config", None):
        extra_args += ["--config", str(args.config)]
    if read_only:
        extra_args.append("--read-only")
    log_path = root.parent / f"{root.name}-serve-local.log"
    try:
        with (
            open(log_path, "a", encoding="utf-8") as log,
            local_registry(root, log=log, extra_args=extra_args) as registry,
        ):
            if getattr(args, "demo", False) and _registry_is_empty(registry.url):
                from tui.demo import populate

                print(f"Filling {registry.host} with demo images…", file=sys.stderr)
                populate(registry.url)
            settings = AppSettings(
                registry=registry.host,
                insecure=True,
                read_only=read_only,
                title=f"local registry {registry.host}",
            )
            app = make_app(settings)
            app.run()
    except CommandError as error:
        _fail(f"{error} (server log: {log_path})")
        return error.code
    except RegistryClientError as error:
        _fail(str(error))
        return EXIT_ERROR
    return EXIT_OK
