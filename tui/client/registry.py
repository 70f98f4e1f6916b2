"""``RegistryClient``: an async client for the OCI distribution API (and Docker's v2 API).

Use it as a context manager::

    async with RegistryClient("127.0.0.1:5000") as client:
        for repo in await client.catalog():
            print(repo, await client.list_tags(repo))

Every failure is a :class:`~tui.client.errors.RegistryClientError`.
"""

from __future__ import annotations

from tui.client._content import BlobStream
from tui.client._deletion import Deletion
from tui.client._digests import compute_digest, manifest_digest
from tui.client._uploads import Uploads

__all__ = ["BlobStream", "RegistryClient", "compute_digest", "manifest_digest"]


class RegistryClient(Deletion, Uploads):
    """An authenticated, retrying, concurrency-bounded client of one registry.

    Built in layers, one private module each: ``_base`` (transport, TLS, auth, retries, errors),
    ``_discovery`` (ping, catalog, tags), ``_content`` (manifests and blobs), ``_deletion``
    (delete by digest, untag) and ``_uploads`` (streamed blob uploads, mounts).
    """
