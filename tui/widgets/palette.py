"""Command palette entries (ctrl+p): the screens' actions by name."""

from __future__ import annotations

from functools import partial
from typing import cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.host import RegtuiHost


class RegtuiCommands(Provider):
    """Open the storage screen, open a repository by name, show help, and every active key."""

    def _commands(self) -> list[tuple[str, str, object]]:
        app = cast("RegtuiHost", self.app)
        screen = self.screen
        commands: list[tuple[str, str, object]] = [
            ("Storage & GC", "Disk usage and garbage collection", app.open_storage),
            ("Open repository…", "Open a repository by name", app.open_by_name),
            ("Find tags or digest…", "Search every repository", app.open_find),
            ("Help", "Keys of this screen", app.action_help),
        ]
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description or not active.enabled:
                continue
            action = binding.action
            commands.append(
                (
                    binding.description,
                    f"key {binding.key}",
                    partial(self.app.run_action, action, screen),
                )
            )
        seen: set[str] = set()
        unique = []
        for name, help_text, callback in commands:
            if name not in seen:
                seen.add(name)
                unique.append((name, help_text, callback))
        return unique

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)  # type: ignore[arg-type]
