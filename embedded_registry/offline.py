"""The one way into the server's code for regtui's offline commands (``gc``, ``du``, ``prune``
and ``scrub`` with ``--root`` or ``--config``, ``connect --root``): the names they use, each
imported from its module on first use.

Importing this module loads nothing of the server: ``regtui tags`` or ``regtui --help`` pay
for none of it, and ``regtui du --root`` loads usage's modules, not GC's or the S3 driver's. A
test holds ``tui`` to this module and :mod:`embedded_registry.cli` (``regtui serve``).
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads both)

if TYPE_CHECKING:
    from typing import Any


_MODULES = {
    "config": ("Config", "ConfigError", "load_config"),
    "gc": ("DEFAULT_GRACE_PERIOD", "GcReport", "RegistryActive", "collect_garbage", "scan_root"),
    "gc.collect": ("collect_garbage_configured", "storage_location"),
    "gc.offline": ("writer_activity",),
    "gc.scrub": ("DEFAULT_JOBS", "ScrubProgress", "ScrubReport", "scrub_on"),
    "govern": ("Governor",),
    "govern_rules": ("GovernConfig", "quota_usage"),
    "retention": ("apply_plan", "read_state"),
    "storage.driver.base": ("StorageDriverError",),
    "storage.driver.filesystem": ("FilesystemDriver",),
    "storage.factory": ("StorageUnavailable", "driver_storage", "open_storage"),
    "storage.lease": ("GcBusy",),
    "storage.paths": ("V2_PREFIX",),
    "storage.store": ("DriverStorage",),
    "usage": ("UsageReport", "storage_usage", "usage_configured"),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"embedded_registry.{module}"), name)
    globals()[name] = value
    return value
