"""Distribution's token auth (``auth.token``) against a token server written in the test: the
Bearer challenge, skopeo and regtui's own client through the token flow, and every way a token
must be refused (issuer, audience, time, key, scope). Debian's docker-registry (Distribution 2.8)
is the oracle for the same tokens where it runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.helpers.servers import (
    RunningRegistry,
    bundled_registry,
    distribution_registry,
    free_port,
    require_tool,
    server_env,
)
from tests.helpers.spec import ACCEPT_ALL, assert_oci_error, client_for, files_under
from tests.helpers.tokens import (
    Signer,
    TokenServer,
    certificate,
    libtrust_kid,
    new_key,
    pem,
    token_server,
)
from tui.client.auth import Credentials, RegistryAuth
from tui.imagegen import make_image, push_image, write_oci_layout

pytestmark = pytest.mark.timeout(180)

ISSUER = "regtui-test-issuer"
SERVICE = "regtui-test-registry"
USERS = {"alice": "wonderland", "bob": "builder", "root": "toor"}
GRANTS = {
    "alice": {"repository:*": ["pull", "push", "delete"], "registry:catalog": ["*"]},
    "bob": {"repository:*": ["pull"]},
    "root": {},  # an administrator of the extensions; no repository access
}
PULL_PUSH = 'scope="repository:team/app:pull,push"'


@dataclass
class Setup:
    registry: RunningRegistry
    tokens: TokenServer
    signer: Signer
    bundle: Path

    def token(self, access: list[dict[str, Any]], **claims: Any) -> str:
        return self.signer.token(
            issuer=claims.pop("issuer", ISSUER),
            audience=claims.pop("audience", SERVICE),
            subject=claims.pop("subject", "alice"),
            access=access,
            **claims,
        )


def repository(name: str, *actions: str) -> list[dict[str, Any]]:
    return [{"type": "repository", "name": name, "actions": list(actions)}]


def token_config(realm: str, bundle: Path, **extra: Any) -> dict[str, Any]:
    return {
        "version": "0.1",
        "storage": {"delete": {"enabled": True}},
        "auth": {
            "token": {
                "realm": realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(bundle),
                **extra,
            }
        },
        "regtui": {"extensions": {"admins": ["root"]}},
    }


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """The bundled registry behind a token server whose signing certificate is the bundle;
    tokens name their key by its libtrust ``kid``, as docker_auth and GitLab do."""
    key = new_key()
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pem(certificate("token-signer", key)))
    signer = Signer(key, kid=libtrust_kid(key))
    with (
        token_server(signer, issuer=ISSUER, service=SERVICE, users=USERS, grants=GRANTS) as tokens,
        bundled_registry(tmp_path / "root", config=token_config(tokens.realm, bundle)) as registry,
    ):
        yield Setup(registry, tokens, signer, bundle)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge_of(response: httpx.Response) -> str:
    assert_oci_error(response, 401, "UNAUTHORIZED")
    return response.headers["WWW-Authenticate"]


# --- the challenge --------------------------------------------------------------------------


def test_anonymous_requests_get_distributions_bearer_challenge(setup: Setup) -> None:
    realm = f'Bearer realm="{setup.tokens.realm}",service="{SERVICE}"'
    with client_for(setup.registry) as client:
        assert challenge_of(client.get("/v2/")) == realm
        assert challenge_of(client.get("/v2/team/app/manifests/v1")) == (
            f'{realm},scope="repository:team/app:pull"'
        )
        head = client.head("/v2/team/app/blobs/sha256:" + "0" * 64)
        assert head.status_code == 401
        assert head.headers["WWW-Authenticate"] == f'{realm},scope="repository:team/app:pull"'
        posted = client.post("/v2/team/app/blobs/uploads/")
        assert challenge_of(posted) == f"{realm},{PULL_PUSH}"
        assert posted.json()["errors"][0]["detail"] == [
            {"Type": "repository", "Name": "team/app", "Action": "pull"},
            {"Type": "repository", "Name": "team/app", "Action": "push"},
        ]
        deleted = client.delete("/v2/team/app/manifests/sha256:" + "0" * 64)
        assert challenge_of(deleted) == f'{realm},scope="repository:team/app:delete"'
        assert challenge_of(client.get("/v2/_catalog")) == f'{realm},scope="registry:catalog:*"'
        mount = client.post(
            "/v2/team/app/blobs/uploads/?mount=sha256:" + "0" * 64 + "&from=other/base"
        )
        assert challenge_of(mount) == (
            f'{realm},scope="repository:team/app:pull,push repository:other/base:pull"'
        )
        assert challenge_of(client.get("/v2/_regtui/ext/storage")) == realm
        # Tags with push times need what tags/list needs.
        assert challenge_of(client.get("/v2/team/app/_regtui/tags")) == (
            f'{realm},scope="repository:team/app:pull"'
        )
        # Basic credentials are no token.
        assert challenge_of(client.get("/v2/", auth=("alice", "wonderland"))) == realm


# --- real clients through the token server ----------------------------------------------------


def test_skopeo_pushes_and_inspects_through_the_token_server(setup: Setup, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    image = make_image([{"app": b"through a token server"}])
    layout = write_oci_layout(tmp_path / "layout", image, tag="v1")
    target = f"docker://{setup.registry.host}/team/app:v1"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [skopeo, *args], capture_output=True, text=True, timeout=120, check=False
        )

    pushed = run("copy", "--dest-tls-verify=false", "--dest-creds", "alice:wonderland",
                 f"oci:{layout}:v1", target)  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    assert any(
        r["account"] == "alice" and "repository:team/app:pull,push" in r["scopes"]
        for r in setup.tokens.requests
    ), setup.tokens.requests
    inspected = run("inspect", "--raw", "--tls-verify=false", "--creds", "bob:builder", target)
    assert inspected.returncode == 0, inspected.stderr
    assert inspected.stdout.encode() == image.manifest.data
    # bob may pull only: his push is refused, and nothing of it is stored.
    before = files_under(setup.registry.root)
    other = write_oci_layout(tmp_path / "other", make_image([{"b": b"bob's"}]), tag="v2")
    refused = run("copy", "--dest-tls-verify=false", "--dest-creds", "bob:builder",
                  f"oci:{other}:v2", f"docker://{setup.registry.host}/team/app:v2")  # fmt: skip
    assert refused.returncode != 0
    assert "unauthorized" in refused.stderr.lower() or "denied" in refused.stderr.lower()
    assert files_under(setup.registry.root) == before
    # Without credentials skopeo gets an anonymous token, which grants nothing.
    anonymous = run("inspect", "--raw", "--tls-verify=false", "--no-creds", target)
    assert anonymous.returncode != 0


def test_regtuis_client_pushes_and_lists_through_the_token_server(setup: Setup) -> None:
    image = make_image([{"own": b"client"}])
    alice = RegistryAuth(Credentials("alice", "wonderland"))
    digest = push_image(setup.registry.url, "team/own", "v1", image, auth=alice)
    assert alice.scheme == "bearer" and alice.token_requests >= 1
    with client_for(setup.registry, auth=alice) as client:
        assert client.get("/v2/_catalog").json() == {"repositories": ["team/own"]}
        assert client.get("/v2/team/own/tags/list").json()["tags"] == ["v1"]
        served = client.get("/v2/team/own/manifests/v1", headers={"Accept": ACCEPT_ALL})
        assert served.headers["Docker-Content-Digest"] == digest
    bob = RegistryAuth(Credentials("bob", "builder"))
    with client_for(setup.registry, auth=bob) as client:
        assert client.get("/v2/team/own/manifests/v1").status_code == 200
        # No registry:catalog:* for bob: the token server leaves it out, the registry refuses.
        refused = client.get("/v2/_catalog")
        assert 'error="insufficient_scope"' in challenge_of(refused)


# --- tokens that must be refused --------------------------------------------------------------


def test_a_valid_token_opens_what_it_grants_and_nothing_else(setup: Setup) -> None:
    pull = setup.token(repository("team/app", "pull"))
    with client_for(setup.registry) as client:
        assert client.get("/v2/", headers=bearer(pull)).status_code == 200
        assert client.get("/v2/team/app/tags/list", headers=bearer(pull)).status_code == 404
        pushed = client.post("/v2/team/app/blobs/uploads/", headers=bearer(pull))
        assert challenge_of(pushed) == (
            f'Bearer realm="{setup.tokens.realm}",service="{SERVICE}",{PULL_PUSH},'
            'error="insufficient_scope"'
        )
        other = client.get("/v2/team/other/tags/list", headers=bearer(pull))
        assert 'error="insufficient_scope"' in challenge_of(other)
        deleted = client.delete("/v2/team/app/manifests/v1", headers=bearer(pull))
        assert 'error="insufficient_scope"' in challenge_of(deleted)
        catalog = client.get("/v2/_catalog", headers=bearer(pull))
        assert 'error="insufficient_scope"' in challenge_of(catalog)
        star = setup.token(repository("team/app", "*"))
        assert client.post("/v2/team/app/blobs/uploads/", headers=bearer(star)).status_code == 202
    assert not any("team/other" in path for path in files_under(setup.registry.root))


def _bad_tokens(setup: Setup, tmp_path: Path) -> dict[str, str]:
    access = repository("team/app", "pull", "push")
    now = time.time()
    stranger = new_key()
    ca_key = new_key()
    ca = certificate("not-in-the-bundle", ca_key, ca=True)
    confused = jwt.encode(
        {"iss": ISSUER, "aud": SERVICE, "sub": "x", "exp": int(now + 300), "access": access},
        "a secret that is not the registry's key",
        algorithm="HS256",
        headers={"kid": setup.signer.kid},
    )
    return {
        "wrong issuer": setup.token(access, issuer="someone-else"),
        "wrong audience": setup.token(access, audience="another-registry"),
        "no audience": setup.token(access, audience=[]),
        "expired beyond the leeway": setup.token(access, expires=now - 120),
        "not valid before the leeway": setup.token(access, not_before=now + 300),
        "signed by another key under the trusted kid": Signer(stranger, kid=setup.signer.kid).token(
            issuer=ISSUER, audience=SERVICE, subject="alice", access=access
        ),
        "signed by an unknown kid": Signer(stranger, kid=libtrust_kid(stranger)).token(
            issuer=ISSUER, audience=SERVICE, subject="alice", access=access
        ),
        "x5c chain to a CA outside the bundle": Signer(ca_key, x5c=[ca]).token(
            issuer=ISSUER, audience=SERVICE, subject="alice", access=access
        ),
        "HS256 under the RSA key's kid": confused,
        "unsigned (alg none)": jwt.encode(
            {"iss": ISSUER, "aud": SERVICE, "exp": int(now + 300), "access": access},
            "",
            algorithm="none",
            headers={"kid": setup.signer.kid},
        ),
        "garbage": "not.a.token",
    }


BAD = [
    "wrong issuer",
    "wrong audience",
    "no audience",
    "expired beyond the leeway",
    "not valid before the leeway",
    "signed by another key under the trusted kid",
    "signed by an unknown kid",
    "x5c chain to a CA outside the bundle",
    "HS256 under the RSA key's kid",
    "unsigned (alg none)",
    "garbage",
]


def test_invalid_tokens_are_refused(setup: Setup, tmp_path: Path) -> None:
    tokens = _bad_tokens(setup, tmp_path)
    before = files_under(setup.registry.root)
    with client_for(setup.registry) as client:
        for reason in BAD:
            token = tokens[reason]
            for response in (
                client.get("/v2/", headers=bearer(token)),
                client.get("/v2/team/app/tags/list", headers=bearer(token)),
                client.post("/v2/team/app/blobs/uploads/", headers=bearer(token)),
            ):
                header = challenge_of(response)
                assert 'error="invalid_token"' in header, (reason, header)
    assert files_under(setup.registry.root) == before


def test_exp_and_nbf_have_a_minute_of_leeway(setup: Setup) -> None:
    now = time.time()
    access = repository("team/app", "pull")
    with client_for(setup.registry) as client:
        for token in (
            setup.token(access, expires=now - 30),
            setup.token(access, not_before=now + 30),
        ):
            assert client.get("/v2/team/app/tags/list", headers=bearer(token)).status_code == 404


def test_signingalgorithms_limits_what_is_accepted(tmp_path: Path) -> None:
    """With ``signingalgorithms: [ES256]`` an RS256 token from a trusted key is refused."""
    rsa_key, ec_key = new_key(), new_key("ec")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pem(certificate("rsa", rsa_key), certificate("ec", ec_key)))
    config = token_config("https://auth.example/token", bundle, signingalgorithms=["ES256"])
    with bundled_registry(tmp_path / "root", config=config) as registry, client_for(registry) as c:
        for key, status in ((ec_key, 200), (rsa_key, 401)):
            token = Signer(key, kid=libtrust_kid(key)).token(
                issuer=ISSUER, audience=SERVICE, subject="a", access=[]
            )
            assert c.get("/v2/", headers=bearer(token)).status_code == status


# --- the administrative extensions ------------------------------------------------------------


def test_extensions_open_to_token_subjects_named_admins_only(setup: Setup) -> None:
    with client_for(setup.registry) as client:
        root = setup.token([], subject="root")
        assert client.get("/v2/_regtui/ext/storage", headers=bearer(root)).status_code == 200
        alice = setup.token(repository("team/app", "*"), subject="alice")
        denied = client.get("/v2/_regtui/ext/storage", headers=bearer(alice))
        assert_oci_error(denied, 403, "DENIED")
        assert_oci_error(
            client.post("/v2/_regtui/ext/gc", json={"dry_run": True}, headers=bearer(alice)),
            403,
            "DENIED",
        )
        forged = Signer(new_key(), kid=setup.signer.kid).token(
            issuer=ISSUER, audience=SERVICE, subject="root", access=[]
        )
        challenge_of(client.get("/v2/_regtui/ext/storage", headers=bearer(forged)))
        challenge_of(client.get("/v2/_regtui/ext/storage"))
        # The local admin secret still opens them without a token.
        headers = setup.registry.admin_headers()
        assert client.get("/v2/_regtui/ext/storage", headers=headers).status_code == 200


# --- other key sources ------------------------------------------------------------------------


def test_x5c_chain_to_the_bundles_ca_and_es256(tmp_path: Path) -> None:
    ca_key = new_key()
    ca = certificate("token-ca", ca_key, ca=True)
    leaf_key = new_key("ec")
    leaf = certificate("token-signer", leaf_key, issuer=(ca, ca_key))
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pem(ca))
    signer = Signer(leaf_key, x5c=[leaf])
    config = token_config("https://auth.example/token", bundle)
    with bundled_registry(tmp_path / "root", config=config) as registry, client_for(registry) as c:
        good = signer.token(issuer=ISSUER, audience=SERVICE, subject="a", access=[])
        assert c.get("/v2/", headers=bearer(good)).status_code == 200
        expired_leaf = certificate("old", leaf_key, issuer=(ca, ca_key), days=-1)
        old = Signer(leaf_key, x5c=[expired_leaf]).token(
            issuer=ISSUER, audience=SERVICE, subject="a", access=[]
        )
        assert 'error="invalid_token"' in challenge_of(c.get("/v2/", headers=bearer(old)))


def _rfc7638(jwk_json: str) -> str:
    """The RFC 7638 thumbprint of a JWK as PyJWT exports it (an oracle apart from the server's
    own computation from the certificate)."""
    jwk = json.loads(jwk_json)
    members = {name: jwk[name] for name in ("crv", "e", "kty", "n", "x", "y") if name in jwk}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def test_bundle_keys_by_their_rfc7638_thumbprint(tmp_path: Path) -> None:
    """Distribution 3 names a bundle certificate's key by its JWK thumbprint."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pem(certificate("rsa", rsa_key), certificate("ec", ec_key)))
    config = token_config("https://auth.example/token", bundle)
    kids = {
        "rsa": _rfc7638(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())),
        "ec": _rfc7638(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())),
    }
    with bundled_registry(tmp_path / "root", config=config) as registry, client_for(registry) as c:
        for key, kid in ((rsa_key, kids["rsa"]), (ec_key, kids["ec"])):
            token = Signer(key, kid=kid).token(
                issuer=ISSUER, audience=SERVICE, subject="a", access=[]
            )
            assert c.get("/v2/", headers=bearer(token)).status_code == 200
        swapped = Signer(rsa_key, kid=kids["ec"]).token(
            issuer=ISSUER, audience=SERVICE, subject="a", access=[]
        )
        assert 'error="invalid_token"' in challenge_of(c.get("/v2/", headers=bearer(swapped)))


def test_jwks_keys_by_kid(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "key-1", "use": "sig"}]}))
    config = token_config("https://auth.example/token", tmp_path / "unused")
    del config["auth"]["token"]["rootcertbundle"]
    config["auth"]["token"]["jwks"] = str(jwks)
    with bundled_registry(tmp_path / "root", config=config) as registry, client_for(registry) as c:
        good = Signer(key, kid="key-1").token(
            issuer=ISSUER, audience=SERVICE, subject="a", access=[]
        )
        assert c.get("/v2/", headers=bearer(good)).status_code == 200
        unknown = Signer(key, kid="key-2").token(
            issuer=ISSUER, audience=SERVICE, subject="a", access=[]
        )
        assert 'error="invalid_token"' in challenge_of(c.get("/v2/", headers=bearer(unknown)))


def test_autoredirect_points_the_realm_at_the_registry_itself(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pem(certificate("s", new_key())))
    config = token_config("https://ignored/token", bundle, autoredirect=True)
    with bundled_registry(tmp_path / "root", config=config) as registry, client_for(registry) as c:
        header = challenge_of(c.get("/v2/"))
        assert header == f'Bearer realm="https://{registry.host}/auth/token",service="{SERVICE}"'
        proxied = challenge_of(c.get("/v2/", headers={"X-Forwarded-Proto": "http"}))
        assert proxied.startswith(f'Bearer realm="http://{registry.host}/auth/token"')


# --- start-up refusals ------------------------------------------------------------------------


def _start(
    config_path: Path, tmp_path: Path, prelude: str = ""
) -> subprocess.CompletedProcess[str]:
    port = free_port()
    code = (
        "import sys\n"
        f"{prelude}"
        "from tui.cli import main\n"
        f"sys.exit(main(['serve', '--config', {str(config_path)!r}, "
        f"'--root', {str(tmp_path / 'root')!r}, '--addr', '127.0.0.1:{port}']))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env=server_env({"REGTUI_ADMIN_DIR": str(tmp_path / "admin")}),
    )


@pytest.mark.parametrize(
    ("prelude", "bundle_text", "expected"),
    [
        # PyJWT missing: the token extra is named, rather than serving without auth.
        ("sys.modules['jwt'] = None\n", None, "pip install 'regtui[token]'"),
        ("", "no certificate in here\n", "at least one token signing key"),
        ("", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "cannot be parsed"),
    ],
    ids=["no-pyjwt", "empty-bundle", "broken-bundle"],
)
def test_token_auth_that_cannot_be_served_stops_the_server(
    tmp_path: Path, prelude: str, bundle_text: str | None, expected: str
) -> None:
    bundle = tmp_path / "bundle.pem"
    if bundle_text is None:
        bundle.write_bytes(pem(certificate("s", new_key())))
    else:
        bundle.write_text(bundle_text)
    config = tmp_path / "config.yml"
    config.write_text(json.dumps(token_config("https://auth.example/token", bundle)))
    result = _start(config, tmp_path, prelude)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("regtui: error: "), result.stderr
    assert expected in lines[0]


# --- Distribution as the oracle ---------------------------------------------------------------


def test_distribution_accepts_and_refuses_the_same_tokens(setup: Setup, tmp_path: Path) -> None:
    """Debian's docker-registry (Distribution 2.8) with the same auth.token section: each token
    gets the same status from both registries."""
    config = {"auth": token_config(setup.tokens.realm, setup.bundle)["auth"]}
    tokens = _bad_tokens(setup, tmp_path)
    now = time.time()
    tokens["valid"] = setup.token(repository("team/app", "pull"))
    tokens["within the leeway"] = setup.token(repository("team/app", "pull"), expires=now - 30)
    tokens["pull-only for a push"] = setup.token(repository("team/app", "pull"))
    tokens["issued in the future"] = setup.token(
        repository("team/app", "pull"), issued_at=now + 600
    )
    with distribution_registry(tmp_path / "distribution", config=config) as distribution:
        for reason, token in tokens.items():
            statuses = []
            for registry in (setup.registry, distribution):
                with client_for(registry) as client:
                    if reason == "pull-only for a push":
                        response = client.post("/v2/team/app/blobs/uploads/", headers=bearer(token))
                    else:
                        response = client.get("/v2/team/app/tags/list", headers=bearer(token))
                statuses.append(response.status_code)
            assert statuses[0] == statuses[1], (reason, statuses)
            accepted = ("valid", "within the leeway", "issued in the future")
            assert (statuses[0] == 401) == (reason not in accepted), (
                reason,
                statuses,
            )


def test_push_times_need_the_repositorys_pull_scope(setup: Setup) -> None:
    """``/v2/<name>/_regtui/tags`` is the repository's: a pull token for it opens it, a token
    for another repository and no token are challenged for ``repository:<name>:pull``."""
    pull = setup.token(repository("team/app", "pull"))
    other = setup.token(repository("team/other", "pull"))
    with client_for(setup.registry) as client:
        # 404: no such repository yet, past the auth check (never 401 with a right token)
        assert client.get("/v2/team/app/_regtui/tags", headers=bearer(pull)).status_code == 404
        refused = client.get("/v2/team/app/_regtui/tags", headers=bearer(other))
        assert 'error="insufficient_scope"' in challenge_of(refused)
        assert 'scope="repository:team/app:pull"' in challenge_of(refused)
        anonymous = client.get("/v2/team/app/_regtui/tags")
        assert anonymous.status_code == 401
        assert 'scope="repository:team/app:pull"' in challenge_of(anonymous)
