"""Distribution's token authentication (``auth.token``): bearer tokens from a token server.

Needs the ``token`` extra (PyJWT with ``cryptography``); :mod:`embedded_registry.app` imports this
module only when ``auth.token`` is configured, and refuses to start without it.

As Distribution's ``registry/auth/token`` does it:

* A request without ``Authorization: Bearer <token>`` answers 401 UNAUTHORIZED with
  ``WWW-Authenticate: Bearer realm="<realm>",service="<service>",scope="<scopes>"``, the scope
  being what the request needs: ``repository:<name>:pull`` for GET and HEAD,
  ``repository:<name>:pull,push`` for POST, PUT and PATCH (and ``repository:<from>:pull`` for a
  cross-repository mount), ``repository:<name>:delete`` for DELETE, ``registry:catalog:*`` for the
  catalog; none for ``/v2/`` (any valid token opens it). A token that does not verify adds
  ``error="invalid_token"``; a valid token without the access adds
  ``error="insufficient_scope"``. With ``autoredirect`` the realm is this registry's own
  ``https://<Host><autoredirectpath>`` (``X-Forwarded-Proto`` choosing the scheme).
* The token is a JWS (compact form) in one of ``signingalgorithms`` (all of Distribution's by
  default). Its key: the leaf of its ``x5c`` header when that chain verifies to a certificate of
  ``rootcertbundle``; else the trusted key its ``kid`` (or its ``jwk``'s ``kid``) names. Trusted
  keys are the public keys of the bundle's certificates, under both key ids in use (the RFC 7638
  thumbprint of Distribution 3, and the libtrust id of Distribution 2 and most token servers),
  and the keys of the ``jwks`` file under their ``kid``. An algorithm is used only with a key of
  its family (no RS256 key taken for an HMAC secret).
* Claims: ``iss`` must be ``issuer``, ``aud`` (a string or a list) must hold ``service``, ``exp``
  is required, and ``exp``/``nbf`` are checked with 60 s of leeway. ``access`` lists
  ``{"type", "name", "actions"}``; an action ``*`` grants every action on that resource.

The token's subject (``sub``) is left on the request (``request[AUTH_USER]``): the extension
endpoints let it in when it is named in ``regtui.extensions.admins``. Tokens are verified on
every request (no cache: a revoked signing key takes effect with the bundle's next start).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import has_crypto

from embedded_registry import errors
from embedded_registry.admin import AUTH_USER, LOCAL_ADMIN
from embedded_registry.auth import TOKEN_EXTRA_MISSING, AuthError
from embedded_registry.config import TokenConfig

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LEEWAY = 60
"""Seconds of clock skew allowed on ``exp`` and ``nbf`` (Distribution's ``Leeway``)."""
CATALOG_PATH = "/v2/_catalog"

_FAMILIES: dict[type, tuple[str, ...]] = {
    rsa.RSAPublicKey: ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    ec.EllipticCurvePublicKey: ("ES256", "ES384", "ES512"),
    ed25519.Ed25519PublicKey: ("EdDSA",),
    bytes: ("HS256", "HS384", "HS512"),
}


class TokenAuthError(AuthError):
    """``auth.token`` cannot be served (unreadable bundle, no key...); one line."""


class InvalidToken(Exception):
    """The token cannot be trusted (``error="invalid_token"``); the message is for the log."""


@dataclass(frozen=True)
class Access:
    """One access a request needs: ``repository:team/app:push``."""

    type: str
    name: str
    action: str


@dataclass(frozen=True)
class Grant:
    """A verified token: who it was issued to and what it allows."""

    subject: str
    actions: Mapping[tuple[str, str], frozenset[str]]

    def allows(self, access: Access) -> bool:
        actions = self.actions.get((access.type, access.name), frozenset())
        return "*" in actions or access.action in actions


# --- keys -----------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_bytes(value: int, length: int | None = None) -> bytes:
    return value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big")


def jwk_thumbprints(key: Any) -> set[str]:
    """The key ids Distribution 3 gives a bundle certificate's key: its RFC 7638 SHA-256
    thumbprint; for an EC key also with Go's unpadded coordinates (``big.Int.Bytes()``), which
    differ for the one key in 256 whose x or y starts with a zero byte."""
    ids = {jwk_thumbprint(key), jwk_thumbprint(key, pad=False)}
    return {kid for kid in ids if kid is not None}


def jwk_thumbprint(key: Any, *, pad: bool = True) -> str | None:
    """The RFC 7638 SHA-256 thumbprint of a public key."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        members = {
            "e": _b64url(_int_bytes(numbers.e)),
            "kty": "RSA",
            "n": _b64url(_int_bytes(numbers.n)),
        }
    elif isinstance(key, ec.EllipticCurvePublicKey):
        size = (key.curve.key_size + 7) // 8
        curve = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
            key.curve.name
        )
        if curve is None:
            return None
        point = key.public_numbers()
        members = {
            "crv": curve,
            "kty": "EC",
            "x": _b64url(_int_bytes(point.x, size if pad else None)),
            "y": _b64url(_int_bytes(point.y, size if pad else None)),
        }
    elif isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    else:
        return None
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def libtrust_key_id(key: Any) -> str:
    """libtrust's key id (Distribution 2, docker_auth, GitLab): the first 240 bits of the
    SHA-256 of the DER SubjectPublicKeyInfo, in base32, in groups of four joined by ``:``."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def _read_bundle(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TokenAuthError(
            f"cannot read auth.token.rootcertbundle {path}: {exc.strerror or exc}"
        ) from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TokenAuthError(
            f"auth.token.rootcertbundle {path} holds a certificate that cannot be parsed"
        ) from None


def _read_jwks(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise TokenAuthError(f"cannot read auth.token.jwks {path}: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
        entries = document["keys"]
        if not isinstance(entries, list):
            raise TypeError
    except (ValueError, TypeError, KeyError):
        raise TokenAuthError(f"auth.token.jwks {path} is not a JSON Web Key Set") from None
    keys: dict[str, Any] = {}
    for entry in entries:
        try:
            key = jwt.PyJWK(entry).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, TypeError, ValueError) as exc:
            raise TokenAuthError(f"auth.token.jwks {path}: unusable key: {exc}") from None
        kid = entry.get("kid") if isinstance(entry, dict) else None
        if isinstance(kid, str) and kid:
            keys[kid] = _public(key)
    return keys


def _public(key: Any) -> Any:
    """The public half of a key (a JWKS may hold private keys; only the public part is used)."""
    public = getattr(key, "public_key", None)
    return public() if callable(public) else key


# --- verification ---------------------------------------------------------------------------


class TokenVerifier:
    """The trusted keys of ``auth.token`` and the checks of a token against them."""

    def __init__(self, config: TokenConfig) -> None:
        if not has_crypto:
            raise TokenAuthError(TOKEN_EXTRA_MISSING)
        self.config = config
        self.roots: list[x509.Certificate] = []
        self.trusted: dict[str, Any] = {}
        if config.rootcertbundle is not None:
            self.roots = _read_bundle(config.rootcertbundle)
            for certificate in self.roots:
                key = certificate.public_key()
                self.trusted[libtrust_key_id(key)] = key
                for thumbprint in jwk_thumbprints(key):
                    self.trusted[thumbprint] = key
        if config.jwks is not None:
            self.trusted.update(_read_jwks(config.jwks))
        if not self.trusted:
            raise TokenAuthError("auth.token needs at least one token signing key")
        self.algorithms = tuple(config.signingalgorithms)

    def verify(self, raw: str) -> Grant:
        """The grant of a valid token; InvalidToken otherwise."""
        try:
            header = jwt.get_unverified_header(raw)
        except jwt.DecodeError as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise InvalidToken(f"token signed with {algorithm!r}, not an accepted algorithm")
        key = self._signing_key(header)
        family = next((algs for kind, algs in _FAMILIES.items() if isinstance(key, kind)), ())
        if algorithm not in family:
            raise InvalidToken(f"{algorithm} does not go with the signing key's type")
        try:
            claims = jwt.decode(
                raw,
                key,
                algorithms=[algorithm],
                audience=self.config.service,
                issuer=self.config.issuer,
                leeway=LEEWAY,
                # iat is not Distribution's business (a token server's clock a minute ahead
                # must not matter more than exp and nbf's leeway says).
                options={"require": ["exp", "iss", "aud"], "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        return Grant(subject=_subject(claims), actions=_actions(claims.get("access")))

    def _signing_key(self, header: Mapping[str, Any]) -> Any:
        chain = header.get("x5c")
        if chain is not None:
            return self._verify_chain(chain)
        jwk = header.get("jwk")
        if isinstance(jwk, dict):
            if jwk.get("x5c") is not None:
                return self._verify_chain(jwk["x5c"])
            key = self.trusted.get(str(jwk.get("kid") or ""))
            if key is None:
                raise InvalidToken("untrusted JWK with no certificate chain")
            return key
        kid = header.get("kid")
        if isinstance(kid, str) and kid:
            key = self.trusted.get(kid)
            if key is None:
                raise InvalidToken(f"token signed by untrusted key with ID: {kid!r}")
            return key
        raise InvalidToken("token names no key (no x5c, jwk or kid)")

    def _verify_chain(self, chain: Any) -> Any:
        """The leaf's public key when ``chain`` (x5c: base64 DER, leaf first) leads to a root
        of the bundle, every certificate on the way valid now and every issuer a CA."""
        if not isinstance(chain, list) or not chain or not all(isinstance(c, str) for c in chain):
            raise InvalidToken("malformed x5c header")
        try:
            certificates = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in chain]
        except (ValueError, binascii.Error):
            raise InvalidToken("malformed certificate in the x5c header") from None
        now = datetime.now(UTC)
        current, intermediates = certificates[0], certificates[1:]
        for _ in range(len(certificates) + 1):
            if not current.not_valid_before_utc <= now <= current.not_valid_after_utc:
                raise InvalidToken("a certificate of the x5c chain is not valid now")
            if current in self.roots:
                return certificates[0].public_key()
            issuer = _issuer_of(current, self.roots) or _issuer_of(current, intermediates)
            if issuer is None:
                break
            if issuer in self.roots:
                if not issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc:
                    raise InvalidToken("the root of the x5c chain is not valid now")
                return certificates[0].public_key()
            current = issuer
        raise InvalidToken("the x5c chain does not lead to a certificate of rootcertbundle")


def _issuer_of(
    certificate: x509.Certificate, candidates: Iterable[x509.Certificate]
) -> x509.Certificate | None:
    """The candidate, a CA, that signed ``certificate``."""
    for candidate in candidates:
        if candidate == certificate or candidate.subject != certificate.issuer:
            continue
        try:
            constraints = candidate.extensions.get_extension_for_class(x509.BasicConstraints)
        except x509.ExtensionNotFound:
            continue
        if not constraints.value.ca:
            continue
        try:
            certificate.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def _subject(claims: Mapping[str, Any]) -> str:
    subject = claims.get("sub", "")
    return subject if isinstance(subject, str) else ""


def _actions(access: Any) -> dict[tuple[str, str], frozenset[str]]:
    """The ``access`` claim as (type, name) -> actions; a malformed claim grants nothing."""
    if not isinstance(access, list):
        if access is not None:
            raise InvalidToken("the access claim is not a list")
        return {}
    granted: dict[tuple[str, str], set[str]] = {}
    for item in access:
        if not isinstance(item, dict):
            raise InvalidToken("malformed entry in the access claim")
        kind, name, actions = item.get("type"), item.get("name"), item.get("actions") or []
        if not isinstance(kind, str) or not isinstance(name, str) or not isinstance(actions, list):
            raise InvalidToken("malformed entry in the access claim")
        granted.setdefault((kind, name), set()).update(a for a in actions if isinstance(a, str))
    return {resource: frozenset(actions) for resource, actions in granted.items()}


# --- the middleware --------------------------------------------------------------------------


def _repository(name: str, method: str) -> list[Access]:
    if method in ("GET", "HEAD"):
        return [Access("repository", name, "pull")]
    if method in ("POST", "PUT", "PATCH"):
        return [Access("repository", name, "pull"), Access("repository", name, "push")]
    if method == "DELETE":
        return [Access("repository", name, "delete")]
    return []


def required_access(request: web.Request) -> list[Access]:
    """What ``request`` needs, as Distribution's dispatcher asks for it: by the repository the
    route names (and the ``from`` of a mount), the catalog, or nothing for the base route and
    routes without a repository (the administrative extensions check the subject)."""
    name = request.match_info.get("name")
    if name:
        needed = _repository(name, request.method)
        source = request.query.get("from")
        if source and request.method == "POST":
            needed += _repository(source, "GET")
        return needed
    if request.path == CATALOG_PATH:
        return [Access("registry", "catalog", "*")]
    return []


def scope_param(needed: Iterable[Access]) -> str:
    """``repository:team/app:pull,push registry:catalog:*``: one scope per resource."""
    resources: dict[tuple[str, str], set[str]] = {}
    for access in needed:
        resources.setdefault((access.type, access.name), set()).add(access.action)
    return " ".join(
        f"{kind}:{name}:{','.join(sorted(actions))}" for (kind, name), actions in resources.items()
    )


def challenge(
    config: TokenConfig, request: web.Request, needed: list[Access], error: str | None
) -> errors.RegistryError:
    """401 UNAUTHORIZED with Distribution's Bearer challenge for ``needed``."""
    realm = config.realm
    if config.autoredirect:
        scheme = request.headers.get("X-Forwarded-Proto") or "https"
        realm = f"{scheme}://{request.host}{config.autoredirectpath}"
    header = f'Bearer realm="{realm}",service="{config.service}"'
    scope = scope_param(needed)
    if scope:
        header += f',scope="{scope}"'
    if error is not None:
        header += f',error="{error}"'
    detail = [{"Type": a.type, "Name": a.name, "Action": a.action} for a in needed]
    refusal = errors.RegistryError("UNAUTHORIZED", detail=detail or None)
    refusal.headers["WWW-Authenticate"] = header
    refusal.close_connection = request.body_exists
    return refusal


def bearer_token(header: str | None) -> str | None:
    scheme, _, value = (header or "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def token_middleware(verifier: TokenVerifier) -> Callable[[web.Request, Handler], Awaitable]:
    config = verifier.config

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/v2") and not request.get(LOCAL_ADMIN):
            needed = required_access(request)
            raw = bearer_token(request.headers.get("Authorization"))
            if raw is None:
                raise challenge(config, request, needed, None)
            try:
                grant = verifier.verify(raw)
            except InvalidToken as exc:
                log.info("token refused for %s %s: %s", request.method, request.path, exc)
                raise challenge(config, request, needed, "invalid_token") from None
            if not all(grant.allows(access) for access in needed):
                raise challenge(config, request, needed, "insufficient_scope")
            request[AUTH_USER] = grant.subject
        return await handler(request)

    return middleware
