"""Small raw receivers on loopback for the delivery tests: a TLS server that answers fixed bytes
(ASGI servers refuse to send a Location that is not UTF-8 or holds control bytes), a plain TCP
server that speaks first (an SSH-like banner), and a closed port."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

# Hostile text that, printed raw, acts on a terminal or in rich.
OSC52 = b"\x1b]52;c;ZXZpbA==\x07"  # writes "evil" to the clipboard
OSC8 = b"\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # a hyperlink
HOSTILE_LOCATION = b"/x" + OSC52 + OSC8 + b"\x1b[2J[/][link=https://evil.example/]y[/link]"
NON_UTF8_LOCATION = b"/moved/\xff\xfe\xc3("


def redirect(location: bytes, status: int = 302) -> bytes:
    return (
        f"HTTP/1.1 {status} Found\r\n".encode()
        + b"Location: "
        + location
        + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )


def _read_request(conn: socket.socket) -> None:
    """Read the head and a Content-Length body, so that the answer is not a reset."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


@contextlib.contextmanager
def accepting(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A listener on 127.0.0.1 that hands each connection to ``handle`` in its own thread;
    yields the port, and stops accepting when the block ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@contextlib.contextmanager
def raw_server(answer: bytes, *, certs_dir: Path | None) -> Iterator[int]:
    """A server on 127.0.0.1 answering ``answer`` to every request (over TLS with the kit's
    certificates when ``certs_dir`` is given, else plain TCP that speaks first); yields the port.
    """
    context: ssl.SSLContext | None = None
    if certs_dir is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs_dir / "server.pem", certs_dir / "server-key.pem")

    def serve_one(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.settimeout(10)
            if context is None:
                conn.sendall(answer)
                return
            with context.wrap_socket(conn, server_side=True) as tls:
                _read_request(tls)
                tls.sendall(answer)

    with accepting(serve_one) as port:
        yield port


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
