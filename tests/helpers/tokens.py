"""A token server for Distribution's token auth, written for the tests: keys and certificates
made with ``cryptography``, JWTs signed with PyJWT, and an aiohttp app on loopback that answers
``GET /token?service=...&scope=...`` the way docker_auth and Harbor do (Basic credentials, the
granted access the intersection of what was asked and what the user may do).

(``tests/helpers/tls.py`` makes server certificates for TLS; these are token-signing keys,
RSA or EC, with the certificates and chains a ``rootcertbundle`` and an ``x5c`` header hold.)
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def new_key(kind: str = "rsa") -> PrivateKey:
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate(
    name: str,
    key: PrivateKey,
    *,
    issuer: tuple[x509.Certificate, PrivateKey] | None = None,
    ca: bool = False,
    days: int = 30,
) -> x509.Certificate:
    """A certificate for ``key``: self-signed, or signed by ``issuer`` (certificate, key);
    ``days`` < 0 makes one that expired that many days ago."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(minutes=5) if days > 0 else now + dt.timedelta(days=days - 1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def libtrust_kid(key: PrivateKey) -> str:
    """The key id docker_auth (and Distribution 2) put in ``kid``, computed here independently:
    base32 of the first 30 bytes of the SHA-256 of the DER public key, in groups of 4."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(text[i : i + 4] for i in range(0, 48, 4))


@dataclass
class Signer:
    """A signing key and how its tokens name it: ``kid`` or an ``x5c`` chain."""

    key: PrivateKey
    kid: str | None = None
    x5c: list[x509.Certificate] | None = None

    @property
    def algorithm(self) -> str:
        return "ES256" if isinstance(self.key, ec.EllipticCurvePrivateKey) else "RS256"

    def headers(self) -> dict[str, Any]:
        headers: dict[str, Any] = {}
        if self.kid is not None:
            headers["kid"] = self.kid
        if self.x5c is not None:
            headers["x5c"] = [
                base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
                for c in self.x5c
            ]
        return headers

    def token(
        self,
        *,
        issuer: str,
        audience: str | list[str],
        subject: str,
        access: list[dict[str, Any]],
        lifetime: float = 300,
        not_before: float | None = None,
        expires: float | None = None,
        issued_at: float | None = None,
        algorithm: str | None = None,
    ) -> str:
        now = time.time()
        claims: dict[str, Any] = {
            "iss": issuer,
            "sub": subject,
            "aud": audience,
            "exp": int(expires if expires is not None else now + lifetime),
            "nbf": int(not_before if not_before is not None else now - 1),
            "iat": int(issued_at if issued_at is not None else now),
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        return jwt.encode(
            claims, self.key, algorithm=algorithm or self.algorithm, headers=self.headers()
        )


def parse_scope(scope: str) -> dict[str, Any] | None:
    """``repository:team/app:pull,push`` -> an access entry (the last colon ends the name)."""
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
    return {"type": kind, "name": name, "actions": actions.split(",")}


@dataclass
class TokenServer:
    """The running token server: its realm, and what it was asked."""

    realm: str
    issuer: str
    service: str
    requests: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def token_server(
    signer: Signer,
    *,
    issuer: str,
    service: str,
    users: Mapping[str, str],
    grants: Mapping[str, Mapping[str, list[str]]],
) -> Iterator[TokenServer]:
    """Serve tokens on 127.0.0.1 from a thread: ``users`` maps names to passwords, ``grants``
    maps a user to ``{"repository:NAME" or "registry:catalog": [actions]}`` (``*`` as NAME: any
    repository). A token holds what was asked, narrowed to what the user may do."""
    state = TokenServer(realm="", issuer=issuer, service=service)

    async def issue(request: web.Request) -> web.Response:
        account = ""
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if users.get(user) != password:
                return web.json_response({"details": "wrong credentials"}, status=401)
            account = user
        scopes = request.query.getall("scope", [])
        state.requests.append({"account": account, "scopes": scopes})
        allowed = grants.get(account, {})
        access = []
        for scope in scopes:
            for item in scope.split(" "):
                wanted = parse_scope(item)
                if wanted is None:
                    continue
                may = allowed.get(f"{wanted['type']}:{wanted['name']}") or allowed.get(
                    f"{wanted['type']}:*", []
                )
                actions = [a for a in wanted["actions"] if a in may or "*" in may]
                if actions:
                    access.append({**wanted, "actions": actions})
        token = signer.token(issuer=issuer, audience=service, subject=account, access=access)
        issued = dt.datetime.now(dt.UTC).isoformat()
        return web.json_response(
            {"token": token, "access_token": token, "expires_in": 300, "issued_at": issued}
        )

    app = web.Application()
    app.router.add_get("/token", issue)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(app)
    try:
        asyncio.run_coroutine_threadsafe(runner.setup(), loop).result(10)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        asyncio.run_coroutine_threadsafe(site.start(), loop).result(10)
        port = runner.addresses[0][1]
        state.realm = f"http://127.0.0.1:{port}/token"
        yield state
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextmanager
def distribution_token_service(
    directory: Path,
    grants: Mapping[str, Mapping[str, list[str]]],
    users: Mapping[str, str] | None = None,
) -> Iterator[tuple[TokenServer, dict[str, str]]]:
    """A :func:`token_server` with a fresh signing key (its certificate written to
    ``directory``/token-signer.pem) and the ``auth.token`` section of a Distribution config.yml
    that trusts it; ``users`` by default ``bob`` / ``builder-pass``."""
    key = new_key()
    bundle = directory / "token-signer.pem"
    bundle.write_bytes(pem(certificate("regtui test token issuer", key)))
    with token_server(
        Signer(key, kid=libtrust_kid(key)),
        issuer="regtui-test-issuer",
        service="regtui-test-registry",
        users={"bob": "builder-pass"} if users is None else users,
        grants=grants,
    ) as issuer:
        auth = {
            "realm": issuer.realm,
            "service": issuer.service,
            "issuer": issuer.issuer,
            "rootcertbundle": str(bundle),
        }
        yield issuer, auth
