"""A forwarding HTTP proxy on a real loopback socket that runs a hook before chosen requests.

Tests put it between a client and a real registry to make another writer act at an exact
point of the client's work: ``hook(method, path)`` runs (in the proxy's thread, before the
request is forwarded) and may push, tag or delete on the registry directly. The client's Host
header is forwarded, so registries that build absolute upload URLs send them to the proxy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

Hook = Callable[[str, str], None]
"""``hook(method, path)``; raising :class:`DropRequest` closes the connection instead of
forwarding the request (what a client killed mid-request leaves: nothing arrives)."""
Rewrite = Callable[[str, str, bytes], bytes]
"""``rewrite(method, path, body)``: the answer's body as the client gets it (a lying registry)."""
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class DropRequest(Exception):
    """Raised by a hook: the request is not forwarded, its connection is closed."""


@contextmanager
def hook_proxy(
    upstream: str,
    hook: Hook,
    rewrite: Rewrite | None = None,
    forward_path: Callable[[str, str], str] | None = None,
) -> Iterator[str]:
    """Serve a proxy to ``upstream`` (a base URL); yields its ``host:port``. ``rewrite``, when
    given, changes each answer's body on its way back; ``forward_path(method, path)`` the path
    (and query) forwarded."""
    client = httpx.Client(base_url=upstream, timeout=60)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def _forward(self) -> None:
            with lock:  # one hook at a time, in the order requests arrive
                try:
                    hook(self.command, self.path)
                except DropRequest:
                    self.close_connection = True
                    return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Host"] = self.headers.get("Host", "")
            path = forward_path(self.command, self.path) if forward_path else self.path
            response = client.request(self.command, path, content=body, headers=headers)
            self.send_response(response.status_code)
            for key, value in response.headers.multi_items():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-encoding":
                    self.send_header(key, value)
            content = response.content
            if rewrite is not None and self.command != "HEAD":
                content = rewrite(self.command, self.path, content)
            if self.command == "HEAD":
                self.send_header("Content-Length", response.headers.get("Content-Length", "0"))
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        client.close()
