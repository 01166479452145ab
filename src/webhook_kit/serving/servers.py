"""Run an ASGI app over TLS under uvicorn or hypercorn, on a socket bound here.

Binding the socket ourselves makes ``--port 0`` work (the port is known before the server starts),
turns "port in use" into one clear error, and lets readiness be reported only after a real TLS
request to the running server succeeded. Signals are handled by the caller, never by the server:
uvicorn would re-raise SIGTERM after shutting down and the process would not exit 0.

Slow clients are bounded: a TLS handshake must finish within SSL_HANDSHAKE_TIMEOUT (see
``runtime``), a request's headers within HEADER_TIMEOUT of the connection (or of the previous
response), and a body must keep arriving at BODY_MIN_RATE bytes a second, checked every
BODY_TIMEOUT seconds (a slow but steady upload is fine; one byte now and then is not). uvicorn has
no header timeout of its own,
so its protocol is wrapped (:func:`_deadline_protocol`); without that, a few thousand connections
that trickle header lines hold the server's descriptors forever (slowloris). hypercorn gets the
same figures from its own settings. ``scripts/slowloris.py`` measures it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import resource
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from webhook_kit.errors import ServerError
from webhook_kit.serving.loop import SSL_HANDSHAKE_TIMEOUT
from webhook_kit.tls import CertFiles, pinned_context

ServerName = Literal["uvicorn", "hypercorn"]
HEALTH_PATH = "/_kit/health"
READY_TIMEOUT = 20.0
SHUTDOWN_GRACE = 5.0
#: Seconds a client has to send a request's headers, from connecting or from the last response.
HEADER_TIMEOUT = 10.0
#: Seconds between checks that a body is still arriving at BODY_MIN_RATE.
BODY_TIMEOUT = 30.0
#: Bytes a second a body must average over each BODY_TIMEOUT (nginx closes at no progress at all).
BODY_MIN_RATE = 1024
#: Loggers whose DEBUG lines quote header blocks (Authorization, apikey) verbatim.
HEADER_LOGGERS = ("hpack", "h2")

log = logging.getLogger("webhook_kit.serving.servers")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; raises :class:`ServerError` with one clear line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServerError(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this; uvloop does not set it on sockets handed to it, and
    # without it small responses wait ~40 ms for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServerError(f"port {port} on {host} is already in use") from exc
        raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.setblocking(False)
    return sock


def url_host(sock: socket.socket) -> str:
    """The host part of a URL that reaches ``sock`` (a wildcard bind is reached via loopback)."""
    host = sock.getsockname()[0]
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def is_loopback(sock: socket.socket) -> bool:
    """Whether ``sock`` listens on a loopback address only (a wildcard bind is not)."""
    host = sock.getsockname()[0]
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


async def _probe(host: str, port: int, files: CertFiles) -> bool:
    """One HTTPS request to the health route; True when the server answered 200."""
    ctx = pinned_context(files.cert_file)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), port, ssl=ctx), timeout=2
        )
    except (TimeoutError, OSError):
        return False
    try:
        writer.write(
            f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout=2)
        return line.split(b" ")[1:2] == [b"200"]
    except (TimeoutError, OSError, IndexError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), timeout=1)


async def serve(
    app: Any,
    *,
    sock: socket.socket,
    files: CertFiles,
    server: ServerName = "uvicorn",
    shutdown: asyncio.Event,
    ready: Callable[[], None] | None = None,
    header_timeout: float = HEADER_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    client_ca: Path | None = None,
) -> None:
    """Serve ``app`` on ``sock`` until ``shutdown`` is set; ``ready()`` once it answers.

    ``header_timeout`` and ``body_timeout`` bound slow clients under uvicorn (see above).
    ``client_ca`` asks clients for a certificate issued by it (optional: a client without one
    still connects); under uvicorn the app finds a verified one in the ASGI TLS extension,
    ``scope["extensions"]["tls"]["client_cert_chain"]``.
    """
    quiet_header_loggers()
    raise_fd_limit()
    if server == "uvicorn":
        protocol = _deadline_protocol(header_timeout, body_timeout, tls_extension=bool(client_ca))
        task, stop = _start_uvicorn(app, sock, files, protocol, client_ca)
    elif server == "hypercorn":
        task, stop = _start_hypercorn(app, sock, files, shutdown, client_ca)
    else:
        raise ServerError(f"unknown server {server!r}")
    host, port = url_host(sock), sock.getsockname()[1]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT
    while not await _probe(host, port, files):
        if task.done():
            task.result()  # surfaces the server's own start-up error
            raise ServerError(f"{server} stopped before it was ready")
        if loop.time() > deadline:
            stop()
            raise ServerError(f"{server} did not become ready within {READY_TIMEOUT:.0f}s")
        await asyncio.sleep(0.02)
    if ready is not None:
        ready()
    stopper = asyncio.ensure_future(shutdown.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    stop()
    # hypercorn waits for idle keep-alive connections to time out before it returns; a client
    # holding one open must not keep a stopping server alive, so the grace period is bounded.
    done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_GRACE)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    elif not task.cancelled():
        task.result()


class _NoDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_NO_DEBUG = _NoDebug()


def quiet_header_loggers() -> None:
    """Keep hpack's and h2's DEBUG lines out of every log: they carry credentials verbatim.

    The level is pinned on the parent loggers (hpack logs as ``hpack.hpack`` and ``hpack.table``)
    and a filter on each logger that exists catches one later set to DEBUG on its own.
    """
    for name in HEADER_LOGGERS:
        parent = logging.getLogger(name)
        if parent.level < logging.INFO:
            parent.setLevel(logging.INFO)
        for logger_name, logger in list(logging.Logger.manager.loggerDict.items()):
            if logger_name == name or logger_name.startswith(name + "."):
                if isinstance(logger, logging.Logger) and _NO_DEBUG not in logger.filters:
                    logger.addFilter(_NO_DEBUG)
        if _NO_DEBUG not in parent.filters:
            parent.addFilter(_NO_DEBUG)


def raise_fd_limit() -> int:
    """Raise the soft descriptor limit to the hard one; returns the soft limit now in force.

    Every open connection costs a descriptor, and a soft limit of 1024 (common) lets about a
    thousand idle connections stop the server from accepting anyone else.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 16
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d: %s", soft, exc)
            return soft
        log.debug("raised the open-file limit from %d to %d", soft, wanted)
        return wanted
    return soft


def _tls_extension(app: Any, ssl_object: ssl.SSLObject) -> Any:
    """``app`` with the ASGI TLS extension's client certificate in each scope of a connection
    (uvicorn does not fill it); the certificate was verified in the handshake."""
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    tls = {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }

    async def with_tls(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope.setdefault("extensions", {}).setdefault("tls", tls)
        await app(scope, receive, send)

    return with_tls


def _deadline_protocol(
    header_timeout: float, body_timeout: float, *, tls_extension: bool = False
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol with header and body deadlines (it has neither).

    One timer per connection. It is armed when the connection opens and after each response;
    when it fires, a connection still waiting for headers is closed, and one in the middle of a
    body is checked again every ``body_timeout`` seconds and closed once less than BODY_MIN_RATE
    bytes a second arrived since the last check. A request whose body is complete is never
    touched, so slow handlers (``--delay``) and the live stream are unaffected.
    """
    base: Any
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

    class DeadlineProtocol(base):  # type: ignore[misc]
        app: Any
        _kit_timer: asyncio.TimerHandle | None = None
        _kit_body_cycle: object = None
        _kit_received = 0
        _kit_mark = 0

        def data_received(self, data: bytes) -> None:
            self._kit_received += len(data)
            super().data_received(data)

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if tls_extension:
                ssl_object = transport.get_extra_info("ssl_object")
                if ssl_object is not None:
                    self.app = _tls_extension(self.app, ssl_object)
            self._kit_arm(header_timeout)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._kit_arm(header_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._kit_cancel()
            super().connection_lost(exc)

        def _kit_cancel(self) -> None:
            if self._kit_timer is not None:
                self._kit_timer.cancel()
                self._kit_timer = None

        def _kit_arm(self, delay: float) -> None:
            self._kit_cancel()
            self._kit_timer = self.loop.call_later(delay, self._kit_expired)

        def _kit_expired(self) -> None:
            self._kit_timer = None
            cycle = self.cycle
            if self.transport.is_closing():
                return
            if cycle is None or cycle.response_complete:
                self.transport.close()  # the headers did not arrive in time
            elif cycle.more_body:
                arrived = self._kit_received - self._kit_mark
                if self._kit_body_cycle is cycle and arrived < BODY_MIN_RATE * body_timeout:
                    self.transport.close()  # the body has all but stopped
                    return
                self._kit_body_cycle = cycle
                self._kit_mark = self._kit_received
                self._kit_arm(body_timeout)

    return DeadlineProtocol


def _start_uvicorn(
    app: Any,
    sock: socket.socket,
    files: CertFiles,
    protocol: type[asyncio.Protocol],
    client_ca: Path | None = None,
) -> tuple[asyncio.Task[None], Callable[[], None]]:
    import uvicorn

    config = uvicorn.Config(
        app,
        ssl_certfile=str(files.cert_file),
        ssl_keyfile=str(files.key_file),
        ssl_cert_reqs=ssl.CERT_OPTIONAL if client_ca else ssl.CERT_NONE,
        ssl_ca_certs=str(client_ca) if client_ca else None,
        log_level="warning",
        # No handlers of uvicorn's own: its records go to the root logger, whose output the
        # caller controls (``serve`` writes it without ever blocking; see endpoint/console.py).
        log_config=None,
        access_log=False,
        lifespan="auto",
        timeout_graceful_shutdown=3,
        server_header=False,
        http=protocol,
    )
    server = uvicorn.Server(config)
    # The caller owns signals; see the module docstring.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.ensure_future(server.serve(sockets=[sock]))

    def stop() -> None:
        server.should_exit = True

    return task, stop


def _start_hypercorn(
    app: Any,
    sock: socket.socket,
    files: CertFiles,
    shutdown: asyncio.Event,
    client_ca: Path | None = None,
) -> tuple[asyncio.Task[None], Callable[[], None]]:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    # Hypercorn takes ownership of the descriptor it is given; hand it a duplicate.
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.certfile = str(files.cert_file)
    config.keyfile = str(files.key_file)
    if client_ca:
        # Requested and verified, but hypercorn does not show the certificate to the app.
        config.ca_certs = str(client_ca)
        config.verify_mode = ssl.CERT_OPTIONAL
    config.alpn_protocols = ["h2", "http/1.1"]
    config.accesslog = None
    config.errorlog = logging.getLogger("webhook_kit.hypercorn")
    # Hypercorn's own graceful timeout crashes when it expires (InvalidStateError in
    # worker_serve), so it is set beyond SHUTDOWN_GRACE and serve() cancels first.
    config.graceful_timeout = SHUTDOWN_GRACE * 10
    config.ssl_handshake_timeout = SSL_HANDSHAKE_TIMEOUT
    stop_event = asyncio.Event()
    task = asyncio.ensure_future(
        hypercorn_serve(app, config, shutdown_trigger=stop_event.wait, mode="asgi")
    )
    return task, stop_event.set


class ThreadedServer:
    """Run ``runner(ready, shutdown)`` on its own event loop in a daemon thread.

    For tests, the pytest plugin and the demo: the server is real (real sockets, real TLS), only
    its loop lives in another thread.
    """

    def __init__(
        self, runner: Callable[[Callable[[], None], asyncio.Event], Awaitable[None]]
    ) -> None:
        self._runner = runner
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="webhook-kit-server", daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._shutdown = asyncio.Event()
            await self._runner(self._ready.set, self._shutdown)

        from webhook_kit.serving.loop import run

        try:
            run(main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
        finally:
            self._ready.set()

    def start(self, timeout: float = READY_TIMEOUT + 5) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ServerError("server did not start in time")
        if self._error is not None:
            raise self._error
        if not self._thread.is_alive():
            raise ServerError("server stopped during start-up")

    def stop(self, timeout: float = 10) -> None:
        if self._loop is not None and self._shutdown is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._shutdown.set)
        self._thread.join(timeout)

    @contextlib.contextmanager
    def running(self) -> Iterator[ThreadedServer]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
