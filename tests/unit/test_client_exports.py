"""``tui.client`` exports its models and estimates lazily (start-up of the scripting commands):
every exported name still resolves, each lazy name is its module's own, and nothing lazy is
left out of ``__all__``."""

from __future__ import annotations

import importlib

import tui.client as client


def test_every_exported_name_resolves() -> None:
    missing = [name for name in client.__all__ if getattr(client, name, None) is None]
    assert not missing


def test_lazy_names_are_their_modules_own_and_exported() -> None:
    for name, module_name in client._LAZY.items():
        module = importlib.import_module(f"tui.client.{module_name}")
        assert name in getattr(module, "__all__", dir(module)), (name, module_name)
        assert getattr(client, name) is getattr(module, name)
        assert name in client.__all__, name
