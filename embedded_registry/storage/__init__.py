"""Storage in CNCF Distribution's layout (see ``paths.py``).

The registry serves every storage through :class:`embedded_registry.storage.store.
DriverStorage` on a :class:`~embedded_registry.storage.driver.base.StorageDriver` (the
filesystem driver or the s3 driver; :func:`embedded_registry.storage.factory.open_storage`).
There is no second store: ``regtui prune --root`` opens the same ``DriverStorage`` on the
filesystem driver of a stopped registry's directory, and GC and usage read through the driver
too (:mod:`embedded_registry.gc`).
"""

from __future__ import annotations

from embedded_registry.storage.api import RegistryStorage, ServedBlob
from embedded_registry.storage.paths import Layout

__all__ = [
    "Layout",
    "RegistryStorage",
    "ServedBlob",
]
