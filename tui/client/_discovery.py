"""Discovery: ping, catalog and tags lists, paginated as real registries do it.

Pagination (``n``/``last`` and ``Link: <...>; rel="next"``) is bounded against any registry:
it stops with a :class:`~tui.client.errors.MalformedResponseError` on a ``Link`` that comes back
to a page already read (a looping ``last``), on a page that brings no new name, and after
``max_pages`` pages (10,000 by default). Each page is at most 16 MiB of JSON, parsed in a worker
thread when large. A ``Link`` to another origin is followed without credentials (see
:mod:`tui.client.auth`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx

from tui.client._base import ClientBase
from tui.client._limits import MAX_JSON_BYTES, loads_json, off_loop
from tui.client.errors import (
    CatalogUnsupportedError,
    MalformedResponseError,
)

if TYPE_CHECKING:
    from tui.client.models import PingResult

__all__ = ["Discovery"]


class Discovery(ClientBase):
    """``/v2/``, the catalog and tag lists, with ``n``/``last`` pagination and ``Link``."""

    async def ping(self) -> PingResult:
        """``GET /v2/``: is this a registry, and do our credentials (if any) work?"""
        from tui.client.models import PingResult  # models load where they are used

        response = await self.request("GET", "/v2/")
        if response.status_code not in (200, 401):
            if response.status_code == 404:
                raise MalformedResponseError(
                    f"{self.host} does not serve the registry API (/v2/ answered 404)",
                    response=response,
                )
            self.raise_for_status(response, "/v2/")
            raise MalformedResponseError(f"{self.host} answered {response.status_code} to /v2/")
        return PingResult(
            base_url=self.base_url,
            status_code=response.status_code,
            api_version=response.headers.get("Docker-Distribution-API-Version"),
            auth_scheme=self.auth.scheme,
            authenticated=response.status_code == 200,
        )

    async def _pages(self, path: str, what: str) -> AsyncIterator[httpx.Response]:
        """Every page of a paginated answer, following ``Link: <...>; rel="next"``, bounded:
        a ``Link`` back to a page already read, or past ``max_pages`` pages, is an error.
        Pages answered with an error status are given to the caller as they are (the walk ends
        there)."""
        seen_urls: set[str] = set()
        await self._ensure_base_url()
        url: str | None = self._url(path)
        while url is not None:
            if url in seen_urls:
                raise MalformedResponseError(
                    f"The registry's pagination of {what} loops back to a page already read "
                    f"({url}); regtui stopped there"
                )
            if len(seen_urls) >= self.max_pages:
                raise MalformedResponseError(
                    f"The registry's pagination of {what} goes on past {self.max_pages:,} pages; "
                    "regtui stopped there"
                )
            seen_urls.add(url)
            response = await self._send(
                "GET", url, stream=False, max_bytes=MAX_JSON_BYTES, what=f"a page of {what}"
            )
            yield response
            if response.status_code >= 400:
                return
            next_url = _next_link(response)
            url = None
            if next_url:
                joined = response.url.join(next_url)
                self.check_followable(joined, what)
                url = str(joined)

    async def _paginate(self, path: str, key: str, what: str) -> AsyncIterator[list[str]]:
        seen_items: set[str] = set()
        async for response in self._pages(path, what):
            if what == "the catalog":
                self._raise_catalog(response)
            self.raise_for_status(response, what)
            data = await off_loop(
                len(response.content), loads_json, response.content, f"list of {what}"
            )
            if not isinstance(data, dict):
                raise MalformedResponseError(f"The list of {what} is not a JSON object")
            items = data.get(key) or []
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise MalformedResponseError(f"The list of {what} is not a list of names")
            fresh = [item for item in items if item not in seen_items]
            seen_items.update(fresh)
            if _next_link(response) is not None and not fresh and items:
                raise MalformedResponseError(
                    f"The registry's pagination of {what} repeats the same page; regtui "
                    "stopped there"
                )
            if fresh:
                yield fresh

    def _raise_catalog(self, response: httpx.Response) -> None:
        status = response.status_code
        refused = status in (401, 403) and self.auth.scheme == "bearer"
        if status == 404 or (refused and not self.auth.token_error):
            # (a failed token request is reported as what it is, by raise_for_status)
            raise CatalogUnsupportedError(
                f"{self.host} does not list its repositories (no catalog for this account); "
                "name a repository instead",
                response=response,
            )

    def iter_catalog(self, page_size: int = 1000) -> AsyncIterator[list[str]]:
        """Pages of repository names, following ``Link``; registries that ignore ``n`` work."""
        return self._paginate(f"/v2/_catalog?n={page_size}", "repositories", "the catalog")

    async def catalog(self) -> list[str]:
        return [name async for page in self.iter_catalog() for name in page]

    def iter_tags(self, repo: str, page_size: int = 1000) -> AsyncIterator[list[str]]:
        return self._paginate(f"/v2/{repo}/tags/list?n={page_size}", "tags", f"tags of {repo}")

    async def list_tags(self, repo: str) -> list[str]:
        return [tag async for page in self.iter_tags(repo) for tag in page]


def _next_link(response: httpx.Response) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header (RFC 8288), if any."""
    for header in response.headers.get_list("Link"):
        for part in header.split(","):
            target, _, params = part.partition(";")
            target = target.strip()
            if target.startswith("<") and target.endswith(">") and "next" in params:
                rels = [
                    p.split("=", 1)[1].strip().strip('"')
                    for p in params.split(";")
                    if p.strip().startswith("rel=")
                ]
                if any("next" in rel.split() for rel in rels):
                    return target[1:-1]
    return None
