"""Assemble and run the endpoint: certificates, issuer, bearer check, recorder, server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from webhook_kit.contract.schema import notification_validator
from webhook_kit.endpoint.app import Urls, WebhookRoute, create_app
from webhook_kit.endpoint.faults import FaultInjector
from webhook_kit.endpoint.recorder import Recorder
from webhook_kit.endpoint.settings import EndpointSettings
from webhook_kit.metrics import EndpointMetrics, metrics_route
from webhook_kit.oauth.credentials import ClientRegistration
from webhook_kit.oauth.issuer import IssuerSettings, TokenIssuer
from webhook_kit.oauth.verifier import BearerVerifier, SenderConstraint
from webhook_kit.serving import servers
from webhook_kit.tls import CertFiles, ensure_dev_certs, server_context


@dataclass(frozen=True)
class EndpointInfo:
    """What a sender needs to reach the endpoint; ``as_json`` is the ``serve --json`` line."""

    url: str
    token_url: str
    jwks_url: str
    inspect_url: str
    client_id: str
    #: Empty when the client authenticates by a key or a certificate (typed ``str``, as every
    #: sender of a secret client reads it).
    client_secret: str = field(repr=False)
    ca_file: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Endpoint:
    """One endpoint: built from settings, bound to a socket, served until told to stop."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        self.files = self._cert_files()
        server_context(self.files)  # fails early, with one clear line, on unusable files
        if settings.client is not None:
            self.credentials = settings.client
            self.credentials.check_files()  # a key or certificate that cannot be used: now
        elif settings.client_id is not None and settings.client_secret is not None:
            self.credentials = ClientRegistration(settings.client_id, secret=settings.client_secret)
        else:
            self.credentials = ClientRegistration.generate()
        self.recorder = Recorder(keep=settings.keep, path=settings.record_file)
        self.sock = servers.bind(settings.host, settings.port)
        port = self.sock.getsockname()[1]
        self.urls = Urls(f"https://{servers.url_host(self.sock)}:{port}", settings.path)
        # Counts only, no account or secret: served without a token, like /_kit.
        self.metrics = EndpointMetrics()
        self.issuer = TokenIssuer(
            IssuerSettings(
                issuer=self.urls.base,
                credentials=self.credentials,
                tokens=settings.tokens,
                client_certificates=self.credentials.client_trust_file is not None,
                dpop_nonce=settings.dpop_nonce,
            ),
            token_endpoint=self.urls.token,
            metrics=self.metrics,
        )
        self.verifier = BearerVerifier(
            key=self.issuer.public_key, issuer=self.urls.base, audience=settings.tokens.audience
        )
        self.receiver = WebhookRoute(
            verifier=self.verifier,
            constraint=SenderConstraint(settings.token_binding, nonces=self.issuer.nonces),
            validator=notification_validator(legacy=settings.legacy_statuses),
            recorder=self.recorder,
            faults=FaultInjector(settings.faults),
            max_body=settings.max_body,
            metrics=self.metrics,
        )
        self.app = create_app(
            urls=self.urls,
            issuer=self.issuer,
            receiver=self.receiver,
            extra_routes=[metrics_route(self.metrics.registry)],
        )

    def _cert_files(self) -> CertFiles:
        s = self.settings
        if s.certfile is not None and s.keyfile is not None:
            return CertFiles(s.certfile.resolve(), s.keyfile.resolve(), None)
        files, _ = ensure_dev_certs(s.certs_dir)
        return files

    @property
    def info(self) -> EndpointInfo:
        return EndpointInfo(
            url=self.urls.webhook,
            token_url=self.urls.token,
            jwks_url=self.urls.jwks,
            inspect_url=self.urls.inspect,
            client_id=self.credentials.client_id,
            client_secret=self.credentials.secret or "",
            ca_file=str(self.files.ca_file) if self.files.ca_file else None,
        )

    async def run(self, ready: Callable[[], None], shutdown: asyncio.Event) -> None:
        try:
            await servers.serve(
                self.app,
                sock=self.sock,
                files=self.files,
                server=self.settings.server,
                shutdown=shutdown,
                ready=ready,
                header_timeout=self.settings.header_timeout,
                body_timeout=self.settings.body_timeout,
                client_ca=self.credentials.client_trust_file,
            )
        finally:
            self.close()

    def close(self) -> None:
        self.sock.close()
        self.recorder.close()


@contextlib.contextmanager
def running_endpoint(settings: EndpointSettings | None = None) -> Iterator[Endpoint]:
    """Start an endpoint in a background thread for the block's duration."""
    endpoint = Endpoint(settings or EndpointSettings(port=0))
    with servers.ThreadedServer(endpoint.run).running():
        yield endpoint
