"""Hostile input for every surface a client can reach, against live servers.

Surfaces: the endpoint's webhook route, its token endpoint and its ``/_kit`` routes (hypothesis);
the provider API from its OpenAPI description (schemathesis) and by hand-written hostile
operations (settings, events, validations, multipart uploads).

Input classes beyond "random": lone UTF-16 surrogates, deep nesting, huge numbers (``1e400``,
5,000-digit integers), control characters (ESC, NUL, CR/LF, BEL, OSC 52 clipboard writes, OSC 8
hyperlinks, C1 CSI, bidi overrides), non-UTF-8 header and form bytes, and rich markup (``[/]``,
``[link=...]``).

Each ``fuzz_*`` runs ``examples`` generated cases and returns how many ran. Every answer goes
through a :class:`Tally`: any 5xx, non-JSON error body, dropped connection or dead server is a
failure. ``Tally(strict=True)`` (the tests) raises on the first, so hypothesis shrinks it;
``Tally(strict=False)`` (``scripts/fuzz.py``) counts them all and keeps one example of each.
After writes that are kept (a recorded request, saved settings), the fuzzers read them back:
a value that is accepted once and then breaks every later read is the worst kind of 500.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import signal
import string
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes, urlsplit, urlunsplit

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests import Response, Session
from requests.adapters import HTTPAdapter

from webhook_kit.contract import notifications

SETTINGS: dict[str, Any] = dict(
    deadline=None, suppress_health_check=list(HealthCheck), database=None
)

# -- hostile values ----------------------------------------------------------------------------

#: Terminal control: clipboard write (OSC 52), a hyperlink (OSC 8), clear screen, a fake green
#: verdict drawn over the line, C1 CSI, a bidi override, a BOM.
ESCAPES: tuple[str, ...] = (
    "\x1b",
    "\x00",
    "\x07",
    "\r",
    "\n",
    "\r\n",
    "\t",
    "\x7f",
    "\x9b",
    "\x1b[2J\x1b[H",
    "\x1b]52;c;ZXZpbA==\x07",
    "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "\r\x1b[2K\x1b[32mPASS: 0 failed\x1b[0m",
    "\u202e",
    "\ufeff",
)
#: rich markup: ``[/]`` closes nothing (rich raised), ``[link=...]`` plants a link.
MARKUP: tuple[str, ...] = (
    "[/]",
    "[link=https://evil.example/]x[/link]",
    "[bold green]PASS[/]",
    "[/link]",
    "?filter[status]=x",
    "[red",
    "[",
    "]",
)
SURROGATES: tuple[str, ...] = ("\ud800", "\udfff", "\udc00x\ud83d")
#: JSON numbers Python reads as inf, as 4,300+-digit integers (refused since 3.11), beyond 64 bits.
HUGE_NUMBERS: tuple[str, ...] = (
    "1e400",
    "-1e400",
    "1E+99999",
    "1e-400",
    "1" + "0" * 400,
    "9" * 5000,
    "-" + "9" * 5000,
    "0." + "0" * 4000 + "1",
    "1" + "0" * 400 + ".5",
    "18446744073709551616",
    "-9223372036854775809",
)

#: Query values: huge numbers, digits int() refuses though str.isdigit() accepts them ("²"),
#: digits of other scripts int() takes, dates past year 9999.
ODD_QUERY_VALUES: tuple[str, ...] = (
    *HUGE_NUMBERS,
    "true",
    "false",
    "yes",
    "0",
    "-1",
    "1",
    "",
    "²",
    "١٢",
    "2026-11-25T21:58:03Z",
    "1e400-01-01",
    "99999-01-01T00:00:00Z",
)


class Raw(str):
    """JSON text placed into a document as it is (a huge number, deep nesting)."""


def nested(depth: int, kind: str) -> Raw:
    if kind == "list":
        return Raw("[" * depth + "]" * depth)
    if kind == "dict":
        return Raw('{"a":' * depth + "1" + "}" * depth)
    return Raw('[{"a":' * (depth // 2) + "[]" + "}]" * (depth // 2))


surrogate = st.integers(0xD800, 0xDFFF).map(chr)
control = st.integers(0, 0x1F).map(chr) | st.integers(0x7F, 0x9F).map(chr)
fragment = (
    st.sampled_from(ESCAPES + MARKUP + SURROGATES) | surrogate | control | st.text(max_size=6)
)
hostile_text = st.text(max_size=40) | st.lists(fragment, min_size=1, max_size=8).map("".join)
raw_json = st.sampled_from(HUGE_NUMBERS).map(Raw) | st.builds(
    nested,
    st.sampled_from((100, 1_000, 1_025, 10_000, 100_000)),
    st.sampled_from(("list", "dict", "mixed")),
)
hostile_json = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.integers()
    | hostile_text
    | raw_json,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4)
    ),
    max_leaves=12,
)
# The plain JSON values the original fuzzers used (no hostile classes).
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=25,
)


def to_json(value: Any, ascii_only: bool = True) -> str:
    """JSON text with :class:`Raw` parts inlined; lone surrogates stay ``\\udxxx`` escapes when
    ``ascii_only``, else they become raw (invalid UTF-8) bytes in :func:`to_bytes`."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        items = (
            f"{json.dumps(str(k), ensure_ascii=ascii_only)}:{to_json(v, ascii_only)}"
            for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def to_bytes(value: Any, ascii_only: bool = True) -> bytes:
    return to_json(value, ascii_only).encode("utf-8", "surrogatepass")


def raw_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def sendable(value: bytes) -> bytes:
    """A header value the client library will put on the wire (no CR/LF, no leading space)."""
    return value.replace(b"\r", b"").replace(b"\n", b"").lstrip(b" \t\x0b\x0c")


# Header values a client can send at all: printable text, or raw bytes (non-UTF-8, controls).
header_text = st.text(
    alphabet=string.ascii_letters + string.digits + string.punctuation + " ", max_size=60
).map(str.strip)
header_value = (
    header_text.map(str.encode)
    | st.binary(max_size=40).map(sendable)
    | hostile_text.map(lambda s: sendable(raw_bytes(s)))
    | st.sampled_from(ESCAPES + MARKUP).map(lambda s: sendable(raw_bytes(s)))
)
# Odd whole bodies: BOMs, UTF-16, invalid UTF-8 inside a string, a surrogate pair split in two.
ODD_BODIES: tuple[bytes, ...] = (
    b"\xef\xbb\xbf{}",
    '{"event_id": "x"}'.encode("utf-16"),
    b'{"event_id": "\xff\xfe"}',
    b'{"event_id": "\xed\xa0\x80"}',
    b'{"event_id": "\\ud83d"}',
    b'{"event_id": "\\udc00\\ud83d"}',
    b"NaN",
    b"Infinity",
    b'{"test": -Infinity}',
    b"",
    b"\x00",
    b"{" * 50_000,
)

STATUSES = [
    "on-course",
    "document-uploaded",
    "selfie-uploaded",
    "deleted",
    "documen2-uploaded",
    "",
    "x",
]
NOTIFICATION_FIELDS = (
    "event_id",
    "validation_id",
    "status",
    "previous_status",
    "occurred_at",
    "scores",
    "test",
)
notification_like = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.text(max_size=200) | json_values,
        "validation_id": st.text(max_size=50) | json_values,
        "status": st.sampled_from(STATUSES) | json_values,
        "previous_status": st.sampled_from(STATUSES) | st.none(),
        "occurred_at": st.just("2026-11-25T21:58:03.412Z") | st.text(max_size=30),
        "scores": st.lists(
            st.fixed_dictionaries({"name": st.text(max_size=30), "value": json_values}), max_size=3
        )
        | json_values,
        "test": json_values,
    },
)


def valid_notification(status: str) -> dict[str, Any]:
    return notifications.build(status, validation_id=str(uuid.uuid4()), previous_status="on-course")


def _replaced(status: str, name: str, value: Any) -> dict[str, Any]:
    body = valid_notification(status)
    if name == "scores.value" and "scores" in body:
        body["scores"][0]["value"] = value
    else:
        body[name] = value
    return body


#: A valid notification with one field hostile: it gets past the token check and into the record.
hostile_notification = st.builds(
    _replaced,
    st.sampled_from(["on-course", "document-uploaded", "deleted"]),
    st.sampled_from((*NOTIFICATION_FIELDS, "scores.value", "extra")),
    hostile_json,
)
webhook_bodies = (
    st.tuples(hostile_notification | notification_like | hostile_json, st.booleans()).map(
        lambda t: to_bytes(*t)
    )
    | raw_json.map(lambda r: r.encode())
    | st.binary(max_size=300)
    | st.sampled_from(ODD_BODIES)
)


# -- the tally ----------------------------------------------------------------------------------

PROTOCOL_REJECT = b"Invalid HTTP request received."


def json_dict(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@dataclass
class Tally:
    """Every answer of a run: 5xx, non-JSON errors, dropped connections, dead servers."""

    strict: bool = True
    #: The same cases on every run (CI); the script draws new ones each time.
    derandomize: bool = False
    #: This field hides the ``requests`` module in the class body: methods annotate with the
    #: names ``Session`` and ``Response`` instead.
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: int = 0
    bad_errors: int = 0
    dropped: int = 0
    dead: int = 0
    protocol_rejects: int = 0
    #: The fuzzer itself stopped (an exception outside any request).
    aborted: int = 0
    #: One example per distinct failure: signature -> the case that showed it.
    examples: dict[str, str] = field(default_factory=dict)
    case: str = ""
    #: Credentials the cases carry: shown as *** in examples and messages.
    secrets: set[str] = field(default_factory=set)

    @property
    def failures(self) -> int:
        return self.server_errors + self.bad_errors + self.dropped + self.dead + self.aborted

    def fail(self, kind: str, signature: str) -> None:
        if kind == "5xx":
            self.server_errors += 1
        elif kind == "bad_error":
            self.bad_errors += 1
        elif kind == "dropped":
            self.dropped += 1
        elif kind == "aborted":
            self.aborted += 1
        else:
            self.dead += 1
        signature, case = self.clean(signature), self.clean(self.case)
        self.examples.setdefault(f"{kind}: {signature}", case[:400])
        if self.strict:
            raise AssertionError(f"{kind}: {signature}\n  case: {case[:600]}")

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def send(
        self,
        http: Session,
        method: str,
        url: str,
        *,
        where: str,
        json_errors: bool = True,
        **kw: Any,
    ) -> Response | None:
        """One request; a keep-alive connection the server closed is retried once on a new
        connection, a second failure is a dropped request."""
        kw.setdefault("timeout", 30)
        response = None
        for attempt in (1, 2):
            try:
                response = http.request(method, url, **kw)
                break
            except requests.ConnectionError as exc:
                if attempt == 2:
                    self.fail("dropped", f"{where}: {type(exc).__name__} {str(exc)[:120]}")
                    return None
        assert response is not None
        self.requests += 1
        self.statuses[response.status_code] += 1
        self.check(response, where, json_errors=json_errors)
        return response

    def check(self, response: Response, where: str, *, json_errors: bool = True) -> None:
        status = response.status_code
        if status >= 500:
            self.fail("5xx", f"{where} -> {status} {response.text[:160]}")
            return
        if self.protocol_level(response):
            self.protocol_rejects += 1
            return
        if json_errors and status >= 400 and response.content and json_dict(response) is None:
            self.fail("bad_error", f"{where} -> {status} non-JSON {response.text[:120]!r}")

    @staticmethod
    def protocol_level(response: Response) -> bool:
        """The HTTP server's own 400 for bytes HTTP/1.1 forbids (a control byte in a header
        value): uvicorn's text line, hypercorn's empty body. The request never reached the app,
        so it cannot answer JSON: counted apart, not failed."""
        return response.status_code == 400 and response.content in (PROTOCOL_REJECT, b"")

    def check_api_error(self, response: Response, where: str) -> None:
        """A provider 4xx is ``{"error_type", "error_message"}`` (5xx are counted already)."""
        status = response.status_code
        if not 400 <= status < 500 or self.protocol_level(response):
            return
        body = json_dict(response) or {}
        if not (
            isinstance(body.get("error_type"), str) and isinstance(body.get("error_message"), str)
        ):
            self.fail("bad_error", f"{where} -> {status} {response.text[:120]}")

    def alive(self, http: Session, health_url: str, where: str) -> None:
        try:
            ok = http.get(health_url, timeout=10).status_code == 200
        except requests.RequestException:
            ok = False
        if not ok:
            self.fail("dead", f"{where}: {health_url} did not answer 200")

    def summary(self) -> str:
        lines = [
            f"requests {self.requests}, 5xx {self.server_errors}, non-JSON errors "
            f"{self.bad_errors}, dropped {self.dropped}, health failures {self.dead}, "
            f"protocol-level 400s {self.protocol_rejects}"
            + (", the fuzzer stopped early" if self.aborted else ""),
            "statuses " + ", ".join(f"{k}x{v}" for k, v in sorted(self.statuses.items())),
        ]
        for signature, case in list(self.examples.items())[:25]:
            lines.append(f"  {signature}\n      e.g. {case}")
        return "\n".join(lines)


class StreamWatch:
    """Reads ``/_kit/stream`` for the whole run: every ``data:`` line must be strict JSON (the
    inspector page parses them with ``JSON.parse``, which refuses ``Infinity`` and ``NaN``)."""

    def __init__(self, http: requests.Session, url: str) -> None:
        self.http = http
        self.url = url
        self.events = 0
        self.invalid: list[str] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._response: requests.Response | None = None
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> StreamWatch:
        self._thread.start()
        if not self._connected.wait(10):
            self.error = "the stream did not connect"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._response is not None:
            self._response.close()
        self._thread.join(10)

    def _read(self) -> None:
        try:
            with self.http.get(self.url, stream=True, timeout=(10, 120)) as response:
                self._response = response
                self._connected.set()
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith(b"data:"):
                        self.events += 1
                        try:
                            json.loads(line[5:], parse_constant=_refuse_constant)
                        except ValueError as exc:
                            self.invalid.append(f"{exc}: {line[:120]!r}")
        except Exception as exc:  # the stream is reported, not raised in a thread
            if not self._stop.is_set():
                self.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            self._connected.set()
            if not self._stop.is_set() and self.error is None:
                self.error = "the server ended the stream"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _every(n: int) -> Callable[[], bool]:
    count = [0]

    def tick() -> bool:
        count[0] += 1
        return count[0] % n == 0

    return tick


# -- the endpoint: webhook route, token endpoint, /_kit ------------------------------------------


def fuzz_webhook(
    http: requests.Session, base: str, url: str, token: str, examples: int, tally: Tally
) -> int:
    """``POST /webhook`` with hostile bodies and headers; after each, the newest records must
    still read back (``/_kit/deliveries``), and now and then the inspector page and export."""
    count = [0]
    now_and_then = _every(25)
    tally.secrets.add(token)

    @settings(max_examples=examples, derandomize=tally.derandomize, **SETTINGS)
    @given(
        body=webhook_bodies,
        content_type=st.sampled_from(
            [
                b"application/json",
                b"application/json; charset=utf-8",
                b"text/plain",
                b"",
                b"application/json; charset=latin-1",
            ]
        )
        | header_value,
        authorization=st.sampled_from(["good", "good", "none"]) | header_value,
        webhook_id=st.none() | header_value,
    )
    def run(body: bytes, content_type: bytes, authorization: Any, webhook_id: bytes | None) -> None:
        count[0] += 1
        headers: dict[str, Any] = {"Content-Type": content_type}
        if authorization == "good":
            headers["Authorization"] = f"Bearer {token}"
        elif authorization != "none":
            headers["Authorization"] = authorization
        if webhook_id is not None:
            headers["Webhook-Id"] = webhook_id
        tally.case = f"POST {url} headers={headers!r} body={body[:300]!r}"
        tally.send(http, "POST", url, data=body, headers=headers, where="POST /webhook")
        tally.send(
            http, "GET", base + "/_kit/deliveries?limit=3", where="GET /_kit/deliveries after it"
        )
        if now_and_then():
            for path in ("/_kit/", "/_kit/index.json", "/_kit/deliveries.jsonl"):
                tally.send(http, "GET", base + path, where=f"GET {path} after it")

    run()
    return count[0]


def encode_form(form: dict[Any, Any]) -> bytes:
    def part(value: Any) -> str:
        data = value if isinstance(value, bytes) else raw_bytes(str(value))
        return quote_from_bytes(data)

    return "&".join(f"{part(k)}={part(v)}" for k, v in form.items()).encode()


def basic(client_id: Any, secret: Any) -> bytes:
    user = client_id if isinstance(client_id, bytes) else raw_bytes(client_id)
    password = secret if isinstance(secret, bytes) else raw_bytes(secret)
    return b"Basic " + base64.b64encode(user + b":" + password)


def fuzz_token_endpoint(
    http: requests.Session, url: str, client_id: str, secret: str, examples: int, tally: Tally
) -> int:
    """``POST /oauth/token``: hostile form fields (percent-encoded controls, surrogates, non-UTF-8),
    hostile Basic credentials and raw bodies. Errors are RFC 6749 JSON; the secret never echoes."""
    count = [0]
    tally.secrets.update((secret, base64.b64encode(f"{client_id}:{secret}".encode()).decode()))
    value = (
        st.sampled_from(["client_credentials", "password", "", client_id, secret])
        | hostile_text
        | st.binary(max_size=20)
        | st.sampled_from(HUGE_NUMBERS)
    )
    form = st.dictionaries(
        st.sampled_from(["grant_type", "scope", "audience", "client_id", "client_secret", "x"])
        | hostile_text,
        value,
        max_size=5,
    )
    credential = st.just(client_id) | hostile_text | st.binary(max_size=20)
    body = (
        form.map(encode_form)
        | st.binary(max_size=200)
        | st.tuples(hostile_json, st.booleans()).map(lambda t: to_bytes(*t))
        | raw_json.map(lambda r: r.encode())
    )

    @settings(max_examples=examples, derandomize=tally.derandomize, **SETTINGS)
    @given(
        raw=body,
        auth=st.sampled_from(["good", "none", "wrong"])
        | header_value
        | st.tuples(credential, st.just(secret) | credential).map(lambda t: basic(*t)),
        content_type=st.sampled_from(
            [b"application/x-www-form-urlencoded", b"application/json", b""]
        )
        | header_value,
        same_source=st.sampled_from([False] * 9 + [True]),
    )
    def run(raw: bytes, auth: Any, content_type: bytes, same_source: bool) -> None:
        count[0] += 1
        headers: dict[str, Any] = {"Content-Type": content_type}
        if auth == "good":
            headers["Authorization"] = basic(client_id, secret)
        elif auth == "wrong":
            headers["Authorization"] = basic(client_id, secret + "x")
        elif auth != "none":
            headers["Authorization"] = auth
        tally.case = f"POST {url} headers={headers!r} body={raw[:300]!r}"
        # Failed authentications are limited per client address: most cases come from their own
        # loopback address so that the endpoint's logic, not only its 429, is what gets fuzzed.
        client = http if same_source else sources.next()
        response = tally.send(
            client, "POST", url, data=raw, headers=headers, where="POST /oauth/token"
        )
        if response is None:
            return
        if response.status_code >= 400 and not tally.protocol_level(response):
            error = (json_dict(response) or {}).get("error")
            if not isinstance(error, str):  # RFC 6749 section 5.2
                tally.fail(
                    "bad_error", f"token error without an 'error' string: {response.text[:120]}"
                )
        if secret.encode() in response.content:
            tally.fail("bad_error", "the client secret was echoed")

    sources = LoopbackSources(http.verify)
    try:
        run()
    finally:
        sources.close()
    return count[0]


class _SourceAdapter(HTTPAdapter):
    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class LoopbackSources:
    """Sessions that connect from 127.1.x.y, a different address each time (all loopback)."""

    def __init__(self, verify: Any) -> None:
        self.verify = verify
        self.counter = 0
        self.current: requests.Session | None = None

    def next(self) -> requests.Session:
        self.close()
        self.counter += 1
        address = f"127.1.{(self.counter >> 8) % 256}.{self.counter % 254 + 1}"
        session = requests.Session()
        session.trust_env = False
        session.verify = self.verify
        session.mount("https://", _SourceAdapter(address))
        self.current = session
        return session

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


KIT_PATHS = (
    "/_kit/",
    "/_kit",
    "/_kit/deliveries",
    "/_kit/deliveries.jsonl",
    "/_kit/index.json",
    "/_kit/health",
    "/_kit/rotate-key",
    "/_kit/assets/inspector.js",
    "/_kit/assets/inspector.css",
    "/_kit/assets/",
    "/.well-known/jwks.json",
    "/.well-known/oauth-authorization-server",
)
QUERY_NAMES = ("status", "accepted", "rejected", "validation_id", "limit", "x")


def percent(value: Any) -> str:
    return quote_from_bytes(value if isinstance(value, bytes) else raw_bytes(str(value)), safe="")


def fuzz_kit_routes(http: requests.Session, base: str, examples: int, tally: Tally) -> int:
    """``/_kit`` and ``/.well-known`` with hostile paths, query strings, headers and bodies."""
    count = [0]
    query_value = hostile_text | st.binary(max_size=20) | st.sampled_from(ODD_QUERY_VALUES)

    @settings(max_examples=examples, derandomize=tally.derandomize, **SETTINGS)
    @given(
        method=st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "DELETE", "PUT", "OPTIONS"]),
        path=st.sampled_from(KIT_PATHS)
        | st.tuples(
            st.sampled_from(["/_kit/", "/_kit/assets/", "/_kit/deliveries/"]),
            hostile_text
            | st.binary(max_size=20)
            | st.sampled_from(["..%2f..%2fetc%2fpasswd", "%00"]),
        ).map(
            lambda t: t[0] + (t[1] if t[1] in ("..%2f..%2fetc%2fpasswd", "%00") else percent(t[1]))
        ),
        query=st.lists(
            st.tuples(st.sampled_from(QUERY_NAMES) | hostile_text, query_value), max_size=4
        ),
        origin=st.none() | header_value,
        body=st.none()
        | st.binary(max_size=100)
        | st.tuples(hostile_json, st.booleans()).map(lambda t: to_bytes(*t)),
    )
    def run(
        method: str,
        path: str,
        query: list[tuple[Any, Any]],
        origin: bytes | None,
        body: bytes | None,
    ) -> None:
        count[0] += 1
        qs = "&".join(f"{percent(k)}={percent(v)}" for k, v in query)
        url = base + path + ("?" + qs if qs else "")
        headers = {"Origin": origin} if origin is not None else {}
        tally.case = f"{method} {url[:300]} headers={headers!r} body={(body or b'')[:200]!r}"
        tally.send(http, method, url, data=body, headers=headers, where=f"{method} {path[:60]}")

    run()
    return count[0]


# -- the provider API ---------------------------------------------------------------------------

#: Hosts a fuzzed settings URL may name: loopback only, however it is spelled.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "127.0.0.2", "user:pw@127.0.0.1")


def loopback_url(url: Any, netloc: str) -> Any:
    """``url`` with its host replaced by ``netloc`` (a loopback address): generated settings must
    never send deliveries or token requests off the machine. Non-URLs pass unchanged."""
    if not isinstance(url, str) or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # unparseable: keep the hostile text, as a path on loopback
        return f"https://{netloc}/{url.split('://', 1)[1]}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _keep_local(body: Any, netloc: str) -> Any:
    if isinstance(body, dict):
        body = dict(body)
        if "url" in body:
            body["url"] = loopback_url(body["url"], netloc)
        auth = body.get("auth")
        if isinstance(auth, dict) and "token_url" in auth:
            body["auth"] = {**auth, "token_url": loopback_url(auth["token_url"], netloc)}
    return body


def _fuzz_operation(
    http: requests.Session,
    base_url: str,
    apikey: str,
    operation: Any,
    examples: int,
    tally: Tally,
    netloc: str,
) -> int:
    count = [0]
    tally.secrets.add(apikey)

    @settings(max_examples=examples, derandomize=tally.derandomize, **SETTINGS)
    @given(case=operation.as_strategy(), key=st.sampled_from([apikey, apikey, apikey, "wrong"]))
    def run(case: Any, key: str) -> None:
        count[0] += 1
        if case.body is not None and not isinstance(case.body, (bytes, str)):
            case.body = _keep_local(case.body, netloc)
        where = f"{case.method} {case.formatted_path}"
        tally.case = f"{where} body={str(case.body)[:300]} query={case.query}"
        kwargs = case.as_transport_kwargs(base_url=base_url, headers={"apikey": key})
        method = kwargs.pop("method")
        url = kwargs.pop("url")
        for name in ("verify", "cookies"):
            kwargs.pop(name, None)
        response = tally.send(http, method, url, where=where, **kwargs)
        if response is not None:
            tally.check_api_error(response, where)

    run()
    return count[0]


def fuzz_provider(
    http: requests.Session,
    base_url: str,
    apikey: str,
    examples_per_operation: int,
    tally: Tally,
    netloc: str,
) -> int:
    """Every operation of the OpenAPI description, cases generated by schemathesis; settings URLs
    are kept on loopback (``netloc``)."""
    import schemathesis
    from schemathesis.core.result import Err

    spec = json.loads(http.get(base_url + "/openapi.json", timeout=30).text)
    schema = schemathesis.openapi.from_dict(spec)
    count = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            # An operation schemathesis cannot read is a broken description, not a skipped one.
            raise result.err()
        operation = result.ok()
        count += _fuzz_operation(
            http, base_url, apikey, operation, examples_per_operation, tally, netloc
        )
    return count


@dataclass(frozen=True)
class Op:
    """One hostile provider request, and what must read back fine after it."""

    method: str
    path: str
    kwargs: dict[str, Any]
    label: str
    reads: tuple[str, ...] = ()


def _settings_document(
    netloc: str, good: dict[str, Any], field_name: str, value: Any, path_tail: str, host: str
) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(json.dumps(good))
    document["url"] = f"https://{host.replace('127.0.0.1', netloc)}/webhook{path_tail}"
    top, _, inner = field_name.partition(".")
    if field_name in ("url", "auth.token_url"):
        value = loopback_url(value, netloc)  # a generated URL must not leave the machine
    if inner:
        document[top][inner] = value
    else:
        document[top] = value
    return _keep_local(document, netloc) if field_name.startswith("extra") else document


EVENT_PARAMS = ("sent", "status", "validation_id", "since", "until", "limit", "cursor", "x")
UPLOADS = (("document", "documentImage"), ("selfie", "image"), ("video", "video"))


def multipart(
    field_name: bytes, filename: bytes, part_type: bytes, extra: list[bytes]
) -> tuple[bytes, bytes]:
    """A multipart body built by hand, so that names and filenames can carry any byte."""
    boundary = b"fuzzb0undary"
    parts = [
        b'Content-Disposition: form-data; name="'
        + field_name
        + b'"; filename="'
        + filename
        + b'"\r\n'
        b"Content-Type: " + part_type + b"\r\n\r\n\xff\xd8 image bytes",
        b'Content-Disposition: form-data; name="analysisType"\r\n\r\ncomplete',
        *(b'Content-Disposition: form-data; name="' + e + b'"\r\n\r\n' + e for e in extra),
    ]
    body = (
        b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
        + b"--"
        + boundary
        + b"--\r\n"
    )
    return body, b"multipart/form-data; boundary=" + boundary


#: Stands for the validation an upload goes to; replaced when the case runs, so that generating
#: a case never touches the network (hypothesis replays generation and must see the same draws).
CURRENT_VALIDATION = "<current-validation>"


def provider_ops(netloc: str, good: dict[str, Any]) -> Any:
    """A strategy of hostile :class:`Op`s over settings, events, validations and uploads."""
    settings_field = st.sampled_from(
        [
            "auth.client_id",
            "auth.client_secret",
            "auth.scope",
            "auth.audience",
            "auth.token_url",
            "url",
            "enabled",
            "auth.client_auth_method",
            "extra",
            "auth.extra",
        ]
    )
    path_tail = (
        st.just("")
        | hostile_text.map(lambda s: percent(s))
        | st.sampled_from(["?filter[status]=x", "/[/]", "?a=%1b%5b2J", "#[link=x]"])
    )
    host = st.sampled_from(LOOPBACK_HOSTS)
    settings_write = st.builds(
        lambda method, f, v, tail, h, ascii_only: Op(
            method,
            "/webhook/settings",
            {
                "data": to_bytes(_settings_document(netloc, good, f, v, tail, h), ascii_only),
                "headers": {"Content-Type": "application/json"},
            },
            f"{method} /webhook/settings {f}",
            ("/webhook/settings",),
        ),
        st.sampled_from(["POST", "PUT"]),
        settings_field,
        hostile_json | hostile_text,
        path_tail,
        host,
        st.booleans(),
    )
    settings_raw = st.builds(
        lambda method, body: Op(
            method,
            "/webhook/settings",
            {"data": body, "headers": {"Content-Type": "application/json"}},
            f"{method} /webhook/settings (raw)",
            ("/webhook/settings",),
        ),
        st.sampled_from(["POST", "PUT"]),
        raw_json.map(lambda r: r.encode())
        | st.sampled_from(ODD_BODIES)
        | st.tuples(hostile_json, st.booleans()).map(
            lambda t: to_bytes(_keep_local(t[0], netloc), t[1])
        ),
    )
    reset = st.just(
        Op("POST", "/webhook/settings", {"json": good}, "POST /webhook/settings (good)")
    )
    test = st.just(Op("POST", "/webhook/test", {}, "POST /webhook/test", ("/webhook/settings",)))
    query_value = hostile_text | st.binary(max_size=20) | st.sampled_from(ODD_QUERY_VALUES)
    events_query = st.builds(
        lambda path, query: Op(
            "GET" if "redelivery" not in path else "POST",
            path + "?" + "&".join(f"{percent(k)}={percent(v)}" for k, v in query),
            {},
            f"{path} query",
        ),
        st.sampled_from(["/webhook/events", "/webhook/validations", "/webhook/events/redelivery"]),
        st.lists(st.tuples(st.sampled_from(EVENT_PARAMS) | hostile_text, query_value), max_size=4),
    )
    id_path = st.builds(
        lambda template, ident: Op(
            template[0], template[1].format(percent(ident)), {}, f"{template[0]} {template[1]}"
        ),
        st.sampled_from(
            [
                ("GET", "/webhook/events/{}"),
                ("POST", "/webhook/events/{}/redelivery"),
                ("GET", "/validation/{}"),
                ("DELETE", "/validation/{}"),
                ("GET", "/validation/{}/events"),
                ("PUT", "/validation/{}/cancellation"),
            ]
        ),
        hostile_text | st.binary(max_size=20) | st.sampled_from(HUGE_NUMBERS),
    )
    create = st.builds(
        lambda body: Op(
            "POST",
            "/validation",
            {"data": body, "headers": {"Content-Type": "application/json"}},
            "POST /validation",
        ),
        st.just(b"")
        | raw_json.map(lambda r: r.encode())
        | st.tuples(hostile_json, st.booleans()).map(lambda t: to_bytes(*t)),
    )

    def upload(
        which: tuple[str, str],
        name: Any,
        filename: Any,
        part_type: Any,
        extra: list[Any],
        json_body: Any,
    ) -> Op:
        change, field_name = which
        path = f"/validation/{CURRENT_VALIDATION}/{change}"
        if json_body is not None:
            return Op(
                "PUT",
                path,
                {"data": json_body, "headers": {"Content-Type": "application/json"}},
                f"PUT {change} (JSON)",
            )
        body, content_type = multipart(
            field_name.encode()
            if name is None
            else sendable(raw_bytes(name) if isinstance(name, str) else name).replace(b'"', b""),
            sendable(raw_bytes(filename) if isinstance(filename, str) else filename).replace(
                b'"', b""
            ),
            part_type,
            [sendable(raw_bytes(e)).replace(b'"', b"") for e in extra],
        )
        return Op(
            "PUT",
            path,
            {"data": body, "headers": {"Content-Type": content_type}},
            f"PUT {change} multipart",
        )

    uploads = st.builds(
        upload,
        st.sampled_from(UPLOADS),
        st.none() | hostile_text | st.binary(max_size=10),
        hostile_text | st.binary(max_size=20) | st.sampled_from(["../../etc/passwd", "a" * 5000]),
        st.sampled_from([b"image/jpeg", b"application/octet-stream"]) | header_value,
        st.lists(hostile_text, max_size=3),
        st.none() | st.tuples(hostile_json, st.booleans()).map(lambda t: to_bytes(*t)),
    )
    return st.one_of(
        settings_write, settings_raw, reset, test, events_query, id_path, create, uploads
    )


def fuzz_provider_hostile(
    http: requests.Session,
    base_url: str,
    apikey: str,
    netloc: str,
    good_settings: dict[str, Any],
    examples: int,
    tally: Tally,
    other_key: str | None = None,
) -> int:
    """Hostile requests to every provider surface; after each write, the settings and the event
    list must still read back (a value stored once must not break every later read).

    With ``other_key`` (another account's), some requests go with it: its answers must never
    carry the first account's validation ids (an isolation failure).
    """
    count = [0]
    current: list[str] = []
    tally.secrets.update((apikey, good_settings["auth"]["client_secret"]))

    def validation_id() -> str:
        """A validation to upload to: a fresh one now and then (uploads move it along and a
        hostile DELETE may end it)."""
        if not current or count[0] % 50 == 0:
            response = tally.send(
                http,
                "POST",
                base_url + "/validation",
                headers={"apikey": apikey},
                where="POST /validation (setup)",
            )
            if response is not None and response.status_code == 201:
                current[:] = [response.json()["data"]["id"]]
        return current[0] if current else "missing"

    http.post(
        base_url + "/webhook/settings", json=good_settings, headers={"apikey": apikey}, timeout=30
    )
    now_and_then = _every(20)

    @settings(max_examples=examples, derandomize=tally.derandomize, **SETTINGS)
    @given(
        op=provider_ops(netloc, good_settings),
        key=st.sampled_from([apikey] * 7 + ["wrong"] + [other_key] * 2 * bool(other_key))
        | header_value,
    )
    def run(op: Op, key: Any) -> None:
        count[0] += 1
        if CURRENT_VALIDATION in op.path:
            op = dataclasses.replace(op, path=op.path.replace(CURRENT_VALIDATION, validation_id()))
        headers = {"apikey": key, **op.kwargs.get("headers", {})}
        kwargs = {k: v for k, v in op.kwargs.items() if k != "headers"}
        shown_key = "good" if key == apikey else "other" if key == other_key else repr(key)
        tally.case = f"{op.method} {op.path[:200]} apikey={shown_key} {str(kwargs)[:400]}"
        response = tally.send(
            http, op.method, base_url + op.path, headers=headers, where=op.label, **kwargs
        )
        if response is not None:
            tally.check_api_error(response, op.label)
            if other_key is not None and key == other_key:
                # The first account's validations may never show to the other; what the request
                # carried itself may come back (a 404 naming the id it asked for). (Settings
                # are not compared: the other account may save the very same ones.)
                asked = op.path + str(kwargs)
                leaked = [v for v in current if v in response.text and v not in asked]
                if leaked:
                    tally.fail(
                        "isolation", f"{op.label}: another account's answer held {leaked[0]}"
                    )
        for path in op.reads:
            tally.send(
                http,
                "GET",
                base_url + path,
                headers={"apikey": apikey},
                where=f"GET {path} after {op.label}",
            )
        if now_and_then():
            tally.send(
                http,
                "GET",
                base_url + "/webhook/events?limit=20",
                headers={"apikey": apikey},
                where=f"GET /webhook/events after {op.label}",
            )

    run()
    return count[0]


@dataclass
class SurfaceResult:
    name: str
    cases: int
    tally: Tally
    seconds: float


def timed(name: str, tally: Tally, run: Callable[[], int]) -> SurfaceResult:
    """Run one surface; a fuzzer that dies part-way is a failure of the run, not its end."""
    started = time.monotonic()
    try:
        cases = run()
    except Exception as exc:
        tally.case = f"the {name} fuzzer stopped"
        tally.fail("aborted", f"{type(exc).__name__}: {str(exc)[:300]}")
        cases = 0
    return SurfaceResult(name, cases, tally, time.monotonic() - started)


def iter_failures(results: list[SurfaceResult]) -> Iterator[str]:
    for result in results:
        for signature, case in result.tally.examples.items():
            yield f"[{result.name}] {signature}\n    e.g. {case}"


# -- `webhook-kit serve` as a process: its console ------------------------------------------------

#: Characters that act on a terminal when printed raw (C1 CSI included).
TERMINAL_CONTROLS = ("\x1b", "\x07", "\x00", "\x9b")


class ServeProcess:
    """``webhook-kit serve`` in text mode, its console written to a file: what a developer's
    terminal would show while anyone who can reach the port sends requests."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.directory = directory
        self.console = directory / "console.txt"
        self.client_id = "fuzz-client"
        self.client_secret = base64.urlsafe_b64encode(os.urandom(24)).decode()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.fields: dict[str, str] = {}

    def __enter__(self) -> ServeProcess:
        args = [
            sys.executable, "-m", "webhook_kit", "serve", "--port", "0",
            "--certs-dir", str(self.directory / "certs"),
            "--client-id", self.client_id,
            "--client-secret", self.client_secret,
            *self.extra,
        ]  # fmt: skip
        with self.console.open("wb") as out:
            self.process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, cwd=self.directory
            )
        deadline = time.monotonic() + 30
        while "Press Ctrl+C" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"serve did not start:\n{self.output()}")
            time.sleep(0.05)  # polling a condition, with a deadline
        for line in self.output().splitlines():
            label, _, value = line.strip().partition(" ")
            if value:
                self.fields[label] = value.strip()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def output(self) -> str:
        return self.console.read_bytes().decode("utf-8", "backslashreplace")

    @property
    def url(self) -> str:
        return self.fields["url"]

    @property
    def base(self) -> str:
        return self.url.rsplit("/", 1)[0]

    def session(self) -> requests.Session:
        http = requests.Session()
        http.trust_env = False
        http.verify = self.fields["ca_file"]
        return http

    def token(self, http: requests.Session) -> str:
        response = http.post(
            self.fields["token_url"],
            data={"grant_type": "client_credentials"},
            auth=(self.client_id, self.client_secret),
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])
