"""Outages: the endpoint or the token endpoint goes down and comes back; slow, trickling and
huge answers. Real servers and real time, with a short retry schedule."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.certify.receivers import receiver
from tests.delivery.test_dispatcher import drive
from webhook_kit.contract import notifications
from webhook_kit.delivery.dispatcher import Dispatcher, DispatcherSettings, Target
from webhook_kit.delivery.policy import RetryPolicy
from webhook_kit.delivery.transport import MAX_RESPONSE_BYTES
from webhook_kit.endpoint.service import running_endpoint
from webhook_kit.endpoint.settings import EndpointSettings
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.oauth.credentials import ClientCredentials
from webhook_kit.oauth.issuer import IssuerSettings, TokenIssuer
from webhook_kit.oauth.verifier import BearerVerifier
from webhook_kit.storage.base import EventStore, Storage
from webhook_kit.storage.rows import AttemptRow, EventFilter
from webhook_kit.testing import serve_app

# Outages: each test waits for deadlines and retries to play out.
pytestmark = pytest.mark.slow

QUICK = RetryPolicy(schedule=(0.05,) * 200, jitter=0.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def attempts(events: EventStore) -> list[AttemptRow]:
    """Every attempt, in the order of the events."""
    rows = await events.events(EventFilter())
    found = await events.attempts_of([r.event_id for r in rows])
    return [a for r in rows for a in found[r.event_id]]


async def outcomes(events: EventStore) -> list[str]:
    return [a.outcome for a in await attempts(events)]


def test_endpoint_down_mid_run_then_everything_is_delivered(certs_dir: Path) -> None:
    port = free_port()
    settings = EndpointSettings(
        port=port, certs_dir=certs_dir, client_id="c", client_secret="s3cret-value"
    )
    delivered: list[str] = []

    async def scenario(storage: Storage) -> None:
        target = Target(
            f"https://127.0.0.1:{port}/webhook",
            OAuthSettings(f"https://127.0.0.1:{port}/oauth/token", "c", "s3cret-value"),
        )
        dispatch = DispatcherSettings(ca_file=certs_dir / "ca.pem", policy=QUICK, timeout=2)
        async with Dispatcher(storage.events, dispatch, target=target) as d:
            with running_endpoint(settings) as sink:
                await d.enqueue_many(notifications.lifecycle(validation_id="before"))
                assert await d.wait_idle(30)
                delivered.extend(r["status"] for r in sink.recorder.query(accepted=True))
            # The endpoint is down: these are stored and retried.
            await d.enqueue_many(notifications.lifecycle(validation_id="during"))
            while "connect_error" not in await outcomes(storage.events):
                await asyncio.sleep(0.02)
            with running_endpoint(settings) as sink:  # back, with a new signing key
                assert await d.wait_idle(30)
                delivered.extend(r["status"] for r in sink.recorder.query(accepted=True))
        assert await storage.events.counts() == {"sent": 18}
        assert "connect_error" in await outcomes(storage.events)

    drive(scenario)
    assert len(delivered) == 18


def test_token_endpoint_down_is_token_error_then_delivery_resumes(certs_dir: Path) -> None:
    issuer = TokenIssuer(
        IssuerSettings("https://auth.test", ClientCredentials("c", "s3cret-value"))
    )
    verifier = BearerVerifier(
        key=issuer.public_key, issuer="https://auth.test", audience="webhook-kit"
    )
    auth_app = Starlette(routes=[Route("/oauth/token", issuer.token_endpoint, methods=["POST"])])
    auth_port = free_port()

    async def scenario(storage: Storage) -> list[AttemptRow]:
        with serve_app(receiver(verifier), certs_dir=certs_dir) as endpoint:
            target = Target(
                endpoint.url("/webhook"),
                OAuthSettings(f"https://127.0.0.1:{auth_port}/oauth/token", "c", "s3cret-value"),
            )
            dispatch = DispatcherSettings(ca_file=certs_dir / "ca.pem", policy=QUICK, timeout=2)
            async with Dispatcher(storage.events, dispatch, target=target) as d:
                await d.enqueue(
                    notifications.build("on-course", validation_id="v", previous_status=None)
                )
                while (await outcomes(storage.events)).count("token_error") < 2:
                    await asyncio.sleep(0.02)
                with serve_app(auth_app, certs_dir=certs_dir, port=auth_port):
                    assert await d.wait_idle(30)
        return await attempts(storage.events)

    seen = drive(scenario)
    assert [a.outcome for a in seen][:2] == ["token_error", "token_error"]
    assert seen[-1].outcome == "success"
    assert "token URL unreachable" in seen[0].reason


def slow_app(mode: str, sent: list[int]) -> Starlette:
    async def webhook(request: Request) -> Response:
        await request.body()
        if mode == "slow":
            await asyncio.sleep(3)
            return Response(b"{}", media_type="application/json")

        async def body() -> AsyncIterator[bytes]:
            if mode == "trickle":
                for _ in range(100):
                    sent[0] += 1
                    yield b" "
                    await asyncio.sleep(0.1)
            else:  # huge: 16 GiB, more than any client could read within its deadline
                chunk = b"x" * 65536
                for _ in range(256 * 1024):
                    sent[0] += len(chunk)
                    yield chunk
                    await asyncio.sleep(0)

        return StreamingResponse(body(), media_type="application/json")

    return Starlette(routes=[Route("/webhook", webhook, methods=["POST"])])


def attempt_against(app: Any, certs_dir: Path, timeout: float) -> dict[str, Any]:
    async def scenario(storage: Storage) -> list[AttemptRow]:
        with (
            running_endpoint(EndpointSettings(port=0, certs_dir=certs_dir)) as auth,
            serve_app(app, certs_dir=certs_dir) as endpoint,
        ):
            info = auth.info
            target = Target(
                endpoint.url("/webhook"),
                OAuthSettings(info.token_url, info.client_id, info.client_secret),
            )
            dispatch = DispatcherSettings(
                ca_file=certs_dir / "ca.pem", policy=RetryPolicy(schedule=()), timeout=timeout
            )
            async with Dispatcher(storage.events, dispatch, target=target) as d:
                await d.enqueue(
                    notifications.build("on-course", validation_id="v", previous_status=None)
                )
                assert await d.wait_idle(30)
        return await attempts(storage.events)

    (attempt,) = drive(scenario)
    return attempt._asdict()


def test_slow_endpoint_hits_the_deadline(certs_dir: Path) -> None:
    attempt = attempt_against(slow_app("slow", [0]), certs_dir, timeout=0.5)
    assert attempt["outcome"] == "timeout"
    assert attempt["duration_ms"] < 1500  # the 3 s answer was not waited for


def test_trickling_headers_hit_the_total_deadline(certs_dir: Path) -> None:
    """A raw TLS server that sends its status line one byte every 100 ms."""
    import ssl as ssl_module

    from webhook_kit.serving import servers
    from webhook_kit.tls import CertFiles, server_context

    files = CertFiles(certs_dir / "server.pem", certs_dir / "server-key.pem", certs_dir / "ca.pem")
    sent = [0]
    sock = servers.bind("127.0.0.1", 0)
    port = sock.getsockname()[1]

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}":
                writer.write(bytes([byte]))
                sent[0] += 1
                await writer.drain()
                await asyncio.sleep(0.1)
        except (OSError, asyncio.IncompleteReadError, ssl_module.SSLError):
            pass
        finally:
            writer.close()

    async def runner(ready: Any, shutdown: asyncio.Event) -> None:
        server = await asyncio.start_server(trickle, sock=sock, ssl=server_context(files))
        ready()
        await shutdown.wait()
        server.close()

    async def scenario(storage: Storage) -> list[AttemptRow]:
        with running_endpoint(EndpointSettings(port=0, certs_dir=certs_dir)) as auth:
            info = auth.info
            target = Target(
                f"https://127.0.0.1:{port}/webhook",
                OAuthSettings(info.token_url, info.client_id, info.client_secret),
            )
            dispatch = DispatcherSettings(
                ca_file=certs_dir / "ca.pem", policy=RetryPolicy(schedule=()), timeout=0.5
            )
            async with Dispatcher(storage.events, dispatch, target=target) as d:
                await d.enqueue(
                    notifications.build("on-course", validation_id="v", previous_status=None)
                )
                assert await d.wait_idle(30)
        return await attempts(storage.events)

    with servers.ThreadedServer(runner).running():
        (attempt,) = drive(scenario)
    assert attempt.outcome == "timeout"
    assert attempt.duration_ms < 1500 and sent[0] < 40  # gave up long before the 4 s answer


def test_huge_answer_is_read_only_up_to_the_cap(certs_dir: Path) -> None:
    sent = [0]
    # Reading the whole answer could not finish within the deadline: success means the client
    # read only the first MAX_RESPONSE_BYTES and let the rest go.
    attempt = attempt_against(slow_app("huge", sent), certs_dir, timeout=5)
    assert attempt["outcome"] == "success" and attempt["http_status"] == 200
    assert MAX_RESPONSE_BYTES == 64 * 1024
    assert sent[0] < 256 * 1024 * 65536
