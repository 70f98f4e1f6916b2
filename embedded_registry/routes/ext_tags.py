"""``GET /v2/<name>/_regtui/tags``: tags with their push times, and every manifest revision.

What retention needs and the API cannot say: when each tag was pushed (the mtime of its
``current/link``), which manifests the repository holds that no tag names (revisions), and the
exact size of every blob each manifest keeps alive::

    {"name": "team/app",
     "tags": [{"tag": "v1", "digest": "sha256:…", "pushed": "2025-06-01T10:00:00Z",
               "immutable": "regtui.immutable[0] (…)" | null}],
     "manifests": [{"digest": "sha256:…", "pushed": "…", "created": "…" | null,
                    "blobs": [{"digest": "sha256:…", "size": 123}],   # itself, config, layers
                    "children": ["sha256:…"], "subject": "sha256:…" | null,
                    # what the app's row of a tag shows (ext_document.row_facts):
                    "mediaType": "…", "artifactType": "…" | null,
                    # an image manifest: declared config + layers, its config's platform
                    "size": 123, "config": "sha256:…", "configMediaType": "…",
                    "platform": "linux/amd64" | null,
                    # an index: each manifest it lists
                    "platforms": [{"digest": "sha256:…", "platform": "linux/arm64" | null}]}]}

Access is that of ``tags/list`` of the same repository (the auth middleware when auth is on,
anyone otherwise): it reveals the repository's tags and the digests, sizes and dates of the
manifests a puller may fetch by digest anyway, and nothing of the server's machine.

**Under the repository's own path**, beside ``tags/list``, so that a proxy's path rules for a
repository cover it too: behind nginx with ``location /v2/private/ { deny all; }``, the push times
of ``private/app`` are refused with its tags. (The endpoint used to be
``/v2/_regtui/ext/tags/<name>``, a path outside every repository's, which such a rule did not
cover; that path is no route any more: 404.) ``_regtui`` cannot be mistaken for part of a name:
the spec's path components match ``[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*``, so none starts with
``_``; and a tag or digest only ever follows ``/manifests/`` as one path segment, so
``/v2/<name>/_regtui/tags`` is no other route of the API for any valid ``<name>``.

The storage reads it through its driver (``DriverStorage.describe_repository``: file times on
the filesystem, LastModified on S3); ``regtui prune --root`` reads a stopped registry's directory
the same way.
"""

from __future__ import annotations

import json

from aiohttp import web

from embedded_registry import errors, govern, names
from embedded_registry.routes.common import json_response, storage

PATH = "/v2/{name:.+}/_regtui/tags"


async def repository_tags(request: web.Request) -> web.Response:
    """``GET /v2/<name>/_regtui/tags``: see the module docstring."""
    name = names.check_name(request.match_info["name"])
    # The storage reads the document through its driver (file times or LastModified).
    document = await storage(request).describe_repository(name)
    if document is None:
        raise errors.name_unknown(name)
    govern.mark_immutable(request, document)  # regtui.immutable: each tag's rule, or null
    return json_response(json.dumps(document, separators=(",", ":")).encode())


def setup_routes(app: web.Application) -> None:
    app.router.add_get(PATH, repository_tags)
