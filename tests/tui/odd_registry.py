"""A deliberately broken registry on a real loopback socket, for the app's failure paths.

It has no catalog (404), a repository whose manifest is not JSON, and a repository that
answers too slowly. Real registries do each of these; the app must survive all of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BROKEN_MANIFEST = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"'
SLOW_SECONDS = 5.0


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        del format, args

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if content_type.startswith("application/vnd.oci"):
            self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())
        self.end_headers()
        if self.command != "HEAD":
            # The client may have given up already (the timeout test): that is the point.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
        self._send(status, body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/v2/":
            self._send(200, b"{}")
        elif path == "/v2/_catalog":
            self._error(404, "UNSUPPORTED")
        elif path == "/v2/broken/tags/list":
            self._send(200, json.dumps({"name": "broken", "tags": ["bad"]}).encode())
        elif path == "/v2/broken/manifests/bad":
            self._send(200, BROKEN_MANIFEST, "application/vnd.oci.image.manifest.v1+json")
        elif path.startswith("/v2/slow/"):
            time.sleep(SLOW_SECONDS)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._send(200, json.dumps({"name": "slow", "tags": []}).encode())
        else:
            self._error(404, "NAME_UNKNOWN")


@contextmanager
def odd_registry() -> Iterator[str]:
    """Yields ``127.0.0.1:PORT`` of the broken registry."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
