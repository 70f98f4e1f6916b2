"""Retention: write or load the rules, see the plan as you type, apply it, see the storage after.

The registry is read once (tags, dates, the manifests and their blobs); every change of the
rules re-evaluates the plan from that state at once, without a request. Applying asks first with
the full list of what goes, then deletes or untags digest by digest, and, where the registry can
collect its garbage (the bundled one), collects it and shows the storage before and after.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Static, TextArea

from tui.data.retention import ApplyOutcome, apply_plan, read_policy_file, read_state
from tui.data.storage import UsageView
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.prompt import PromptDialog
from tui.logic.escape import visible, visible_markup
from tui.logic.fmt import compact_time, count_of, human_size, short_digest
from tui.logic.retention import (
    ActionKind,
    Policy,
    PolicyError,
    PrunePlan,
    RegistryState,
    RepoPlan,
    evaluate,
    format_duration,
    policy_from_mapping,
    why_untag_only,
)
from tui.screens.base import RegtuiScreen
from tui.screens.repository import RepositoryScreen
from tui.widgets.table import Table
from tui.widgets.usage_panel import UsagePanel, usage_table

DEFAULT_RULES = """\
# Nothing goes until you enable a rule:
# delete the # in front of one.
# Keep rules alone delete every tag
# they do not keep; with
# delete_older_than, only older ones.
# keep_newest: 5
# keep_tags: ['latest', 'stable']
# keep_semver: ['>=1.2 <2']
# pulled_within: 30d
# keep_newest_pulled: 3
# delete_older_than: 30d
# delete_untagged_older_than: 7d
# include: ['team/*']
# exclude: []
by: created  # or: pushed
"""
"""The rules a new screen starts with: every rule commented out, so the first plan deletes
nothing and each rule the user enables shows its own effect. No line is wider than
:data:`RULES_WIDTH` minus the editor's frame (4 cells), and the editor never wraps a line: a
commented rule never continues on a line that looks active."""
RULES_WIDTH = 44
STACK_BELOW = 150
"""Narrower terminals put the rules above the plan (full width); wider ones side by side."""
REEVALUATE_DELAY = 0.3
MAX_CONFIRM_LINES = 60
GC_MODES = ("off", "registry", "now")
GC_MODE_TEXT = {
    "off": "no garbage collection afterwards",
    "registry": "then GC with the registry's grace period",
    "now": "then GC with no grace period (only while nothing is being pushed)",
}


_BY_DATE = re.compile(r"^(keep_newest \d+) \(by (created|pushed)\)$")
WHY_TEXT = {
    "no keep rule matched": "not kept (keep rules alone delete the rest)",
    "no delete rule": "no delete rule is enabled",
}


def why_text(reasons: tuple[str, ...]) -> str:
    """The plan's Why column: the rules that decided, in words a reader of the rules knows."""
    # "(by created)" is the date column's title already: one reason fits 120 columns whole.
    return "; ".join(WHY_TEXT.get(reason, _BY_DATE.sub(r"\1", reason)) for reason in reasons)


def plan_summary(plan: PrunePlan, gc_mode: str) -> str:
    """The line under the plan: what goes, what it frees, and what ``a`` would do."""
    policy = plan.policy
    if plan.is_empty:
        if not policy.deletes_tags and policy.delete_untagged_older_than is None:
            return (
                "Nothing goes: no rule is enabled. Delete the # before a rule "
                "(keep_newest: 5, delete_older_than: 30d) to see what it would remove."
            )
        return "Nothing goes: the enabled rules keep every tag here."
    going = sum(len(r.going) for r in plan.repos)
    deleted = sum(len(r.deleted_digests) for r in plan.repos)
    per_repo = ", ".join(
        f"{r.name} {human_size(r.bytes_freed)}" for r in plan.repos if r.bytes_freed
    )
    label = "exact" if plan.exact else "ESTIMATE"
    summary = (
        f"{count_of(going, 'tag')} {'goes' if going == 1 else 'go'}, "
        f"{count_of(deleted, 'manifest')} deleted · frees "
        f"{human_size(plan.bytes_freed)} ({label})"
    )
    if per_repo:
        summary += f": {per_repo}"
    if plan.skipped:
        summary += f" · {count_of(len(plan.skipped), 'repository')} out of scope"
    if policy.delete_older_than is None and policy.has_keep_rule:
        summary += " · keep rules alone: every tag they do not keep goes"
    return summary + f" · a applies, {GC_MODE_TEXT[gc_mode]} (c changes it)"


def parse_rules(text: str) -> Policy:
    """The policy a YAML text describes (:class:`PolicyError` with one line otherwise)."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"not YAML: {' '.join(str(exc).split())}") from None
    return policy_from_mapping(doc)


def describe_plan(plan: PrunePlan) -> str:
    """The confirmation text: every repository, digest and tag that goes."""
    lines: list[str] = []
    for repo in plan.repos:
        if repo.is_empty:
            continue
        lines.append(f"{repo.name} (frees {human_size(repo.bytes_freed)})")
        for action in repo.actions:
            if action.kind is ActionKind.DELETE_MANIFEST:
                lines.append(f"  delete {action.digest}")
                lines.append(f"      tags: {', '.join(action.tags)}")
            else:
                why = why_untag_only(action.kept_siblings)
                lines.append(f"  untag  {', '.join(action.tags)} ({why})")
        for untagged in repo.untagged:
            lines.append(f"  delete untagged {untagged.digest}")
    if len(lines) > MAX_CONFIRM_LINES:
        hidden = len(lines) - MAX_CONFIRM_LINES
        lines = [*lines[:MAX_CONFIRM_LINES], f"… and {hidden} more lines (see the plan)"]
    label = "exact" if plan.exact else "estimated"
    return "\n".join(
        [*lines, "", f"Frees {human_size(plan.bytes_freed)} ({label}) once garbage is collected."]
    )


class RetentionScreen(RegtuiScreen):
    """The retention rules (above the plan, or beside it in a wide terminal) and the plan they
    make: the plan follows your typing. e edits the rules (esc leaves them), ctrl+s re-plans at
    once, a applies after a confirmation, c changes what happens after applying (GC), l loads
    a policy file, r reads the registry again, enter reviews a repository's tags."""

    BINDINGS = [
        Binding("ctrl+s", "plan", "Plan", id="retention-plan", priority=True),
        Binding("e", "edit", "Edit", id="retention-edit", tooltip="Edit the rules"),
        Binding("a", "apply", "Apply", id="retention-apply"),
        Binding("c", "cycle_gc", "GC mode", id="retention-gc"),
        Binding("l", "load", "Load", id="retention-load", tooltip="Load a policy file"),
        Binding("r", "reload", "Re-read", id="retention-reload", show=False),
    ]

    def __init__(self, rules: str = DEFAULT_RULES) -> None:
        super().__init__()
        self.rules = rules
        self.state: RegistryState | None = None
        self.plan: PrunePlan | None = None
        self.policy_error: str | None = None
        self.gc_mode = "registry"
        self.before: UsageView | None = None
        self.after: UsageView | None = None
        self.outcomes: list[ApplyOutcome] = []
        self.busy = False
        self._timer: Timer | None = None
        self._by = "created"

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="retention-main"):
            yield TextArea(
                self.rules,
                language=None,
                soft_wrap=False,
                id="retention-rules",
                tab_behavior="focus",
            )
            yield Table(id="retention-plan", cursor_type="row", zebra_stripes=True)
        # Its own line, full width, under both: an error never squeezes into the rules' column.
        yield Static("", id="retention-rules-error", classes="error-text")
        yield Static("", id="retention-summary")
        with VerticalScroll(id="retention-storage"):
            yield UsagePanel("", id="retention-before")
            yield UsagePanel("", id="retention-after")
        yield Static("Reading the registry…", id="retention-status", classes="status")
        yield Footer()

    DEFAULT_CSS = f"""
    #retention-main {{ height: 1fr; }}
    #retention-rules {{ width: {RULES_WIDTH}; height: 1fr; }}
    #retention-plan {{ width: 1fr; height: 1fr; }}
    RetentionScreen.-stacked #retention-main {{ layout: vertical; }}
    RetentionScreen.-stacked #retention-rules {{ width: 1fr; height: 9; }}
    #retention-rules-error {{ height: auto; max-height: 3; color: $error; padding: 0 1;
                             display: none; }}
    #retention-rules-error.-shown {{ display: block; }}
    #retention-summary {{ height: auto; max-height: 3; padding: 0 1; }}
    #retention-storage {{ height: auto; max-height: 45%; display: none; }}
    """

    def on_mount(self) -> None:
        self.title = "Retention"
        self.sub_title = self.regtui.settings.title or self.regtui.settings.registry
        self._fit(self.app.size.width)
        self._columns("created")
        rules = self.query_one(TextArea)
        rules.border_title = "Rules · e edits, esc leaves"
        self.focus_main()
        self.read_registry()

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        self.set_class(width < STACK_BELOW, "-stacked")

    def _columns(self, by: str) -> None:
        """One date column, the one the rules decide by (``by:``): a narrow table stays readable."""
        table = self.query_one(DataTable)
        table.clear(columns=True)
        # Why before the tags on the same image: the reasons stay whole in 120 columns.
        table.add_columns(
            "", "Repository", "Tag", by.capitalize(), "Why", "Same image as", "Digest"
        )
        self._by = by

    def focus_main(self) -> None:
        self.query_one(DataTable).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter":
            return False
        if action == "apply":
            if self.is_read_only():
                return False
            if self.busy or self.plan is None or self.plan.is_empty:
                return None
        return super().check_action(action, parameters)

    def action_back(self) -> None:
        if isinstance(self.focused, TextArea):
            self.focus_main()
            return
        super().action_back()

    def _status(self, text: str) -> None:
        self.query_one("#retention-status", Static).update(text)

    # -- reading and planning -----------------------------------------------------------------
    @work(exclusive=True, group="retention-read", exit_on_error=False)
    async def read_registry(self) -> None:
        self.busy = True
        self.refresh_bindings()
        try:

            def progress(name: str, done: int, total: int) -> None:
                self._status(f"Reading the registry… {done}/{total} repositories ({name})")

            self.state = await read_state(self.regtui.client, progress=progress)
        finally:
            self.busy = False
        source = (
            "exact, push times known (from storage)"
            if self.state.exact
            else "estimated (manifests only: no push times, no untagged manifests)"
        )
        self._status(f"{count_of(len(self.state.repos), 'repository')} read · sizes {source}")
        self.evaluate_rules()

    @on(TextArea.Changed, "#retention-rules")
    def _rules_changed(self, event: TextArea.Changed) -> None:
        self.rules = event.text_area.text
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(REEVALUATE_DELAY, self.evaluate_rules)

    def evaluate_rules(self) -> None:
        """Re-plan from the state already read (no request): the plan follows the typing."""
        error = self.query_one("#retention-rules-error", Static)
        try:
            policy = parse_rules(self.rules)
        except PolicyError as exc:
            self.policy_error = str(exc)
            error.update(f"✗ Rules: {exc}")
            error.add_class("-shown")
            return
        self.policy_error = None
        error.update("")
        error.remove_class("-shown")
        if self.state is None:
            return
        self.plan = evaluate(policy, self.state, datetime.now(UTC))
        self._show_plan(self.plan)
        self.refresh_bindings()

    def _show_plan(self, plan: PrunePlan) -> None:
        table = self.query_one(DataTable)
        if plan.policy.by.value != self._by:
            self._columns(plan.policy.by.value)
        table.clear()
        for repo in plan.repos:
            self._add_repo_rows(table, repo)
        self.query_one("#retention-summary", Static).update(plan_summary(plan, self.gc_mode))

    def _add_repo_rows(self, table: DataTable[Text | str], repo: RepoPlan) -> None:
        now = datetime.now(UTC)
        by_pushed = self._by == "pushed"
        actions = {tag: a for a in repo.actions for tag in a.tags}
        for d in sorted(repo.decisions, key=lambda d: (not d.goes, d.tag)):
            if d.goes:
                action = actions.get(d.tag)
                kind = "delete" if action and action.kind is ActionKind.DELETE_MANIFEST else "untag"
                mark = Text(f"✗ {kind}", style="bold red")
                tag = Text(visible(d.tag), style="red")
            else:
                mark = Text("keep", style="green")
                tag = Text(visible(d.tag))
            date = compact_time(d.pushed if by_pushed else d.created, now)
            siblings = ", ".join(d.siblings)
            table.add_row(
                mark,
                visible_markup(repo.name),
                tag,
                date,
                visible_markup(why_text(d.reasons)),
                visible_markup(siblings),
                short_digest(d.digest),
            )
        for u in repo.untagged:
            limit = self.plan.policy.delete_untagged_older_than if self.plan else None
            older = f" {format_duration(limit)}" if limit is not None else " the limit"
            table.add_row(
                Text("✗ delete", style="bold red"),
                visible_markup(repo.name),
                Text("(untagged)", style="red"),
                compact_time(u.pushed, now) if by_pushed else "-",
                f"untagged, pushed longer ago than{older}",
                "",
                short_digest(u.digest),
            )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """enter on a row: that repository's tags, the ones this plan removes marked for
        review (D there deletes the marked after its own confirmation)."""
        if self.plan is None:
            return
        repository = str(event.data_table.get_row_at(event.cursor_row)[1])
        going = next((r.going for r in self.plan.repos if r.name == repository), ())
        self.app.push_screen(RepositoryScreen(repository, marked=[d.tag for d in going]))

    def action_plan(self) -> None:
        self.evaluate_rules()
        if self.policy_error is not None:
            self.notify(self.policy_error, title="Rules", severity="error")

    def action_edit(self) -> None:
        self.query_one(TextArea).focus()

    def action_reload(self) -> None:
        self.read_registry()

    def action_cycle_gc(self) -> None:
        self.gc_mode = GC_MODES[(GC_MODES.index(self.gc_mode) + 1) % len(GC_MODES)]
        self.notify(GC_MODE_TEXT[self.gc_mode].capitalize(), title="After applying")
        if self.plan is not None:
            self._show_plan(self.plan)

    @work(exclusive=True, group="retention-load", exit_on_error=False)
    async def action_load(self) -> None:
        path = await self.app.push_screen_wait(
            PromptDialog("Load retention rules", "Path of a YAML policy file:")
        )
        if not path:
            return
        try:
            text, _ = await asyncio.to_thread(read_policy_file, path)
        except PolicyError as exc:
            self.notify(str(exc), title="Rules", severity="error")
            return
        self.query_one(TextArea).load_text(text)
        self.rules = text
        self.evaluate_rules()

    # -- applying -------------------------------------------------------------------------------
    @work(exclusive=True, group="retention-apply", exit_on_error=False)
    async def action_apply(self) -> None:
        plan = self.plan
        if plan is None or plan.is_empty or self.busy or self.is_read_only():
            return
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog(
                "Apply these retention rules?", describe_plan(plan), confirm_label="Apply"
            )
        )
        if not confirmed:
            self.notify("Nothing was deleted.")
            return
        self.busy = True
        self.refresh_bindings()
        try:
            await self._apply(plan)
        finally:
            self.busy = False
            self.refresh_bindings()

    async def _apply(self, plan: PrunePlan) -> None:
        backend = await self.regtui.storage_backend()
        gc = self.gc_mode != "off" and backend.gc_available
        if gc:
            self.before = await backend.usage()

        def progress(name: str, done: int, total: int) -> None:
            self._status(f"Applying… {done}/{total} repositories ({name})")

        self.outcomes = await apply_plan(self.regtui.client, plan, progress=progress)
        failed = [o for o in self.outcomes if o.error]
        for outcome in failed[:3]:
            self.notify(
                f"{outcome.repo}@{short_digest(outcome.digest)}: {outcome.error}",
                title="Not applied",
                severity="error",
            )
        done = len(self.outcomes) - len(failed)
        self._status(f"Applied {count_of(done, 'action')}, {len(failed)} failed.")
        if gc and self.before is not None:
            self._status("Collecting garbage…")
            grace = 0.0 if self.gc_mode == "now" and backend.grace_selectable else None
            await backend.collect_garbage(dry_run=False, grace_period=grace)
            self.after = await backend.usage()
            before_panel = self.query_one("#retention-before", UsagePanel)
            before_panel.update(usage_table(self.before, "Before retention"))
            self.query_one("#retention-after", UsagePanel).update(
                usage_table(self.after, "After retention and GC", before=self.before)
            )
            self.query_one("#retention-storage").display = True
            freed = self.before.total_bytes - self.after.total_bytes
            self._status(
                f"Applied {count_of(done, 'action')}, {len(failed)} failed; "
                f"GC freed {human_size(freed)} "
                f"(the plan said {human_size(plan.bytes_freed)})."
            )
        elif self.gc_mode != "off":
            self._status(
                f"Applied {count_of(done, 'action')}, {len(failed)} failed. "
                f"{backend.gc_unavailable_reason or 'GC is not available here'}"
            )
        self.notify(f"Applied {count_of(done, 'action')}.", title="Retention")
        self.read_registry()
