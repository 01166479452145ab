"""A scriptable hostile HTTPS endpoint on loopback: a token endpoint and a webhook route that
answer what a malicious or broken receiver can answer.

It is a real TLS server (the kit's trustme certificates) written on raw asyncio streams rather
than an ASGI app, because ASGI servers refuse to send most of what it must send: non-UTF-8 and
control bytes in ``Location``, megabytes of headers, a body that never ends, silence after the
handshake.

Each scenario lives under its own path prefix, so one server serves them all at once::

    with running_hostile(certs_dir) as hostile:
        hostile.webhook_url("redirect_non_utf8")  # https://127.0.0.1:PORT/redirect_non_utf8/webhook
        hostile.token_url("token_error_osc")      # https://127.0.0.1:PORT/token_error_osc/oauth/token

A scenario scripts both routes; what it leaves out answers like a well-behaved receiver (a valid
bearer token, ``200 {"received": true}``). Add scenarios with :meth:`HostileEndpoint.script`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from webhook_kit.tls import ensure_dev_certs, server_context

MIB = 1024 * 1024
#: Request heads beyond this are refused (the clients under test send small ones).
MAX_REQUEST_HEAD = 64 * 1024
MAX_REQUEST_BODY = 4 * MIB

# Hostile text that, printed raw, acts on a terminal or in rich.
OSC52 = "\x1b]52;c;ZXZpbA==\x07"  # writes "evil" to the clipboard
OSC8 = "\x1b]8;;https://evil.example/\x1b\\click here\x1b]8;;\x1b\\"  # a hyperlink
FAKE_PASS = "\r\x1b[2K\x1b[1;32mPASS: https://example.test (30 passed, 0 failed)\x1b[0m"
CLEAR = "\x1b[2J\x1b[H"
MARKUP = "[/] [link=https://evil.example/]click[/link] [bold green]PASS[/]"
#: Bytes that must never reach a terminal or a report raw.
RAW_CONTROLS = (b"\x1b", b"\x07", b"\x00", b"\x9b")


@dataclass(frozen=True)
class Answer:
    """One scripted HTTP/1.1 answer, written byte for byte."""

    status: int = 200
    reason: bytes = b"OK"
    headers: tuple[tuple[bytes, bytes], ...] = ((b"Content-Type", b"application/json"),)
    body: bytes = b""
    #: A Content-Length body of this many bytes, written in 64 KiB blocks (for 64 MiB).
    body_size: int = 0
    #: A chunked body that never ends: one chunk of this, every ``chunk_interval`` seconds.
    endless: bytes = b""
    chunk_interval: float = 0.0
    #: Read the request, then say nothing until the server stops (the handshake completed).
    silent: bool = False


def json_answer(document: object, status: int = 200, *, raw: str | None = None) -> Answer:
    """A JSON answer; ``raw`` is sent as the body instead (numbers JSON cannot spell in Python)."""
    body = raw.encode() if raw is not None else json.dumps(document).encode()
    reason = b"OK" if status == 200 else b"Bad Request"
    return Answer(status=status, reason=reason, body=body)


def token_body(**fields: str) -> str:
    """A token response's JSON text with ``fields`` inlined raw (``expires_in="1e400"``)."""
    base = {"access_token": '"hostile-token"', "token_type": '"Bearer"', "expires_in": "3600"}
    base.update(fields)
    return "{" + ",".join(f'"{k}":{v}' for k, v in base.items()) + "}"


GOOD_TOKEN = json_answer(None, raw=token_body())


def jwt(header: str, payload: str, signature: bytes = b"not-a-signature") -> str:
    """A JWT-shaped token from raw JSON texts (a header or claims Python could not build)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(header.encode())}.{b64(payload.encode())}.{b64(signature)}"


ACCEPTED = json_answer({"received": True})


def redirect(location: bytes, status: int = 302) -> Answer:
    return Answer(status=status, reason=b"Found", headers=((b"Location", location),))


@dataclass(frozen=True)
class Scenario:
    name: str
    token: Answer = GOOD_TOKEN
    webhook: Answer = ACCEPTED
    #: What the scenario is about, for test ids and reports.
    about: str = ""
    #: Hostile text a sender might print; its markup must show as written, not render.
    markup: bool = False


def _scenarios() -> list[Scenario]:
    def bad_token(error: str, description: str, about: str, markup: bool = False) -> Scenario:
        return Scenario(
            f"token_error_{about}",
            token=json_answer({"error": error, "error_description": description}, 400),
            about=f"token error with {about}",
            markup=markup,
        )

    def token_with(name: str, about: str, **fields: str) -> Scenario:
        return Scenario(name, token=json_answer(None, raw=token_body(**fields)), about=about)

    return [
        bad_token(f"invalid_client{OSC52}{CLEAR}", f"{OSC8}{FAKE_PASS}", "osc"),
        bad_token("[/]", MARKUP, "markup", markup=True),
        bad_token("bad\x00client\x07\x9b31m", "line one\r\nPASS line two\x1b[A", "nul_bel_crlf"),
        bad_token("\ud800", "\udfff lone surrogates", "surrogates"),
        Scenario(
            "token_error_500_markup",
            token=json_answer({"error": MARKUP, "error_description": OSC52}, 500),
            about="a 500 with markup and OSC 52 in error",
            markup=True,
        ),
        Scenario(
            "token_error_non_utf8",
            token=Answer(
                status=400, reason=b"Bad", body=b'{"error":"\xff\xfe\x1b[2J","x":"\xc3("}'
            ),
            about="a token error that is not UTF-8",
        ),
        Scenario(
            "token_error_utf16",
            token=Answer(
                status=401,
                reason=b"Unauthorized",
                body=json.dumps(
                    {"error": "invalid_client" + OSC52, "error_description": MARKUP}
                ).encode("utf-16"),
            ),
            about="a token error in UTF-16 (json.loads detects it)",
            markup=True,
        ),
        token_with(
            "expires_1e400_digits", "expires_in 1 followed by 400 zeros", expires_in="1" + "0" * 400
        ),
        token_with(
            "expires_1e400_text",
            "expires_in '1' + 400 zeros as text",
            expires_in='"1' + "0" * 400 + '"',
        ),
        token_with("expires_1e400", "expires_in 1e400", expires_in="1e400"),
        token_with("expires_5000_digits", "expires_in of 5,000 digits", expires_in="9" * 5000),
        token_with("expires_negative", "expires_in -1", expires_in="-1"),
        token_with("expires_nan", "expires_in NaN", expires_in="NaN"),
        token_with("expires_infinity", "expires_in -Infinity", expires_in="-Infinity"),
        token_with("expires_nan_text", "expires_in 'nan' as text", expires_in='"nan"'),
        token_with("token_crlf", "CR/LF in access_token", access_token='"abc\\r\\nX-Injected: 1"'),
        token_with(
            "token_esc",
            "ESC and OSC 52 in access_token",
            access_token=json.dumps("abc" + OSC52 + CLEAR),
        ),
        token_with("token_nul", "NUL in access_token", access_token='"abc\\u0000def"'),
        token_with("token_markup", "markup in access_token", access_token=json.dumps(MARKUP)),
        token_with("token_type_osc", "OSC 8 in token_type", token_type=json.dumps(OSC8)),
        token_with(
            "token_deep_nesting",
            "a token answer nested 30,000 deep (under the 64 KiB read limit)",
            x="[" * 30_000 + "]" * 30_000,
        ),
        Scenario(
            "token_not_object",
            token=json_answer(["access_token", "hostile-token"]),
            about="a token answer that is a JSON array",
        ),
        token_with("token_number", "access_token 1e400", access_token="1e400"),
        token_with(
            "jwt_deep_header",
            "a JWT whose header is nested 20,000 deep",
            access_token=json.dumps(jwt("[" * 20_000 + "]" * 20_000, "{}")),
        ),
        token_with(
            "jwt_huge_claims",
            "a JWT with exp 1e400, iat -1e400, nbf NaN and a 5,000-digit jti",
            access_token=json.dumps(
                jwt(
                    '{"alg":"RS256","typ":"at+jwt","kid":"k"}',
                    '{"exp":1e400,"iat":-1e400,"nbf":NaN,"jti":' + "9" * 5000 + "}",
                )
            ),
        ),
        token_with(
            "jwt_hostile_text",
            "a JWT with escapes and markup in its claims and header",
            access_token=json.dumps(
                jwt(
                    json.dumps({"alg": "RS256", "typ": "at+jwt", "kid": OSC52 + MARKUP + "\ud800"}),
                    json.dumps(
                        {
                            "iss": OSC8 + MARKUP,
                            "aud": [FAKE_PASS, "[/]"],
                            "sub": CLEAR,
                            "scope": "webhook " + OSC52,
                            "exp": 4102444800,
                        }
                    ),
                )
            ),
        ),
        Scenario(
            "token_not_json",
            token=Answer(
                headers=((b"Content-Type", b"text/html"),), body=b"<html>\x1b[2J hi</html>"
            ),
            about="a token answer that is not JSON",
        ),
        Scenario("token_64mib", token=Answer(body_size=64 * MIB), about="a 64 MiB token answer"),
        Scenario(
            "token_endless_slow",
            token=Answer(endless=b" ", chunk_interval=0.2),
            about="a token answer that never ends, slowly",
        ),
        Scenario(
            "token_silent", token=Answer(silent=True), about="token endpoint: TLS, then silence"
        ),
        Scenario(
            "redirect_non_utf8",
            webhook=redirect(b"https://evil.example/\xff\xfe\xc3(" + OSC52.encode()),
            about="a redirect whose Location is not UTF-8",
        ),
        Scenario(
            "redirect_controls",
            webhook=redirect(("https://evil.example/" + OSC8 + FAKE_PASS).encode()),
            about="control characters in Location",
        ),
        Scenario(
            "redirect_bare_cr",
            webhook=redirect(b"https://evil.example/\rX-Injected: 1\x1b[2J"),
            about="a bare CR and ESC in Location",
        ),
        Scenario(
            "redirect_markup",
            webhook=redirect(
                b"https://127.0.0.1/?filter[status]=x&[/]&[link=https://evil.example/]x"
            ),
            about="rich markup in Location",
            markup=True,
        ),
        Scenario(
            "huge_headers",
            webhook=Answer(headers=tuple((f"X-Big-{n}".encode(), b"a" * 8000) for n in range(200))),
            about="1.6 MB of response headers",
        ),
        Scenario(
            "huge_header_line",
            webhook=Answer(headers=((b"X-Big", b"b" * (4 * MIB)),)),
            about="a 4 MiB header line",
        ),
        Scenario(
            "endless_body",
            webhook=Answer(endless=b"x" * 65536),
            about="a 2xx whose body never ends",
        ),
        Scenario(
            "endless_slow_body",
            webhook=Answer(endless=b"x", chunk_interval=0.1),
            about="a 2xx whose body never ends, slowly",
        ),
        Scenario("webhook_64mib", webhook=Answer(body_size=64 * MIB), about="a 64 MiB 2xx body"),
        Scenario(
            "status_line_controls",
            webhook=Answer(
                status=500,
                reason=("Boom" + OSC52 + CLEAR).encode(),
                headers=((b"WWW-Authenticate", ('Bearer error="' + OSC8 + '"').encode()),),
                body=(FAKE_PASS + MARKUP).encode(),
            ),
            about="control characters in the status line and body",
        ),
        Scenario(
            "unauthorized_markup",
            webhook=Answer(
                status=401,
                reason=b"Unauthorized",
                headers=((b"WWW-Authenticate", ('Bearer error="' + MARKUP + '"').encode()),),
                body=json.dumps({"error": MARKUP + OSC52}).encode(),
            ),
            about="401 with markup in WWW-Authenticate",
            markup=True,
        ),
        Scenario(
            "retry_after_huge",
            webhook=Answer(status=503, reason=b"Busy", headers=((b"Retry-After", b"9" * 5000),)),
            about="503 with a 5,000-digit Retry-After",
        ),
        Scenario("webhook_silent", webhook=Answer(silent=True), about="webhook: TLS, then silence"),
    ]


SCENARIOS: dict[str, Scenario] = {s.name: s for s in _scenarios()}


@dataclass
class Seen:
    """A request the endpoint received."""

    scenario: str
    route: str
    method: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HostileEndpoint:
    host: str
    port: int
    ca_file: Path
    scenarios: dict[str, Scenario] = field(default_factory=lambda: dict(SCENARIOS))
    seen: list[Seen] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"https://{self.host}:{self.port}"

    def webhook_url(self, scenario: str) -> str:
        return f"{self.base}/{scenario}/webhook"

    def token_url(self, scenario: str) -> str:
        return f"{self.base}/{scenario}/oauth/token"

    def script(self, scenario: Scenario) -> Scenario:
        self.scenarios[scenario.name] = scenario
        return scenario

    def requests_for(self, scenario: str, route: str | None = None) -> list[Seen]:
        return [s for s in list(self.seen) if s.scenario == scenario and route in (None, s.route)]


class _Server:
    def __init__(self, endpoint: HostileEndpoint, context: ssl.SSLContext) -> None:
        self.endpoint = endpoint
        self.context = context
        self.loop = asyncio.new_event_loop()
        self.stopping: asyncio.Event | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="hostile-endpoint", daemon=True)
        self.tasks: set[asyncio.Task[None]] = set()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the test through start()
            self.error = exc
            self.ready.set()
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self.stopping = asyncio.Event()
        server = await asyncio.start_server(
            self._connection,
            self.endpoint.host,
            self.endpoint.port,
            ssl=self.context,
            limit=MAX_REQUEST_HEAD,
        )
        self.endpoint.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        async with server:
            await self.stopping.wait()
            server.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self._answer(reader, writer)
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ssl.SSLError,
        ):
            pass  # the client hung up or sent garbage: both are its business
        finally:
            self.tasks.discard(task)
            writer.transport.abort()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = (request_line.split(" ") + ["", ""])[:3]
        headers: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or "0")
        body = await reader.readexactly(min(length, MAX_REQUEST_BODY))
        path = target.split("?", 1)[0]
        scenario_name, _, route = path.lstrip("/").partition("/")
        scenario = self.endpoint.scenarios.get(scenario_name)
        self.endpoint.seen.append(Seen(scenario_name, route, method, headers, body))
        if scenario is None:
            answer = json_answer({"error": "no such scenario"}, 404)
        elif route == "oauth/token":
            answer = scenario.token
        else:
            answer = scenario.webhook
        await self._write(writer, answer)

    async def _write(self, writer: asyncio.StreamWriter, answer: Answer) -> None:
        assert self.stopping is not None
        if answer.silent:
            await self.stopping.wait()
            return
        head = [
            b"HTTP/1.1 %d %s" % (answer.status, answer.reason),
            *(k + b": " + v for k, v in answer.headers),
        ]
        head.append(b"Connection: close")
        if answer.endless:
            head.append(b"Transfer-Encoding: chunked")
        else:
            head.append(b"Content-Length: %d" % (answer.body_size or len(answer.body)))
        writer.write(b"\r\n".join(head) + b"\r\n\r\n")
        await writer.drain()
        if answer.endless:
            chunk = b"%x\r\n%s\r\n" % (len(answer.endless), answer.endless)
            while not self.stopping.is_set() and not writer.is_closing():
                writer.write(chunk)
                await writer.drain()
                # Yield even without an interval: drain() does not while the buffer has room,
                # and one endless answer must not starve every other connection.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), answer.chunk_interval or 0.001)
            return
        if answer.body_size:
            block = (b'{"pad":"' + b"a" * 65536)[:65536]
            left = answer.body_size
            while left > 0 and not self.stopping.is_set() and not writer.is_closing():
                writer.write(block[: min(left, len(block))])
                left -= len(block)
                await writer.drain()
                await asyncio.sleep(0)
            return
        writer.write(answer.body)
        await writer.drain()

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(15):
            raise RuntimeError("the hostile endpoint did not start")
        if self.error is not None:
            raise RuntimeError(f"the hostile endpoint failed: {self.error!r}")

    def stop(self) -> None:
        if self.stopping is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(15)


@contextlib.contextmanager
def running_hostile(certs_dir: Path, host: str = "127.0.0.1") -> Iterator[HostileEndpoint]:
    """Serve every scenario over HTTPS on an ephemeral loopback port for the block."""
    files, _ = ensure_dev_certs(Path(certs_dir))
    assert files.ca_file is not None
    endpoint = HostileEndpoint(host, 0, files.ca_file)
    server = _Server(endpoint, server_context(files))
    server.start()
    try:
        yield endpoint
    finally:
        server.stop()
