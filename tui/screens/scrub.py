"""Scrub: every blob checked against its digest, every manifest's references and every link,
on the bundled registry (it runs the scrub and streams its progress); the problems in a table
with the images they break, and those images marked in the catalog."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

from tui.data.scrub import ScrubView, run_scrub, scrub_unavailable_reason
from tui.dialogs.confirm import ConfirmDialog
from tui.logic.escape import visible
from tui.logic.fmt import count_of, human_size
from tui.logic.scrub import progress_fraction, progress_text
from tui.screens.base import RegtuiScreen, guarded
from tui.widgets.table import Table

COLUMNS = ("Level", "Problem", "Object", "Breaks", "Detail")


class ScrubScreen(RegtuiScreen):
    """s scrubs again; x repairs (after a confirmation): corrupt blobs quarantined, links to
    nothing removed, never anything else."""

    BINDINGS = [
        *guarded("s", "scrub", "Scrub", id="scrub-run"),
        *guarded("x", "repair", "Repair", id="scrub-repair"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view: ScrubView | None = None
        self.running = False
        self.unavailable: str | None = "Still finding out what this registry offers."

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Scrub: reading every blob and link…", id="scrub-status", classes="heading")
        yield ProgressBar(id="scrub-progress", total=1.0, show_eta=False)
        yield Table(id="scrub-problems", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Scrub"
        self.sub_title = self.regtui.settings.title or self.regtui.settings.registry
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        table.focus()
        self.start(repair=False)

    def focus_main(self) -> None:
        self.query_one(DataTable).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter":
            return False
        return super().check_action(action, parameters)

    def unavailable_reason(self, action: str) -> str | None:
        if action not in ("scrub", "repair"):
            return None
        if self.unavailable is not None:
            return self.unavailable
        if self.running:
            return "A scrub is running: wait for it to finish."
        if action == "repair" and self.is_read_only():
            return "Read-only mode (regtui was started with --read-only): scrub only."
        return None

    def _status(self, text: str) -> None:
        self.query_one("#scrub-status", Static).update(visible(text))

    def on_progress(self, progress: dict[str, Any]) -> None:
        self.query_one(ProgressBar).update(progress=progress_fraction(progress))
        self._status(f"Scrubbing… {progress_text(progress)}")

    def start(self, *, repair: bool) -> None:
        self.running = True
        self.refresh_bindings()
        self.query_one(ProgressBar).update(progress=0.0)
        self.scrub_worker(repair)

    @work(exclusive=True, group="scrub", exit_on_error=False)
    async def scrub_worker(self, repair: bool) -> None:
        try:
            backend = await self.regtui.storage_backend()
            self.unavailable = scrub_unavailable_reason(backend)
            if self.unavailable is not None:
                self._status(f"Scrub unavailable: {self.unavailable}")
                return
            self._status("Repairing…" if repair else "Scrubbing…")
            view = await run_scrub(self.regtui.client, repair=repair, progress=self.on_progress)
        except Exception:
            self._status("The scrub failed (s to try again).")
            raise
        finally:
            self.running = False
            self.refresh_bindings()
        self.show(view)

    def show(self, view: ScrubView) -> None:
        self.view = view
        self.regtui.scrub_broken = dict(view.broken)
        self.query_one(ProgressBar).update(progress=1.0)
        table = self.query_one(DataTable)
        table.clear()
        for row in view.rows:
            target = (row.digest or "").split(":", 1)[-1][:12] or "-"
            detail = row.message + (f" — {row.repaired}" if row.repaired else "")
            table.add_row(
                visible(row.severity),
                visible(row.kind),
                visible(target),
                visible(", ".join(row.images) or "-"),
                visible(detail),
            )
        errors = sum(1 for row in view.rows if row.severity == "error")
        checked = (
            f"{count_of(view.blobs, 'blob')} ({human_size(view.bytes)}), "
            f"{count_of(view.repositories, 'repository')} checked"
        )
        if errors:
            images = sum(len(group) for group in view.broken.values())
            verdict = (
                f"{count_of(errors, 'problem')}, {count_of(images, 'broken image')} "
                "(marked in the catalog)"
            )
        else:
            verdict = "clean"
        what = "Repaired" if view.repair else "Scrubbed"
        self._status(f"{what}: {verdict} · {checked} · s again · x repair")

    def action_scrub(self) -> None:
        self.start(repair=False)

    def action_repair(self) -> None:
        def confirmed(ok: bool | None) -> None:
            if ok:
                self.start(repair=True)

        self.app.push_screen(
            ConfirmDialog(
                "Repair the storage?",
                "Every corrupt blob moves into quarantine (kept, never deleted: the next push "
                "of it stores it again) and every link to nothing is removed. Nothing else "
                "changes.",
                confirm_label="Repair",
            ),
            confirmed,
        )
