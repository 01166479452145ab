"""panva's ``oidc-provider`` (OpenID-certified) for the sender's client authentication methods
and token bindings: ``server.mjs`` next to this file, installed with ``npm ci`` from the
committed lock into the node stacks' cache, started on an ephemeral loopback port over HTTPS.

Like :mod:`tests.interop.node_stacks` (whose process handling it shares): skipped with the reason
without Node.js, mandatory with ``WEBHOOK_KIT_REQUIRE_INTEROP=1``; TLS is never unverified (Node
trusts the test CA through ``NODE_EXTRA_CA_CERTS``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tests.interop.harness import require
from tests.interop.node_stacks import (
    CACHE,
    STOP_TIMEOUT,
    _drain,
    _wait_for_url,
    node_available,
)

SOURCES = Path(__file__).parent
SCRIPT = "server.mjs"
INSTALL_HOW = (
    "apt-get install nodejs npm; oidc-provider comes from npm (tests/interop/oidc_provider/)"
)
#: The resource (RFC 8707) the access tokens are issued for: the resource route's URL path.
RESOURCE_PATH = "/webhook"


def install() -> Path:
    """The directory holding ``node_modules`` for the committed lock (``npm ci`` once per lock).

    Keyed by the manifest's and the lock's hash; built under a temporary name and renamed, so an
    interrupted install is never taken for a finished one.
    """
    require(node_available(), "Node.js", INSTALL_HOW)
    manifest = (SOURCES / "package.json").read_bytes()
    lock = (SOURCES / "package-lock.json").read_bytes()
    digest = hashlib.sha256(manifest + b"\0" + lock).hexdigest()[:16]
    target = CACHE / f"oidc-provider-{digest}"
    if (target / "node_modules").is_dir():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    building = CACHE / f"oidc-provider-{digest}.partial-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    (building / "package.json").write_bytes(manifest)
    (building / "package-lock.json").write_bytes(lock)
    try:
        done: subprocess.CompletedProcess[str] | None = subprocess.run(
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
        require(False, "the npm packages of tests/interop/oidc_provider", f"npm ci failed: {why}")
    try:
        building.rename(target)
    except OSError:  # another run finished first: use its copy
        shutil.rmtree(building, ignore_errors=True)
    return target


@dataclass(frozen=True)
class RunningProvider:
    """A running oidc-provider and its resource route."""

    issuer: str
    log_file: Path

    @property
    def token_url(self) -> str:
        return self.issuer + "/token"

    @property
    def jwks_url(self) -> str:
        return self.issuer + "/jwks"

    @property
    def resource(self) -> str:
        """The access tokens' audience, and the URL of the route that checks them."""
        return self.issuer + RESOURCE_PATH

    @property
    def stats_url(self) -> str:
        return self.issuer + RESOURCE_PATH + "/stats"

    def log(self) -> str:
        """What the server logged (oidc-provider's reasons for refusals), for failure messages."""
        return self.log_file.read_text(errors="replace")[-3000:]


@dataclass(frozen=True)
class ServerFiles:
    """PEM files: the server's certificate and key, the CA its clients trust, the client CA."""

    cert: Path
    key: Path
    ca: Path
    client_ca: Path


class OidcProviderStack:
    """Starts ``server.mjs`` processes; each stops when its ``with`` block ends."""

    def __init__(self, run_dir: Path, files: ServerFiles) -> None:
        installed = install()
        run_dir.mkdir(parents=True, exist_ok=True)
        # Node resolves packages next to the script's real path: copy it, link node_modules.
        shutil.copyfile(SOURCES / SCRIPT, run_dir / SCRIPT)
        link = run_dir / "node_modules"
        if not link.exists():
            link.symlink_to(installed / "node_modules", target_is_directory=True)
        self.run_dir = run_dir
        self.files = files
        self._started = 0

    @contextlib.contextmanager
    def start(
        self,
        clients: Sequence[Mapping[str, Any]],
        *,
        secrets: Mapping[str, str] | None = None,
        auth_methods: Sequence[str] | None = None,
        require_nonce: bool = False,
        resource_nonce: bool | Literal["always"] = False,
    ) -> Iterator[RunningProvider]:
        """Run oidc-provider with ``clients`` (RFC 7591 metadata; secrets apart, by client_id)."""
        self._started += 1
        log_file = self.run_dir / f"oidc-provider-{self._started}.log"
        settings = {
            "cert": str(self.files.cert),
            "key": str(self.files.key),
            "client_ca": str(self.files.client_ca),
            "clients": list(clients),
            "auth_methods": None if auth_methods is None else list(auth_methods),
            "require_nonce": require_nonce,
            "resource_nonce": resource_nonce,
        }
        child_env = {
            name: value
            for name, value in os.environ.items()
            # Never inherited: it would turn certificate checks off.
            if name != "NODE_TLS_REJECT_UNAUTHORIZED"
        }
        child_env.update(
            NODE_EXTRA_CA_CERTS=str(self.files.ca),
            NODE_ENV="production",
            CLIENT_SECRETS=json.dumps(dict(secrets or {})),
        )
        with open(log_file, "w") as log:
            process = subprocess.Popen(
                ["node", SCRIPT, json.dumps(settings)],
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
            yield RunningProvider(_wait_for_url(process, lines, log_file), log_file)
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
