"""``regtui connect HOST[:PORT]`` and the app side of ``regtui serve --local [--demo]``.

This module is the allowed bridge into ``embedded_registry`` for the app: with ``--storage DIR``
it wraps the server's own usage and GC code in a storage backend the app can call; the app's
screens never import the server.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import functools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.app import App

from tui.client import RegistryClientError
from tui.commands._common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, fail
from tui.commands.access import PasswordError, add_access_arguments, read_password
from tui.data.storage import CallableBackend, GcView, StorageBackend, UsageView

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
    offline = parser.add_mutually_exclusive_group()
    offline.add_argument(
        "--storage",
        metavar="DIR",
        help="the registry's storage directory (registry:2 layout): exact usage and GC offline",
    )
    offline.add_argument(
        "--config",
        metavar="FILE",
        help="the registry's config.yml (filesystem or s3 storage, as registry garbage-collect "
        "FILE reads it): exact usage and GC offline on that storage",
    )
    parser.set_defaults(handler=run_connect)


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
    from embedded_registry.offline import DEFAULT_GRACE_PERIOD, collect_garbage, storage_usage
    from tui.data.backends import gc_view_from_report, usage_view_from_report

    label = label or f"storage directory {root}"
    grace = DEFAULT_GRACE_PERIOD if grace_period is None else grace_period

    async def usage() -> UsageView:
        report = await asyncio.to_thread(functools.partial(storage_usage, root, grace_period=grace))
        return usage_view_from_report(report, source=label)

    async def collect(dry_run: bool, delete_untagged: bool) -> GcView:
        run = functools.partial(
            collect_garbage,
            root,
            dry_run=dry_run,
            delete_untagged=delete_untagged,
            grace_period=grace,
        )
        return gc_view_from_report(await asyncio.to_thread(run))

    return CallableBackend(label, usage, collect)


def config_backend(path: str) -> StorageBackend:
    """Usage and GC on the storage a Distribution config.yml names: a filesystem root (as
    ``--storage DIR``) or a bucket through the storage driver, off the event loop.

    A real collection on a bucket is refused while a registry writes to it (an upload session
    written within the last minute), and waits for the GC lease other collectors hold, as
    ``regtui gc --config FILE`` does: both come back as one sentence in a notification.
    """
    from embedded_registry.offline import ConfigError, load_config

    try:
        config = load_config(Path(path), require_storage=True)
    except ConfigError as error:
        raise CommandError(f"{path}: {error}", EXIT_USAGE) from None
    grace = config.storage.gc_grace_period
    if config.storage.s3 is None:
        root = _check_storage(str(config.storage.root))
        return directory_backend(root, grace_period=grace, label=f"storage of {path} ({root})")
    return _driver_backend(config, path, grace)


def _driver_backend(config: Any, path: str, grace: float) -> StorageBackend:
    from embedded_registry.offline import (
        GcBusy,
        RegistryActive,
        StorageUnavailable,
        collect_garbage_configured,
        storage_location,
        usage_configured,
    )
    from tui.data.backends import gc_view_from_report, usage_view_from_report
    from tui.data.storage import StorageSourceError

    label = f"storage of {path} ({storage_location(config)})"

    async def usage() -> UsageView:
        try:
            report = await asyncio.to_thread(usage_configured, config, grace_period=grace)
        except StorageUnavailable as error:
            raise StorageSourceError(str(error)) from None
        return usage_view_from_report(report, source=label)

    async def collect(dry_run: bool, delete_untagged: bool) -> GcView:
        run = functools.partial(
            collect_garbage_configured,
            config,
            refuse_if_active=not dry_run,
            dry_run=dry_run,
            delete_untagged=delete_untagged,
            grace_period=grace,
        )
        try:
            report = await asyncio.to_thread(run)
        except RegistryActive as error:
            raise StorageSourceError(
                f"A registry seems to be writing to the bucket ({error}): nothing was removed. "
                "Make it read-only, or collect through the bundled registry's own GC."
            ) from None
        except (StorageUnavailable, GcBusy) as error:
            raise StorageSourceError(str(error)) from None
        return gc_view_from_report(report)

    return CallableBackend(
        label,
        usage,
        collect,
        gc_activity="collecting on the bucket (marking manifests, then sweeping)",
    )


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
        backend: StorageBackend | None = None
        if args.storage:
            backend = directory_backend(_check_storage(args.storage))
        elif args.config:
            backend = config_backend(args.config)
        settings = AppSettings(
            registry=args.host,
            username=args.username,
            password=password,
            insecure=args.insecure,
            ca_cert=args.ca_cert,
            read_only=args.read_only,
            timeout=args.timeout,
        )
        app = make_app(settings, storage=backend)
        run_app(app)
    except CommandError as error:
        fail(str(error))
        return error.code
    except RegistryClientError as error:
        fail(str(error))
        return EXIT_ERROR
    return exit_code(app)


# -- the app's lifecycle ----------------------------------------------------------------------

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
"""Signals that end the app the way ``q`` does: the terminal is restored, children stopped."""


def run_app(app: App[Any]) -> None:
    """Run ``app`` until it quits or one of ``STOP_SIGNALS`` arrives.

    Python's default for SIGTERM and SIGHUP ends the process at once: the terminal stays in
    the alternate screen with raw input and ``serve --local``'s registry keeps running. Here
    each of them asks the app to exit, so Textual restores the terminal and the callers'
    ``with`` blocks stop what they started. The exit code becomes 128 + the signal number,
    as a shell reports a process ended by it.
    """

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def stop(signum: int) -> None:
            app.exit(return_code=128 + signum)

        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop, signum)
        try:
            await app.run_async()
        finally:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)

    asyncio.run(main())


def exit_code(app: App[Any]) -> int:
    """0 after ``q``, 128 + N after signal N, 1 after an error the app ended on."""
    code = app.return_code
    if code in (None, 0):
        return EXIT_OK
    return code if code is not None and code > 128 else EXIT_ERROR


# -- serve --local ----------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the kernel sends the child SIGTERM when the app's process dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalRegistry:
    """The bundled registry as a child process on a free loopback port."""

    def __init__(self, process: subprocess.Popen[str], port: int, root: Path) -> None:
        self.process = process
        self.port = port
        self.root = root
        self.stopping = threading.Event()
        """Set when the parent stops the child on purpose (its exit is then no news)."""

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
        preexec_fn=_die_with_parent,  # before the app starts its threads
    )
    registry: LocalRegistry | None = None
    try:
        assert process.stdout is not None
        port = _read_port(process.stdout, process)
        registry = LocalRegistry(process, port, root)
        yield registry
    finally:
        if registry is not None:
            registry.stopping.set()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _log_warnings(log_path: Path, offset: int) -> list[str]:
    """The WARNING lines the child logged since ``offset`` (its config warnings among them)."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            log.seek(offset)
            lines = log.read().splitlines()
    except OSError:
        return []
    return [line.split(": ", 1)[-1] for line in lines if " WARNING " in line]


def watch_child(
    app: App[Any],
    registry: LocalRegistry,
    log_path: Path,
    log_offset: int,
    *,
    poll: float = 0.05,
) -> threading.Thread:
    """Tell the running app what the child registry says: its warnings, and its death.

    A daemon thread: once the app runs, every warning the child logged at start (an unknown
    config key, a recovered GC) becomes a notification; if the child then exits while the app
    still runs, the app says so with the exit status and where the log is.
    """

    def notify(message: str, severity: str, timeout: float) -> None:
        if app.is_running:
            app.call_from_thread(app.notify, message, severity=severity, timeout=timeout)  # type: ignore[arg-type]

    def shows_a_screen() -> bool:
        # A notification sent before the app's first screen is mounted (its toast rack
        # composed) is never drawn.
        return app.is_running and len(app.screen_stack) > 1 and app.screen.is_mounted

    def run() -> None:
        while not shows_a_screen():
            if registry.stopping.wait(poll):
                return
        for warning in _log_warnings(log_path, log_offset):
            notify(f"Registry: {warning}  (log: {log_path})", "warning", 15)
        code = registry.process.wait()
        if registry.stopping.is_set():
            return
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        notify(
            f"The bundled registry stopped ({how}); nothing more can be read or deleted. "
            f"Its log: {log_path}",
            "error",
            3600,
        )

    thread = threading.Thread(target=run, name="regtui-child-watch", daemon=True)
    thread.start()
    return thread


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
    from embedded_registry.offline import ConfigError, load_config

    if getattr(args, "root", None):
        return Path(args.root)
    config_path = getattr(args, "config", None)
    try:
        return load_config(Path(config_path) if config_path else None).storage.root
    except ConfigError as error:
        raise CommandError(str(error)) from None


def local_log_path(root: Path) -> Path:
    """Where ``serve --local`` keeps its registry's log: beside the storage root."""
    return root.parent / f"{root.name}-serve-local.log"


def run_local(args: argparse.Namespace) -> int:
    """``regtui serve --local [--demo] [--root DIR]``: a private registry with the app on it."""
    from tui.app import AppSettings, make_app

    read_only = bool(getattr(args, "read_only", False))
    try:
        root = _local_root(args)
    except CommandError as error:
        fail(str(error))
        return error.code
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        fail(f"cannot use {root} as the registry's storage: {error.strerror}")
        return EXIT_ERROR
    extra_args: list[str] = []
    if getattr(args, "config", None):
        extra_args += ["--config", str(args.config)]
    if read_only:
        extra_args.append("--read-only")
    log_path = local_log_path(root)
    try:
        with (
            open(log_path, "a", encoding="utf-8") as log,
            local_registry(root, log=log, extra_args=extra_args) as registry,
        ):
            log_offset = log.tell()
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
            watch_child(app, registry, log_path, log_offset)
            run_app(app)
    except CommandError as error:
        fail(f"{error} (server log: {log_path})")
        return error.code
    except RegistryClientError as error:
        fail(str(error))
        return EXIT_ERROR
    return exit_code(app)
