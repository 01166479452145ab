"""A Debian reverse-proxy receiver: Apache with mod_auth_openidc as an OAuth 2.0 resource server
(``AuthType oauth20``, JWTs verified against the issuer's JWKS over verified TLS) in front of a
tiny plain-HTTP backend on loopback.

Apache runs in the foreground from its own config file and ServerRoot in a temporary
directory; as root it is started as ``nobody`` through ``setpriv``, so it never serves with
privileges.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme

APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
WEBHOOK_PATH = "/webhook"


def apache_available() -> bool:
    return os.access(APACHE, os.X_OK) and (MODULES / "mod_auth_openidc.so").is_file()


class _Backend(http.server.BaseHTTPRequestHandler):
    """Answers a JSON notification with 200, anything else with 400; auth is Apache's job."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            body = None
        ok = isinstance(body, dict) and isinstance(body.get("status"), str)
        answer = (
            {"received": body.get("event_id")}
            if ok and isinstance(body, dict)
            else {"error_type": "bad_request", "error_message": "expected a JSON notification"}
        )
        data = json.dumps(answer).encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def backend() -> Iterator[str]:
    """The backend's base URL (plain HTTP: it only listens on loopback, behind Apache)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass(frozen=True)
class ServerCert:
    """What Apache serves: ``cert_pem`` (leaf, plus any chain) and its key."""

    cert_pem: bytes
    key_pem: bytes


def kit_cert(certs_dir: Path) -> ServerCert:
    return ServerCert(
        (certs_dir / "server.pem").read_bytes(), (certs_dir / "server-key.pem").read_bytes()
    )


def leaf_without_intermediate() -> tuple[ServerCert, bytes]:
    """A leaf issued by an intermediate CA, served WITHOUT that intermediate; and the root's PEM
    (what a client trusts). A verifying client that does not fetch AIA cannot build the chain."""
    root = trustme.CA(organization_name="webhook-kit interop root")
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("localhost", "127.0.0.1", "::1")
    only_leaf = leaf.cert_chain_pems[0].bytes()
    return ServerCert(only_leaf, leaf.private_key_pem.bytes()), root.cert_pem.bytes()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(
    root: Path,
    port: int,
    *,
    backend_url: str,
    jwks_url: str,
    issuer: str,
    audience: str,
    protect: bool,
) -> str:
    modules = "\n".join(
        f"LoadModule {name}_module {MODULES}/mod_{name}.so"
        for name in (
            "mpm_event",
            "authn_core",
            "authz_core",
            "authz_user",
            "ssl",
            "proxy",
            "proxy_http",
            "auth_openidc",
        )
    )
    if protect:
        access = f"""AuthType oauth20
    <RequireAll>
        Require valid-user
        Require claim iss:{issuer}
        Require claim aud:{audience}
    </RequireAll>"""
    else:
        # The defect: authentication is configured, but the location lets everyone in.
        access = "AuthType oauth20\n    Require all granted"
    return f"""ServerRoot "{root}"
ServerName localhost
PidFile "{root}/httpd.pid"
DefaultRuntimeDir "{root}"
Mutex file:{root} default
ErrorLog "{root}/error.log"
LogLevel warn auth_openidc:info
Listen 127.0.0.1:{port}
{modules}

SSLEngine on
SSLCertificateFile "{root}/server.pem"
SSLCertificateKeyFile "{root}/server-key.pem"

# mod_auth_openidc as an OAuth 2.0 resource server: JWTs checked against the issuer's JWKS,
# fetched over TLS verified against the kit's CA.
OIDCCryptoPassphrase "webhook-kit-interop-cache-only"
OIDCCABundlePath "{root}/issuer-ca.pem"
OIDCOAuthSSLValidateServer On
OIDCOAuthVerifyJwksUri "{jwks_url}"
OIDCOAuthAcceptTokenAs header

<Location "{WEBHOOK_PATH}">
    {access}
    ProxyPass "{backend_url}{WEBHOOK_PATH}"
</Location>
"""


@contextlib.contextmanager
def running_apache(
    *,
    server_cert: ServerCert,
    issuer_ca: Path,
    backend_url: str,
    jwks_url: str,
    issuer: str,
    audience: str,
    protect: bool = True,
    timeout: float = 30,
) -> Iterator[str]:
    """Apache in front of ``backend_url``; yields the webhook's HTTPS URL."""
    root = Path(tempfile.mkdtemp(prefix="webhook-kit-apache-"))
    try:
        (root / "server.pem").write_bytes(server_cert.cert_pem)
        (root / "server-key.pem").write_bytes(server_cert.key_pem)
        (root / "server-key.pem").chmod(0o600)
        shutil.copyfile(issuer_ca, root / "issuer-ca.pem")
        port = free_port()
        (root / "apache2.conf").write_text(
            _config(
                root,
                port,
                backend_url=backend_url,
                jwks_url=jwks_url,
                issuer=issuer,
                audience=audience,
                protect=protect,
            )
        )
        command = [APACHE, "-f", str(root / "apache2.conf"), "-DFOREGROUND"]
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for path in [root, *root.iterdir()]:
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            command = [
                "setpriv",
                f"--reuid={nobody.pw_uid}",
                f"--regid={nobody.pw_gid}",
                "--clear-groups",
                *command,
            ]
        # Apache logs to its ErrorLog; a start-up error on stderr goes to a file that is read
        # only when it fails (an unread pipe could fill up and block it).
        stderr = (root / "stderr.log").open("w")
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            _wait_listening(process, port, root, timeout)
            yield f"https://127.0.0.1:{port}{WEBHOOK_PATH}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            stderr.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_listening(
    process: subprocess.Popen[bytes], port: int, root: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    log = root / "error.log"
    detail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    startup = root / "stderr.log"
    if startup.exists():
        detail += startup.read_text(errors="replace")[-3000:]
    process.kill()
    raise RuntimeError(f"apache2 did not listen on 127.0.0.1:{port}: {detail}")
