"""The explorer app: settings, the ``make_app`` factory, and app-wide error reporting.

Screens live in ``tui.screens``, dialogs in ``tui.dialogs``, widgets in ``tui.widgets``. This
module only wires them: it owns the registry client (opened on mount, closed on unmount), the
storage backend, and the single path that turns a failed worker into a notification.
"""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState

from tui.client import RegistryClient
from tui.data.errors import describe_error
from tui.data.storage import StorageBackend
from tui.host import RegtuiHost
from tui.logic.escape import visible
from tui.settings import AppSettings
from tui.widgets.palette import RegtuiCommands

__all__ = ["AppSettings", "RegtuiApp", "make_app"]


class RegtuiApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "regtui"
    COMMANDS = App.COMMANDS | {RegtuiCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("ctrl+p", "command_palette", "Commands", id="palette", show=False),
    ]

    def __init__(
        self,
        settings: AppSettings,
        *,
        storage: StorageBackend | None = None,
        client: RegistryClient | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self._explicit_storage = storage
        self._storage: StorageBackend | None = storage
        self._client = client
        self._owns_client = client is None
        self.deletion_refused: str | None = None
        self.scrub_broken: dict[str, tuple[str, ...]] = {}
        self.sub_title = settings.title or settings.registry

    # -- the registry client ------------------------------------------------------------------
    @property
    def client(self) -> RegistryClient:
        if self._client is None:
            raise RuntimeError("the registry client is not open yet")
        return self._client

    @property
    def read_only(self) -> bool:
        return self.settings.read_only

    def pull_host(self) -> str:
        """The registry as ``docker pull`` wants it: no scheme, no trailing slash."""
        host = self.settings.pull_host or self.settings.registry
        for scheme in ("https://", "http://"):
            host = host.removeprefix(scheme)
        return host.rstrip("/")

    async def on_mount(self) -> None:
        if self._client is None:
            s = self.settings
            self._client = RegistryClient(
                s.registry,
                username=s.username,
                password=s.password,
                insecure=s.insecure,
                ca_cert=s.ca_cert,
                timeout=s.timeout,
                max_concurrency=s.max_concurrency,
                fast_after=0,  # the app walks the registry: aiohttp's pool from the start
            )
            await self._client.__aenter__()
        # Screens load when first opened, never with this module: all of them at once add about
        # half a second to the start (no import circle is behind it: see pyproject.toml).
        from tui.screens.registry import RegistryScreen

        await self.push_screen(RegistryScreen())

    async def on_unmount(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.__aexit__(None, None, None)
            self._client = None

    # -- storage ------------------------------------------------------------------------------
    async def storage_backend(self) -> StorageBackend:
        """The storage source: ``--storage DIR``, the bundled registry's extension, or estimate."""
        if self._storage is None:
            from tui.data.backends import detect_backend

            self._storage = await detect_backend(self.client)
        return self._storage

    # -- errors -------------------------------------------------------------------------------
    def report_error(self, error: BaseException, *, context: str | None = None) -> None:
        """The one place where failures become notifications (the app keeps running)."""
        title, message = describe_error(error)
        if context:
            message = f"{context}: {message}"
        self.log.error(title, message)
        # The message may quote a registry's text: no markup, control characters escaped.
        self.notify(
            visible(message), title=visible(title), severity="error", timeout=8, markup=False
        )

    def handle_worker_state(self, worker: Worker[Any], state: WorkerState) -> None:
        if state is WorkerState.ERROR and worker.error is not None:
            self.report_error(worker.error)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.handle_worker_state(event.worker, event.state)

    # -- actions ------------------------------------------------------------------------------
    def open_storage(self) -> None:
        from tui.screens.storage import StorageScreen

        if not isinstance(self.screen, StorageScreen):
            self.push_screen(StorageScreen())

    def open_by_name(self) -> None:
        from tui.screens.registry import RegistryScreen

        registry_screen = next(
            (screen for screen in self.screen_stack if isinstance(screen, RegistryScreen)), None
        )
        if registry_screen is not None:
            registry_screen.ask_repository()

    def open_find(self) -> None:
        from tui.screens.find import FindScreen

        if not isinstance(self.screen, FindScreen):
            self.push_screen(FindScreen())

    def action_help(self) -> None:
        from tui.dialogs.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))


def make_app(
    settings: AppSettings,
    *,
    storage: StorageBackend | None = None,
    client: RegistryClient | None = None,
) -> RegtuiApp:
    """The app, as the CLI and the tests build it."""
    return RegtuiApp(settings, storage=storage, client=client)


def _as_host(app: RegtuiApp) -> RegtuiHost:
    """Never called: mypy checks here that the app gives screens all that ``RegtuiHost`` says."""
    return app
