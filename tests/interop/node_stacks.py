"""Third-party Node.js receivers and authorization servers (sources in ``tests/interop/node/``),
installed with ``npm ci`` from the committed lock file into a cache and started on ephemeral
loopback ports over HTTPS.

Each process prints one line, ``listening on https://127.0.0.1:PORT``, once its socket is bound;
everything else goes to a log file that a failed start quotes. Node trusts the kit's CA through
``NODE_EXTRA_CA_CERTS``; TLS verification is never turned off.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import json
import os
import queue
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.interop.harness import require

SOURCES = Path(__file__).parent / "node"
CACHE = Path(os.environ.get("WEBHOOK_KIT_NODE_DIR", Path.home() / ".cache" / "webhook-kit-interop"))
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
INSTALL_HOW = "apt-get install nodejs npm; the packages come from npm (tests/interop/node/)"


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def install() -> Path:
    """The directory holding ``node_modules`` for the committed lock file (``npm ci`` once).

    Keyed by the lock file's hash, so a change of a pinned version installs afresh; built in a
    temporary directory and renamed, so an interrupted install is never taken for a finished one.
    """
    require(node_available(), "Node.js", INSTALL_HOW)
    manifest = (SOURCES / "package.json").read_bytes()
    lock = (SOURCES / "package-lock.json").read_bytes()
    digest = hashlib.sha256(manifest + b"\0" + lock).hexdigest()[:16]
    target = CACHE / f"node-matrix-{digest}"
    if (target / "node_modules").is_dir():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    building = CACHE / f"node-matrix-{digest}.partial-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    (building / "package.json").write_bytes(manifest)
    (building / "package-lock.json").write_bytes(lock)
    try:
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=building,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        done = None
    if done is None or done.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        why = "timed out" if done is None else done.stderr[-1500:]
        require(False, "the npm packages of tests/interop/node", f"npm ci failed: {why}")
    try:
        building.rename(target)
    except OSError:  # another run finished first: use its copy
        shutil.rmtree(building, ignore_errors=True)
    return target


def prepare(run_dir: Path) -> Path:
    """``run_dir`` with the JS sources and a link to the installed ``node_modules``.

    Node resolves packages next to the script's real path, so the sources are copied rather than
    linked; the repository itself never gets a ``node_modules``.
    """
    installed = install()
    run_dir.mkdir(parents=True, exist_ok=True)
    for source in [*SOURCES.glob("*.js"), *SOURCES.glob("*.mjs")]:
        shutil.copyfile(source, run_dir / source.name)
    link = run_dir / "node_modules"
    if not link.exists():
        link.symlink_to(installed / "node_modules", target_is_directory=True)
    return run_dir


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (no CA anyone trusts); cert, key."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "self-signed.pem", directory / "self-signed-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@dataclass(frozen=True)
class OidcProvider:
    """A running oidc-provider: the sender's and the receiver's (resource server's) clients."""

    issuer: str
    sender_id: str
    sender_secret: str = field(repr=False)
    receiver_id: str = "webhook-receiver"
    receiver_secret: str = field(default="", repr=False)

    @property
    def token_url(self) -> str:
        return self.issuer + "/token"

    @property
    def introspection_url(self) -> str:
        return self.issuer + "/token/introspection"


class NodeStacks:
    """Starts the Node.js processes; every one stops when its ``with`` block ends."""

    def __init__(self, run_dir: Path, *, ca_file: Path, cert: Path, key: Path) -> None:
        self.run_dir = prepare(run_dir)
        self.ca_file = ca_file
        self.cert = cert
        self.key = key
        self._started = 0

    @contextlib.contextmanager
    def process(
        self,
        script: str,
        settings: Mapping[str, Any],
        *,
        env: Mapping[str, str] | None = None,
        cert: Path | None = None,
        key: Path | None = None,
    ) -> Iterator[str]:
        """Run ``node script settings-json``; yields its ``https://127.0.0.1:PORT`` base URL."""
        require(node_available(), "Node.js", INSTALL_HOW)
        self._started += 1
        log_file = self.run_dir / f"{Path(script).stem}-{self._started}.log"
        settings = {"cert": str(cert or self.cert), "key": str(key or self.key), **settings}
        child_env = {
            name: value
            for name, value in os.environ.items()
            # Never inherited: it would turn certificate checks off.
            if name != "NODE_TLS_REJECT_UNAUTHORIZED"
        }
        child_env.update(NODE_EXTRA_CA_CERTS=str(self.ca_file), NODE_ENV="production")
        child_env.update(env or {})
        with open(log_file, "w") as log:
            process = subprocess.Popen(
                ["node", script, json.dumps(settings)],
                cwd=self.run_dir,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        lines: queue.Queue[str | None] = queue.Queue()
        # Drained all along, so a chatty process never blocks on a full pipe.
        drain = threading.Thread(target=_drain, args=(process, lines), daemon=True)
        drain.start()
        try:
            yield _wait_for_url(process, lines, log_file)
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
            drain.join(timeout=STOP_TIMEOUT)
            assert process.stdout is not None
            process.stdout.close()

    def auth0_receiver(
        self,
        *,
        issuer: str,
        audience: str,
        defect: str | None = None,
        fail_status: str | None = None,
        cert: Path | None = None,
        key: Path | None = None,
    ) -> contextlib.AbstractContextManager[str]:
        """Express + express-oauth2-jwt-bearer; the webhook URL comes out of the block."""
        settings = {"issuer": issuer, "audience": audience, "defect": defect}
        settings["fail_status"] = fail_status
        return _webhook(self.process("auth0_receiver.js", settings, cert=cert, key=key))

    def jsonwebtoken_receiver(
        self, *, jwks_url: str, issuer: str, audience: str
    ) -> contextlib.AbstractContextManager[str]:
        settings = {"jwks_url": jwks_url, "issuer": issuer, "audience": audience}
        return _webhook(self.process("jsonwebtoken_receiver.js", settings))

    def node_jose_receiver(
        self, *, jwks_url: str, issuer: str, audience: str
    ) -> contextlib.AbstractContextManager[str]:
        settings = {"jwks_url": jwks_url, "issuer": issuer, "audience": audience}
        return _webhook(self.process("node_jose_receiver.js", settings))

    @contextlib.contextmanager
    def oidc_provider(
        self,
        *,
        sender_auth_method: str = "client_secret_basic",
        enforce_auth_method: bool = False,
        require_audience: str | None = None,
    ) -> Iterator[OidcProvider]:
        sender_secret = secrets.token_urlsafe(24)
        receiver_secret = secrets.token_urlsafe(24)
        settings = {
            "sender_auth_method": sender_auth_method,
            "enforce_auth_method": enforce_auth_method,
            "require_audience": require_audience,
        }
        env = {"SENDER_SECRET": sender_secret, "RESOURCE_SERVER_SECRET": receiver_secret}
        with self.process("oidc_provider.mjs", settings, env=env) as issuer:
            yield OidcProvider(
                issuer=issuer,
                sender_id="webhook-sender",
                sender_secret=sender_secret,
                receiver_secret=receiver_secret,
            )

    def introspection_receiver(
        self,
        provider: OidcProvider,
        *,
        audience: str | None = None,
        defect: str | None = None,
    ) -> contextlib.AbstractContextManager[str]:
        settings = {
            "introspection_url": provider.introspection_url,
            "client_id": provider.receiver_id,
            "audience": audience,
            "defect": defect,
        }
        env = {"RESOURCE_SERVER_SECRET": provider.receiver_secret}
        return _webhook(self.process("introspection_receiver.js", settings, env=env))


@contextlib.contextmanager
def _webhook(base: contextlib.AbstractContextManager[str]) -> Iterator[str]:
    with base as url:
        yield url + "/webhook"


def _drain(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line)
    lines.put(None)


def _wait_for_url(
    process: subprocess.Popen[str], lines: queue.Queue[str | None], log_file: Path
) -> str:
    """The base URL from the process's ``listening on`` line."""
    while True:
        try:
            line = lines.get(timeout=START_TIMEOUT)
        except queue.Empty:
            line = None
        if line is None:
            process.kill()
            process.wait()
            log = log_file.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{log_file.stem} did not start (exit {process.returncode}):\n{log}")
        if line.startswith("listening on https://127.0.0.1:"):
            return line.removeprefix("listening on ").strip()
