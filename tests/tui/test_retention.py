"""The Retention screen (Pilot): rules typed live, the plan highlighted, confirm, apply, GC.

A bundled registry with many tags and shared digests (the fixture of ``regtui prune``'s tests);
the result is checked through the registry's API and against its storage report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static, TextArea

from tests.client.test_prune import GOING, STAYING, expected_freed, push_all
from tests.helpers.servers import RunningRegistry
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.helpers import notifications
from tests.tui.test_keys_80x24 import assert_keys_in_view
from tests.tui.test_layout import assert_in_view
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.help import HelpScreen
from tui.dialogs.prompt import PromptDialog
from tui.logic.retention import Policy
from tui.screens.registry import RegistryScreen
from tui.screens.retention import DEFAULT_RULES, RetentionScreen, parse_rules
from tui.widgets.usage_panel import UsagePanel

RULES = "keep_newest: 2\nkeep_semver: '>=1.2 <2'\n"


def rendered(widget: Static) -> str:
    return str(widget.render())


async def test_write_rules_see_the_plan_apply_and_see_the_storage_after(
    registry: RunningRegistry, app_for: AppFactory
) -> None:
    fixture = push_all(registry.url)
    app = app_for(registry)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RegistryScreen))
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, RetentionScreen))
        screen = app.screen
        assert isinstance(screen, RetentionScreen)
        await wait_for(pilot, lambda: screen.plan is not None)

        # a broken rule says so and leaves the last good plan in place
        rules = screen.query_one(TextArea)
        rules.load_text("keep_newest: [")
        await wait_for(pilot, lambda: screen.policy_error is not None)
        assert "not YAML" in rendered(screen.query_one("#retention-rules-error", Static))

        rules.load_text(RULES)
        await wait_for(
            pilot,
            lambda: (
                screen.policy_error is None
                and screen.plan is not None
                and screen.plan.policy.keep_newest == 2
            ),
        )
        plan = screen.plan
        assert plan is not None and plan.exact
        assert plan.bytes_freed == expected_freed(fixture)
        table = screen.query_one(DataTable)
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
        going = {row[2] for row in rows if row[1] == "team/app" and row[0].startswith("✗")}
        kept = {row[2] for row in rows if row[1] == "team/app" and row[0] == "keep"}
        assert (going, kept) == (GOING, STAYING)
        summary = rendered(screen.query_one("#retention-summary", Static))
        assert "exact" in summary and "team/app" in summary

        screen.focus_main()
        await pilot.press("c")  # GC mode: registry's grace -> now (grace 0)
        assert screen.gc_mode == "now"
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        body = rendered(app.screen.query_one("#confirm-body", Static))
        assert fixture.digest("team/app", "old") in body
        assert "untag  latest (only the tag goes: v2.1 keeps the image)" in body
        await pilot.press("n")  # cancelled: nothing changes
        await wait_for(pilot, lambda: app.screen is screen)
        async with httpx.AsyncClient(base_url=registry.url) as http:
            tags = (await http.get("/v2/team/app/tags/list")).json()["tags"]
        assert set(tags) == GOING | STAYING

        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.after is not None, seconds=30)
        assert screen.before is not None and screen.after is not None
        assert screen.before.total_bytes - screen.after.total_bytes == expected_freed(fixture)
        assert not [o for o in screen.outcomes if o.error]
        after_panel = str(screen.query_one("#retention-after", UsagePanel).render())
        assert after_panel  # the before/after panels are shown
        async with httpx.AsyncClient(base_url=registry.url) as http:
            tags = (await http.get("/v2/team/app/tags/list")).json()["tags"]
        assert set(tags) == STAYING
        # the registry is read again: the plan is now empty
        await wait_for(pilot, lambda: screen.plan is not None and screen.plan.is_empty)


async def test_load_a_policy_file_and_read_only_never_applies(
    registry: RunningRegistry, app_for: AppFactory, tmp_path: Path
) -> None:
    push_all(registry.url)
    policy = tmp_path / "retention.yml"
    policy.write_text("keep_tags: ['v2\\..*', 'dev']\nexclude: ['team/other']\n")
    broken = tmp_path / "broken.yml"
    broken.write_text("keep_newst: 3\n")
    app = app_for(registry, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RegistryScreen))
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, RetentionScreen))
        screen = app.screen
        assert isinstance(screen, RetentionScreen)
        await wait_for(pilot, lambda: screen.plan is not None)
        for path in (broken, policy):
            await pilot.press("l")
            await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog))
            app.screen.query_one(Input).value = str(path)
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen is screen)
        await wait_for(pilot, lambda: any("keep_newst" in n for n in notifications(app)))
        await wait_for(pilot, lambda: screen.plan is not None and screen.plan.skipped != ())
        plan = screen.plan
        assert plan is not None and plan.skipped == ("team/other",)
        (app_plan,) = plan.repos
        assert {d.tag for d in app_plan.staying} == {"v2.0", "v2.1", "dev"}
        assert screen.query_one(TextArea).text == policy.read_text()
        # read-only: apply is not offered, and the key does nothing
        assert screen.check_action("apply", ()) is False
        await pilot.press("a")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmDialog)
    async with httpx.AsyncClient(base_url=registry.url) as http:
        tags = (await http.get("/v2/team/app/tags/list")).json()["tags"]
    assert set(tags) == GOING | STAYING


async def test_enter_reviews_a_repository_with_the_plans_tags_marked(
    registry: RunningRegistry, app_for: AppFactory
) -> None:
    """The plan on the repository view: enter on a row opens that repository with the tags the
    plan removes marked (red), ready for review; nothing is deleted by looking."""
    from tui.screens.repository import RepositoryScreen

    push_all(registry.url)
    app = app_for(registry)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RegistryScreen))
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, RetentionScreen))
        screen = app.screen
        assert isinstance(screen, RetentionScreen)
        screen.query_one(TextArea).load_text(RULES)
        await wait_for(
            pilot,
            lambda: screen.plan is not None and screen.plan.policy.keep_newest == 2,
        )
        table = screen.query_one(DataTable)
        row = next(i for i in range(table.row_count) if str(table.get_row_at(i)[1]) == "team/app")
        screen.focus_main()
        table.move_cursor(row=row)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RepositoryScreen))
        repository = app.screen
        assert isinstance(repository, RepositoryScreen)
        assert repository.repository == "team/app"
        await wait_for(pilot, lambda: repository.details_done)
        assert repository.marked == GOING
        async with httpx.AsyncClient(base_url=registry.url) as http:
            tags = (await http.get("/v2/team/app/tags/list")).json()["tags"]
        assert set(tags) == GOING | STAYING


async def open_retention(pilot: Pilot[None]) -> RetentionScreen:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, RegistryScreen))
    await pilot.press("p")
    await wait_for(pilot, lambda: isinstance(app.screen, RetentionScreen))
    screen = app.screen
    assert isinstance(screen, RetentionScreen)
    await wait_for(pilot, lambda: screen.plan is not None)
    await pilot.pause(0.1)
    return screen


def why_cells(table: DataTable[Any]) -> list[str]:
    column = list(table.columns).index(why_key(table))
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


def why_key(table: DataTable[Any]) -> Any:
    return next(key for key, column in table.columns.items() if str(column.label) == "Why")


async def test_at_80x24_the_first_plan_deletes_nothing_and_the_rules_fit(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    """What a user who just pressed p sees: every tag kept, each with its reason; the rules
    editor wide enough that no line wraps (a commented rule never looks active); the keys
    that work, in the footer and in help."""
    app = app_for(demo_registry, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_retention(pilot)
        plan = screen.plan
        assert plan is not None and plan.is_empty
        decisions = [d for repo in plan.repos for d in repo.decisions]
        assert len(decisions) == 34 and not [d for d in decisions if d.goes]
        table = screen.query_one(DataTable)
        assert set(why_cells(table)) == {"no delete rule is enabled"}
        summary = rendered(screen.query_one("#retention-summary", Static))
        assert summary.startswith("Nothing goes: no rule is enabled.")

        rules = screen.query_one(TextArea)
        assert_in_view(rules)
        assert rules.text == DEFAULT_RULES
        assert not rules.soft_wrap
        width = rules.scrollable_content_region.width
        assert all(len(line) < width for line in DEFAULT_RULES.splitlines()), width
        # Every rule in the editor is commented out: the text is a policy of no rules.
        assert parse_rules(rules.text) == Policy()

        await assert_keys_in_view(pilot, screen, ["question_mark", "ctrl+s", "e", "c", "l"])
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        keys = {entry.key: entry.description for entry in help_screen.entries}
        assert keys["ctrl+s"] == "Plan" and keys["e"] == "Edit the rules" and "p" not in keys
        about = " ".join((RetentionScreen.__doc__ or "").split())
        assert "ctrl+s re-plans" in about and "p plans" not in about
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)

        # A rule with an error: one full-width line of its own, under the rules and the plan.
        rules.load_text("keep_newest: five\n")
        await wait_for(pilot, lambda: screen.policy_error is not None)
        await pilot.pause(0.1)
        error = screen.query_one("#retention-rules-error", Static)
        assert_in_view(error)
        assert rendered(error) == "✗ Rules: keep_newest must be a whole number"
        assert error.region.width == 80 and error.region.height == 1
        assert error.region.y >= max(rules.region.bottom, table.region.bottom)

        # Keep rules alone delete the rest, and the plan says so on every tag that goes.
        rules.load_text("keep_newest: 5\n")
        await wait_for(pilot, lambda: screen.policy_error is None and not screen.plan.is_empty)  # type: ignore[union-attr]
        assert not error.display
        going = {why for why in why_cells(table) if not why.startswith("keep_newest")}
        assert going == {"not kept (keep rules alone delete the rest)"}
        assert "keep rules alone: every tag they do not keep goes" in rendered(
            screen.query_one("#retention-summary", Static)
        )


async def test_at_120_columns_the_why_column_is_whole_on_screen(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_retention(pilot)
        screen.query_one(TextArea).load_text("keep_newest: 5\nkeep_tags: ['latest', 'stable']\n")
        await wait_for(pilot, lambda: screen.plan is not None and not screen.plan.is_empty)
        await pilot.pause(0.2)
        table = screen.query_one(DataTable)
        whys = why_cells(table)
        assert "keep_newest 5; keep_tags latest" in whys
        columns = list(table.columns.values())
        index = list(table.columns).index(why_key(table))
        start = sum(column.get_render_width(table) for column in columns[:index])
        width = columns[index].get_render_width(table)
        assert width >= max(len(why) for why in whys)
        assert start + width <= table.scrollable_content_region.width
        assert table.scroll_x == 0
