"""``/v2/<name>/referrers/<digest>``: the OCI 1.1 referrers API, with ``artifactType``.

Answers come from a :class:`ReferrersIndex`: each repository's revisions are read once, then
only checked with a few ``stat`` calls per request (see ``storage/referrers.py``).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from embedded_registry import names
from embedded_registry.keys import STORAGE_KEY
from embedded_registry.mediatypes import OCI_INDEX
from embedded_registry.routes.common import repo_name, storage
from embedded_registry.storage import Storage
from embedded_registry.storage.referrers import ReferrersIndex

REFERRERS_KEY = web.AppKey("referrers_index", ReferrersIndex)


async def list_referrers(request: web.Request) -> web.Response:
    """An OCI index of the manifests whose ``subject`` is the digest (empty if none)."""
    name = repo_name(request)
    subject = names.check_digest(request.match_info["digest"])
    index = request.app.get(REFERRERS_KEY)
    if index is not None:  # the filesystem: revisions read once, then checked with stats
        descriptors = await asyncio.to_thread(index.referrers, name, subject)
    else:  # object storage: the driver
        descriptors = await storage(request).referrers(name, subject)
    headers = {"Content-Type": OCI_INDEX}
    artifact_type = request.query.get("artifactType")
    if artifact_type:
        descriptors = [d for d in descriptors if d.get("artifactType") == artifact_type]
        headers["OCI-Filters-Applied"] = "artifactType"
    body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), headers=headers)


def setup_routes(app: web.Application) -> None:
    store = app[STORAGE_KEY]
    if isinstance(store, Storage):
        app[REFERRERS_KEY] = ReferrersIndex(store.manifests)
    app.router.add_get("/v2/{name:.+}/referrers/{digest}", list_referrers)
