"""A tiny Bearer token issuer for Distribution's ``auth: token`` (test only, 127.0.0.1).

It signs RS256 JWTs with a fresh key. Distribution 2.8 trusts the certificate given as
``rootcertbundle`` and finds the signing key by the JWT header's ``kid``, which must be the
libtrust key ID of that public key: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits,
base32 without padding, in groups of four joined by ``:``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SERVICE = "regtui-test-registry"
ISSUER = "regtui-test-issuer"


def libtrust_key_id(public_key: rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


@dataclass
class TokenIssuer:
    url: str
    cert_path: Path
    users: dict[str, str]
    anonymous_actions: list[str]
    requests: list[dict[str, list[str]]] = field(default_factory=list)

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def distribution_auth(self) -> dict[str, object]:
        return {
            "token": {
                "realm": self.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(self.cert_path),
            }
        }


def _key_and_cert(directory: Path) -> tuple[rsa.RSAPrivateKey, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regtui test token issuer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "token-issuer.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert_path


@contextmanager
def token_issuer(
    directory: Path,
    *,
    users: dict[str, str],
    anonymous_actions: tuple[str, ...] = (),
) -> Iterator[TokenIssuer]:
    """Serve ``GET /token``: users get every action they ask for, anonymous ones only some."""
    key, cert_path = _key_and_cert(directory)
    key_id = libtrust_key_id(key.public_key())
    state = TokenIssuer("", cert_path, users, list(anonymous_actions))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            del format, args

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            state.requests.append(query)
            user = self._user()
            if user is False:
                self._send(401, {"details": "incorrect username or password"})
                return
            access = []
            for scope in query.get("scope", []):
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                wanted = actions.split(",")
                granted = wanted if user else [a for a in wanted if a in state.anonymous_actions]
                access.append({"type": kind, "name": name, "actions": granted})
            now = int(time.time())
            claims = {
                "iss": ISSUER,
                "sub": user or "",
                "aud": query.get("service", [""])[0],
                "exp": now + 300,
                "nbf": now - 10,
                "iat": now,
                "jti": str(uuid.uuid4()),
                "access": access,
            }
            token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": key_id})
            self._send(200, {"token": token, "expires_in": 300})

        def _user(self) -> str | bool | None:
            header = self.headers.get("Authorization")
            if not header:
                return None
            user, _, password = base64.b64decode(header.split(" ", 1)[1]).decode().partition(":")
            return user if state.users.get(user) == password else False

        def _send(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
