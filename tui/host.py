"""What screens, dialogs and widgets may ask of the app, as a ``Protocol``.

Screens are pushed by the app and the app module imports them; were a screen to import
``tui.app`` back (even only for a type), the two would form an import circle. Screens type
``self.app`` as :class:`RegtuiHost` instead; ``tui.app.RegtuiApp`` implements it (mypy checks
that in ``tui/app.py``) and an import-linter contract in ``pyproject.toml`` keeps ``tui.app``
out of every module below it.
"""

from __future__ import annotations

from typing import Any, Protocol

from textual.worker import Worker, WorkerState

from tui.client import RegistryClient
from tui.data.storage import StorageBackend
from tui.settings import AppSettings


class RegtuiHost(Protocol):
    """The regtui app as its screens see it."""

    @property
    def settings(self) -> AppSettings: ...

    @property
    def client(self) -> RegistryClient:
        """The open registry client (raises before the app is mounted)."""
        ...

    @property
    def read_only(self) -> bool:
        """``--read-only``: nothing is deleted or collected."""
        ...

    deletion_refused: str | None
    """Why this registry refuses deletion (it answered 405), once it has; else ``None``."""

    scrub_broken: dict[str, tuple[str, ...]]
    """The images the last scrub found broken, by repository (the catalog marks them)."""

    def pull_host(self) -> str:
        """The registry as ``docker pull`` wants it."""
        ...

    async def storage_backend(self) -> StorageBackend:
        """Where the Storage screen reads usage and runs GC."""
        ...

    def report_error(self, error: BaseException, *, context: str | None = None) -> None:
        """Turn a failure into a notification (the app keeps running)."""
        ...

    def handle_worker_state(self, worker: Worker[Any], state: WorkerState) -> None:
        """The one path from a failed worker to a notification."""
        ...

    def open_storage(self) -> None: ...

    def open_by_name(self) -> None: ...

    def open_find(self) -> None:
        """The search across repositories (the command palette's "Find tags or digest…")."""
        ...

    def action_help(self) -> None: ...
