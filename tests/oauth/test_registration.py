"""The receiver's registration of its client: what each method takes, the key files it reads,
and the JWKS it fetches from the sender's URL (a real HTTPS server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from joserfc.jwk import ECKey, KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import EndpointFactory
from tests.oauth.keys import ClientPki, ec_key, make_client_pki, private_pem, public_pem, rsa_key
from webhook_kit.errors import CertificateError, ConfigError, DiscoveryError
from webhook_kit.oauth.assertion import ASSERTION_TYPE, sign_client_assertion
from webhook_kit.oauth.client_auth import ClientCredentials
from webhook_kit.oauth.credentials import (
    ClientRegistration,
    JwksSource,
    https_fetcher,
    load_public_keys,
    parse_jwks,
)
from webhook_kit.oauth.mtls import load_client_identity, peer_certificate, peer_thumbprint
from webhook_kit.serving import servers
from webhook_kit.tls import CERT_FILE, KEY_FILE, CertFiles


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClientPki:
    return make_client_pki(tmp_path_factory.mktemp("registration-pki"))


class TestRegistration:
    def test_each_method_with_what_it_needs(self, pki: ClientPki) -> None:
        assert ClientRegistration("c", secret="s").client_trust_file is None
        assert "s3cr" not in repr(ClientRegistration("c", secret="s3cret"))
        ClientRegistration("c", "private_key_jwt", public_key_file=pki.public_key_file)
        ClientRegistration("c", "private_key_jwt", jwks_url="https://sender.example/jwks")
        tls = ClientRegistration("c", "tls_client_auth", client_ca_file=pki.ca_file, san="x")
        assert tls.client_trust_file == pki.ca_file
        self_signed = ClientRegistration(
            "c", "self_signed_tls_client_auth", client_cert_file=pki.self_signed[0]
        )
        assert self_signed.client_trust_file == pki.self_signed[0]
        assert (
            self_signed.registered_thumbprint() == load_client_identity(*pki.self_signed).thumbprint
        )
        assert tls.registered_thumbprint() is None
        generated = ClientRegistration.generate()
        assert generated.method == "client_secret_basic" and generated.secret

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"client_id": ""}, "^client_id: must not be empty"),
            ({"method": "basic"}, "^client_auth_method: unknown method 'basic'"),
            ({"secret": None}, "^secret: client_secret_basic needs a client secret"),
            ({"jwks_url": "https://x/jwks"}, "^jwks_url: not used by client_secret_basic"),
            (
                {"method": "private_key_jwt", "secret": None},
                "^public_key_file: private_key_jwt needs",
            ),
            (
                {"method": "private_key_jwt", "secret": None, "jwks_url": "http://x/jwks"},
                "^jwks_url: must be an https:// URL",
            ),
            (
                {
                    "method": "private_key_jwt",
                    "secret": None,
                    "jwks_url": "https://x/j",
                    "public_key_file": Path("k"),
                },
                "^public_key_file: .*one of the two",
            ),
            (
                {
                    "method": "private_key_jwt",
                    "secret": None,
                    "public_key_file": Path("k"),
                    "jwks_ca_file": Path("c"),
                },
                "^jwks_ca_file: only used with jwks_url",
            ),
            (
                {"method": "private_key_jwt", "secret": "s", "public_key_file": Path("k")},
                "^secret: not used by private_key_jwt",
            ),
            (
                {"method": "tls_client_auth", "secret": None, "san": "x"},
                "^client_ca_file: tls_client_auth needs",
            ),
            (
                {"method": "tls_client_auth", "secret": None, "client_ca_file": Path("c")},
                "^subject_dn: tls_client_auth needs",
            ),
            (
                {
                    "method": "tls_client_auth",
                    "secret": None,
                    "client_ca_file": Path("c"),
                    "san": "x",
                    "subject_dn": "CN=x",
                },
                "^subject_dn: .*one of the two",
            ),
            (
                {
                    "method": "tls_client_auth",
                    "secret": None,
                    "client_ca_file": Path("c"),
                    "subject_dn": "not a dn",
                },
                "^subject_dn: not an RFC 4514 name",
            ),
            (
                {"method": "self_signed_tls_client_auth", "secret": None},
                "^client_cert_file: self_signed",
            ),
            (
                {"client_ca_file": Path("c"), "client_cert_file": Path("s")},
                "^client_cert_file: give the client's CA or",
            ),
            ({"subject_dn": "CN=x"}, "^subject_dn: not used by client_secret_basic"),
        ],
    )
    def test_refusals_name_the_field(self, kwargs: dict[str, Any], message: str) -> None:
        options: dict[str, Any] = {"client_id": "c", "secret": "s"}
        options.update(kwargs)
        with pytest.raises(ConfigError, match=message):
            ClientRegistration(**options)

    def test_unreadable_registered_certificate(self, tmp_path: Path) -> None:
        registration = ClientRegistration(
            "c", "self_signed_tls_client_auth", client_cert_file=tmp_path / "missing.pem"
        )
        with pytest.raises(CertificateError, match="^client_cert_file: cannot read"):
            registration.registered_thumbprint()


class TestPublicKeys:
    def test_pem_key_certificate_and_jwks(self, pki: ClientPki, tmp_path: Path) -> None:
        # A PEM key comes alone, without a kid: it matches whatever kid the client sends.
        pem_key = load_public_keys(pki.public_key_file)
        assert isinstance(pem_key, ECKey) and pem_key.kid is None
        rsa_file = tmp_path / "rsa.pem"
        rsa_file.write_text(public_pem(rsa_key()))
        assert isinstance(load_public_keys(rsa_file), RSAKey)
        assert isinstance(load_public_keys(pki.cert[0]), ECKey)
        jwks_file = tmp_path / "jwks.json"
        key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
        jwks_file.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
        jwks = load_public_keys(jwks_file)
        assert isinstance(jwks, KeySet) and jwks.keys[0].kid == "k1"

    def test_refusals(self, pki: ClientPki, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="^public_key_file: cannot read"):
            load_public_keys(tmp_path / "missing.pem")
        private = tmp_path / "private.pem"
        private.write_text(private_pem(ec_key()))
        with pytest.raises(ConfigError, match="holds a private key"):
            load_public_keys(private)
        junk = tmp_path / "junk.pem"
        junk.write_text("hello")
        with pytest.raises(ConfigError, match="not a PEM public key, certificate or JWKS"):
            load_public_keys(junk)

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            (b"{", "not JSON"),
            (b"[]", "no 'keys' list"),
            (b'{"keys": []}', "no 'keys' list"),
            (b'{"keys": [{"kty": "oct", "k": "AAAA"}]}', "no RSA or EC signing key"),
            (b'{"keys": [{"kty": "EC", "crv": "P-256"}]}', "unusable"),
        ],
    )
    def test_jwks_refusals(self, document: bytes, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            parse_jwks(document, name="jwks")

    def test_a_private_jwk_and_encryption_keys(self) -> None:
        key = ECKey.generate_key("P-256")
        private = json.dumps({"keys": [key.as_dict(private=True)]}).encode()
        with pytest.raises(ConfigError, match="is private"):
            parse_jwks(private, name="jwks")
        enc = {**key.as_dict(private=False), "use": "enc"}
        with pytest.raises(ConfigError, match="no RSA or EC signing key"):
            parse_jwks(json.dumps({"keys": [enc]}).encode(), name="jwks")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def jwks_of(*keys: ECKey) -> bytes:
    return json.dumps({"keys": [k.as_dict(private=False) for k in keys]}).encode()


class TestJwksSource:
    def test_cache_refetch_on_unknown_kid_and_rate_limit(self) -> None:
        clock = Clock()
        first = ECKey.generate_key("P-256", parameters={"kid": "a"})
        second = ECKey.generate_key("P-256", parameters={"kid": "b"})
        published = [first]
        fetches: list[str] = []

        async def fetch(url: str) -> bytes:
            fetches.append(url)
            return jwks_of(*published)

        source = JwksSource("https://s/jwks", fetch, ttl=300, min_interval=10, clock=clock)

        async def scenario() -> None:
            assert (await source.keys("a")).keys[0].kid == "a"
            await source.keys("a")
            assert len(fetches) == 1  # cached
            published.append(second)
            await source.keys("b")  # unknown kid, but within min_interval: no fetch
            assert len(fetches) == 1
            clock.now += 10
            assert {k.kid for k in (await source.keys("b")).keys} == {"a", "b"}
            assert len(fetches) == 2
            clock.now += 10
            await source.keys("nope")
            await source.keys("nope")
            assert len(fetches) == 3  # forged kids cost one fetch per interval
            clock.now += 300
            await source.keys(None)
            assert len(fetches) == 4  # ttl

        asyncio.run(scenario())

    def test_failures_keep_the_last_keys_and_are_not_retried_at_once(self) -> None:
        clock = Clock()
        key = ECKey.generate_key("P-256", parameters={"kid": "a"})
        answers: list[bytes | Exception] = [DiscoveryError("down"), jwks_of(key), b"junk"]
        calls = 0

        async def fetch(url: str) -> bytes:
            nonlocal calls
            calls += 1
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        source = JwksSource("https://s/jwks", fetch, ttl=300, min_interval=10, clock=clock)

        async def scenario() -> None:
            with pytest.raises(DiscoveryError, match="down"):
                await source.keys("a")
            with pytest.raises(DiscoveryError, match="down"):
                await source.keys("a")
            assert calls == 1
            clock.now += 10
            assert (await source.keys("a")).keys[0].kid == "a"
            clock.now += 300
            assert (await source.keys("a")).keys[0].kid == "a"  # junk: the last keys stay
            assert calls == 3

        asyncio.run(scenario())


class JwksServer:
    """A sender publishing its JWKS over real HTTPS."""

    def __init__(self, certs_dir: Path) -> None:
        self.documents: list[dict[str, Any]] = []
        self.status = 200
        self.fetches = 0
        self.sock = servers.bind("127.0.0.1", 0)
        self.files = CertFiles(certs_dir / CERT_FILE, certs_dir / KEY_FILE, None)
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}/jwks"

    async def jwks(self, request: Request) -> Response:
        self.fetches += 1
        if self.status == 302:
            return Response(status_code=302, headers={"Location": "https://127.0.0.1:1/"})
        return JSONResponse(self.documents[-1], status_code=self.status)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def run(self, ready: Callable[[], None], shutdown: asyncio.Event) -> None:
        app = Starlette(routes=[Route("/jwks", self.jwks), Route(servers.HEALTH_PATH, self.health)])
        try:
            await servers.serve(
                app, sock=self.sock, files=self.files, shutdown=shutdown, ready=ready
            )
        finally:
            self.sock.close()


@pytest.fixture
def jwks_server(certs_dir: Path) -> Iterator[JwksServer]:
    server = JwksServer(certs_dir)
    with servers.ThreadedServer(server.run).running():
        yield server


@pytest.mark.slow
def test_https_fetcher_verifies_and_follows_no_redirect(
    jwks_server: JwksServer, certs_dir: Path
) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "a"})
    jwks_server.documents.append({"keys": [key.as_dict(private=False)]})
    fetch = https_fetcher(certs_dir / "ca.pem")
    assert b'"kid":"a"' in asyncio.run(fetch(jwks_server.url))
    with pytest.raises(DiscoveryError, match="cannot fetch"):
        asyncio.run(https_fetcher(None)(jwks_server.url))  # the dev CA is not trusted
    jwks_server.status = 302
    with pytest.raises(DiscoveryError, match="answered HTTP 302"):
        asyncio.run(fetch(jwks_server.url))
    jwks_server.status = 200
    jwks_server.documents.append({"keys": [], "padding": "x" * 70_000})
    with pytest.raises(DiscoveryError, match="larger than"):
        asyncio.run(fetch(jwks_server.url))


@pytest.mark.slow
def test_private_key_jwt_by_jwks_url(
    jwks_server: JwksServer, certs_dir: Path, start_endpoint: EndpointFactory
) -> None:
    old, new = ec_key(), ec_key()
    old_jwk = ECKey.import_key(public_pem(old), {"kid": "old"}).as_dict(private=False)
    new_jwk = ECKey.import_key(public_pem(new), {"kid": "new"}).as_dict(private=False)
    jwks_server.documents.append({"keys": [old_jwk]})
    sink = start_endpoint(
        client=ClientRegistration(
            "sender-1",
            "private_key_jwt",
            jwks_url=jwks_server.url,
            jwks_ca_file=certs_dir / "ca.pem",
        )
    )

    def get_token(pem: str, kid: str) -> requests.Response:
        creds = ClientCredentials(
            "sender-1", "private_key_jwt", private_key=pem, key_id=kid, algorithm="ES256"
        )
        assertion = sign_client_assertion(creds, audience=sink.info.token_url)
        return requests.post(
            sink.info.token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
            verify=sink.info.ca_file,
            timeout=10,
        )

    assert get_token(private_pem(old), "old").status_code == 200
    # The sender rotates with overlap: the new key is published next to the old one.
    jwks_server.documents.append({"keys": [old_jwk, new_jwk]})
    # Within the refetch interval the new kid is not looked up (TestJwksSource shows the
    # lookup once the interval has passed): forged kids cannot make the issuer hammer the URL.
    refused = get_token(private_pem(new), "new")
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert jwks_server.fetches == 1


def test_peer_certificate_reads_the_asgi_tls_extension(pki: ClientPki) -> None:
    pem = pki.cert[0].read_text()
    scope = {"extensions": {"tls": {"client_cert_chain": [pem]}}}
    assert peer_certificate(scope) is not None
    assert peer_thumbprint(scope) == load_client_identity(*pki.cert).thumbprint
    assert peer_certificate({}) is None
    assert peer_certificate({"extensions": {"tls": {"client_cert_chain": []}}}) is None
    assert peer_certificate({"extensions": {"tls": {"client_cert_chain": ["junk"]}}}) is None
    assert peer_thumbprint({"extensions": None}) is None


def test_concurrent_requests_share_one_fetch() -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "a"})
    fetches = 0

    async def slow(url: str) -> bytes:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0)  # yield, so the other requests arrive during the fetch
        return jwks_of(key)

    source = JwksSource("https://s/jwks", slow, clock=Clock())

    async def scenario() -> list[KeySet]:
        return await asyncio.gather(*(source.keys("a") for _ in range(5)))

    assert all(ks.keys[0].kid == "a" for ks in asyncio.run(scenario()))
    assert fetches == 1
