"""The du-style storage panel: totals, then per repository (total, exclusive, shared)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from tui.data.storage import GcView, UsageChange, UsageView
from tui.logic.fmt import human_size, signed_size

MAX_REPO_ROWS = 200


def usage_table(view: UsageView, title: str) -> Table:
    heading = f"{title} — {view.source}"
    if view.estimate:
        heading += " (ESTIMATE from manifests)"
    table = Table(title=heading, title_justify="left", expand=True, show_edge=False)
    table.add_column("Repository")
    table.add_column("Total", justify="right")
    table.add_column("Exclusive", justify="right")
    table.add_column("Shared", justify="right")
    for repo in view.repos[:MAX_REPO_ROWS]:
        table.add_row(
            repo.name,
            human_size(repo.total_bytes),
            human_size(repo.exclusive_bytes),
            human_size(repo.shared_bytes),
        )
    if len(view.repos) > MAX_REPO_ROWS:
        table.add_row(Text(f"… {len(view.repos) - MAX_REPO_ROWS} more", style="dim"), "", "", "")
    table.add_section()
    table.add_row(Text("Total on disk", style="bold"), human_size(view.total_bytes), "", "")
    table.add_row("Blobs", f"{view.blob_count:,}", "", "")
    reclaimable = (
        human_size(view.reclaimable_bytes) if view.reclaimable_bytes is not None else "unknown"
    )
    table.add_row(Text("Reclaimable by GC", style="bold yellow"), reclaimable, "", "")
    table.add_row(
        "Uploads in progress", f"{view.upload_count} · {human_size(view.upload_bytes)}", "", ""
    )
    return table


def gc_table(view: GcView) -> Table:
    verb = "Would remove" if view.dry_run else "Removed"
    table = Table(
        title=f"{verb}: {len(view.items)} item(s), {human_size(view.freed_bytes)}",
        title_justify="left",
        expand=True,
        show_edge=False,
    )
    table.add_column("Kind")
    table.add_column("What")
    table.add_column("Repository")
    table.add_column("Size", justify="right")
    for item in view.items[:MAX_REPO_ROWS]:
        table.add_row(item.kind, item.name, item.repo or "", human_size(item.size))
    if len(view.items) > MAX_REPO_ROWS:
        table.add_row("…", f"{len(view.items) - MAX_REPO_ROWS} more", "", "")
    return table


def changes_table(changes: list[UsageChange]) -> Table:
    table = Table(
        title="After GC — what changed", title_justify="left", expand=True, show_edge=False
    )
    table.add_column("")
    table.add_column("Before", justify="right")
    table.add_column("After", justify="right")
    table.add_column("Change", justify="right")
    for change in changes:
        if change.name == "blobs (count)":
            cells = (f"{change.before:,}", f"{change.after:,}", f"{change.delta:+,}")
        else:
            cells = (human_size(change.before), human_size(change.after), signed_size(change.delta))
        style = "green" if change.delta < 0 else ("red" if change.delta > 0 else "dim")
        table.add_row(change.name, cells[0], cells[1], Text(cells[2], style=style))
    return table


class UsagePanel(Static):
    """A ``Static`` holding one of the tables above."""
