"""``/v2/<name>/referrers/<digest>``: the OCI 1.1 referrers API, with ``artifactType``.

The storage answers (:meth:`RegistryStorage.referrers`). On the filesystem driver each
repository's revisions are read once, then only checked with a few ``stat`` calls per request
(``storage/referrers.py``); on object storage, from the driver's listing.
"""

from __future__ import annotations

import json

from aiohttp import web

from embedded_registry import names
from embedded_registry.mediatypes import OCI_INDEX
from embedded_registry.routes.common import repo_name, storage


async def list_referrers(request: web.Request) -> web.Response:
    """An OCI index of the manifests whose ``subject`` is the digest (empty if none)."""
    name = repo_name(request)
    subject = names.check_digest(request.match_info["digest"])
    descriptors = await storage(request).referrers(name, subject)
    headers = {"Content-Type": OCI_INDEX}
    artifact_type = request.query.get("artifactType")
    if artifact_type:
        descriptors = [d for d in descriptors if d.get("artifactType") == artifact_type]
        headers["OCI-Filters-Applied"] = "artifactType"
    body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), headers=headers)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v2/{name:.+}/referrers/{digest}", list_referrers)
