"""The "Copy to…" and retag flows of the repository and image screens (run in their workers):
the dialog, the copy with its progress on the screen's status line, and the result as a
notification; a failure is a notification too, and the screen stays."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tui.client import RegistryClientError
from tui.data.copy import CopyProgress
from tui.data.copy_io import CopyError
from tui.data.copy_to import copy_from, retag
from tui.dialogs.copy import CopyDialog
from tui.dialogs.prompt import PromptDialog
from tui.logic.copy_plan import PlatformError
from tui.logic.escape import visible_markup
from tui.logic.fmt import human_size, short_digest

if TYPE_CHECKING:
    from tui.screens.base import RegtuiScreen

__all__ = ["copy_flow", "retag_flow"]


def _host(screen: RegtuiScreen) -> str:
    host = screen.regtui.settings.registry
    for scheme in ("https://", "http://"):
        host = host.removeprefix(scheme)
    return host


def _progress_line(state: CopyProgress) -> str:
    if state.stage == "reading":
        return "Copy: reading manifests…"
    if state.stage == "blobs":
        return (
            f"Copy: {human_size(state.bytes_done)} of {human_size(state.bytes_total)}, "
            f"blobs {state.blobs_done}/{state.blobs_total} "
            f"({state.skipped} there, {state.mounted} mounted)"
        )
    return "Copy: writing manifests…"


async def copy_flow(
    screen: RegtuiScreen,
    repository: str,
    reference: str,
    tag: str | None,
    set_status: Callable[[str], None],
) -> bool:
    """Ask where, copy, tell. ``set_status`` shows a line on the screen (its status bar).
    Returns whether something was copied."""
    shown = f"{_host(screen)}/{repository}" + (f":{tag}" if tag else f"@{reference}")
    request = await screen.app.push_screen_wait(CopyDialog(shown, shown))
    if request is None:
        screen.notify("Nothing was copied.")
        return False

    def progress(state: CopyProgress) -> None:
        set_status(_progress_line(state))

    try:
        result = await copy_from(
            screen.regtui.client, repository, reference, request, tag=tag, progress=progress
        )
    except (RegistryClientError, CopyError, PlatformError, OSError) as error:
        screen.notify(visible_markup(f"Copy failed: {error}"), severity="error", timeout=10)
        return False
    tags = ", ".join(result.tags) or "by digest"
    screen.notify(
        visible_markup(
            f"Copied to {request.destination} ({tags}) {short_digest(result.digest)}: "
            f"{result.blobs_copied} blobs copied ({human_size(result.bytes_copied)}), "
            f"{result.blobs_skipped} already there, {result.blobs_mounted} mounted"
        ),
        title="Copied",
        timeout=10,
    )
    return True


async def retag_flow(screen: RegtuiScreen, repository: str, reference: str) -> list[str]:
    """Ask for new tags (space-separated) and put the manifest under each; the tags added."""
    text = await screen.app.push_screen_wait(
        PromptDialog(
            "New tags",
            f"Tags to put on {repository}@{short_digest(reference)} too (space-separated); "
            "no data moves.",
            placeholder="v1.2.3 stable",
        )
    )
    if not text:
        screen.notify("Nothing was tagged.")
        return []
    tags = text.split()
    try:
        digest = await retag(screen.regtui.client, repository, reference, tags)
    except (RegistryClientError, ValueError) as error:
        screen.notify(visible_markup(f"Retag failed: {error}"), severity="error", timeout=10)
        return []
    screen.notify(
        visible_markup(f"Tagged {short_digest(digest)} as {', '.join(tags)}"), title="Tagged"
    )
    return tags
