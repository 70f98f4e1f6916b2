"""The du-style storage panel: totals, then per repository (total, exclusive, shared)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from tui.data.storage import (
    BLOBS_LINE,
    GRACE_LINE,
    RECLAIMABLE_LINE,
    RECLAIMABLE_UNTAGGED_LINE,
    TOTAL_LINE,
    UPLOADS_LINE,
    GcView,
    UsageChange,
    UsageView,
    compare_usage,
    grace_label,
    grace_note,
)
from tui.logic.escape import visible, visible_markup
from tui.logic.fmt import count_of, human_size, signed_size

MAX_REPO_ROWS = 200
NAME_WIDTH = 64
"""Repository names wrap past this many cells; wide terminals leave the rest empty rather
than stretching the columns apart."""
DIGEST_WIDTH = 19
"""``sha256:`` and the first 12 hex digits, as ``docker images`` shows them."""


def short_name(name: str) -> str:
    """A GC item's name: digests cut to :data:`DIGEST_WIDTH` cells, paths kept."""
    if ":" in name and len(name) > DIGEST_WIDTH and "/" not in name:
        return name[:DIGEST_WIDTH] + "…"
    return name


def _count_text(count: int | None, noun: str) -> str:
    return "" if count is None else count_of(count, noun)


def _reclaimable(size: int | None, blobs: int | None) -> str:
    if size is None:
        return "unknown"
    text = human_size(size)
    return f"{text} · {_count_text(blobs, 'blob')}" if blobs is not None else text


def _delta_text(change: UsageChange | None) -> Text:
    if change is None:
        return Text("")
    if change.unit == "count":
        text = f"{change.delta:+,}" if change.delta else "0"
    else:
        text = signed_size(change.delta)
    if change.repository and change.after == 0 and change.before:
        text += " (gone)"
    style = "green" if change.delta < 0 else ("red" if change.delta > 0 else "dim")
    return Text(text, style=style)


def usage_table(view: UsageView, title: str, *, before: UsageView | None = None) -> Table:
    """The du-style panel. With ``before``, a Change column shows each line's delta, and
    repositories that are gone stay listed with their loss."""
    heading = f"{title} — {view.source}"
    if view.estimate:
        heading += " (ESTIMATE from manifests)"
    changes = {
        (change.repository, change.name): change
        for change in (compare_usage(before, view) if before is not None else [])
    }

    def delta(name: str, *, repository: bool = False) -> list[Text]:
        return [_delta_text(changes.get((repository, name)))] if before is not None else []

    table = Table(title=heading, title_justify="left", show_edge=False)
    table.add_column("Repository", max_width=NAME_WIDTH)
    table.add_column("Total", justify="right")
    table.add_column("Exclusive", justify="right")
    table.add_column("Shared", justify="right")
    if before is not None:
        table.add_column("Change", justify="right")
    names = [repo.name for repo in view.repos]
    if before is not None:
        present = set(names)
        names += sorted(repo.name for repo in before.repos if repo.name not in present)
    by_name = {repo.name: repo for repo in view.repos}
    for name in names[:MAX_REPO_ROWS]:
        repo = by_name.get(name)
        sizes = ["—", "—", "—"]
        if repo is not None:
            sizes = [human_size(repo.total_bytes), human_size(repo.exclusive_bytes)]
            sizes.append(human_size(repo.shared_bytes))
        table.add_row(visible_markup(name), *sizes, *delta(name, repository=True))
    if len(names) > MAX_REPO_ROWS:
        more = Text(f"… {len(names) - MAX_REPO_ROWS} more", style="dim")
        table.add_row(more, "", "", "", *([""] if before is not None else []))
    table.add_section()
    pad = ["", ""]
    table.add_row(
        Text(TOTAL_LINE, style="bold"), human_size(view.total_bytes), *pad, *delta(TOTAL_LINE)
    )
    table.add_row(BLOBS_LINE, f"{view.blob_count:,}", *pad, *delta(BLOBS_LINE))
    table.add_row(
        Text(RECLAIMABLE_LINE, style="bold yellow"),
        _reclaimable(view.reclaimable_bytes, view.reclaimable_blobs),
        *pad,
        *delta(RECLAIMABLE_LINE),
    )
    if not view.estimate:
        table.add_row(
            Text(RECLAIMABLE_UNTAGGED_LINE, style="bold yellow"),
            _reclaimable(view.reclaimable_untagged_bytes, view.reclaimable_untagged_blobs),
            *pad,
            *delta(RECLAIMABLE_UNTAGGED_LINE),
        )
    if (
        view.protected_young_bytes
        or view.protected_young_blobs
        or GRACE_LINE in {name for repository, name in changes if not repository}
    ):
        label = Text(grace_label(view.grace_period), style="cyan")
        label.append(f"\n({grace_note(view.grace_period)})", style="dim")
        table.add_row(
            label,
            _reclaimable(view.protected_young_bytes, view.protected_young_blobs),
            *pad,
            *delta(GRACE_LINE),
        )
    table.add_row(
        UPLOADS_LINE,
        f"{view.upload_count} · {human_size(view.upload_bytes)}",
        *pad,
        *delta(UPLOADS_LINE),
    )
    if view.quotas:
        table.add_section()
    for quota in view.quotas:
        style = "bold red" if quota.fraction >= 1 else "yellow" if quota.fraction >= 0.9 else ""
        table.add_row(
            Text(f"quota {quota.scope} ", style="cyan") + Text(visible(quota.name)),
            Text(quota.line, style=style),
            *pad,
            *([""] if before is not None else []),
        )
    return table


def gc_table(view: GcView) -> Table:
    verb = "Would remove" if view.dry_run else "Removed"
    title = f"{verb}: {count_of(len(view.items), 'item')}, {human_size(view.freed_bytes)}"
    if view.blob_bytes is not None and view.blob_bytes != view.freed_bytes:
        title += f" ({human_size(view.blob_bytes)} of blob data, the rest links)"
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("Kind", no_wrap=True)
    table.add_column("What", no_wrap=True)
    table.add_column("Repository", max_width=NAME_WIDTH)
    table.add_column("Size", justify="right")
    for item in view.items[:MAX_REPO_ROWS]:
        name, repo = visible_markup(short_name(item.name)), visible_markup(item.repo or "")
        table.add_row(item.kind, name, repo, human_size(item.size))
    if len(view.items) > MAX_REPO_ROWS:
        table.add_row("…", f"{len(view.items) - MAX_REPO_ROWS} more", "", "")
    if not view.items:
        table.add_row(Text("—", style="dim"), Text("nothing to remove", style="dim"), "", "")
    return table


class UsagePanel(Static):
    """A ``Static`` holding one of the tables above (``table`` keeps it for reading back)."""

    table: Table | None = None

    def update(self, content: Any = "", *, layout: bool = True) -> None:
        self.table = content if isinstance(content, Table) else None
        super().update(content, layout=layout)
