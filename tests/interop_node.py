"""Install and run the npm package oauth2-mock-server: an independent authorization server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "oauth2-mock-server@8.2.3"
INSTALL_DIR = Path(
    os.environ.get("WEBHOOK_KIT_NODE_DIR", Path.home() / ".cache" / "webhook-kit-interop")
)


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        pytest.skip(
            "node and npm are not installed: the oauth2-mock-server interop test needs them"
        )
    return node


def install() -> Path:
    """The mock server's CLI script, installed with npm on first use."""
    script = INSTALL_DIR / "node_modules" / "oauth2-mock-server" / "dist" / "oauth2-mock-server.js"
    if not script.exists():
        INSTALL_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(INSTALL_DIR),
                PACKAGE,
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
    if not script.exists():  # the package moved its entry point: find the bin it declares
        script = INSTALL_DIR / "node_modules" / ".bin" / "oauth2-mock-server"
    return script


@dataclass(frozen=True)
class MockServer:
    base_url: str
    issuer: str

    @property
    def token_url(self) -> str:
        return self.base_url + "/token"

    @property
    def jwks_url(self) -> str:
        return self.base_url + "/jwks"


@contextmanager
def oauth2_mock_server(cert_file: Path, key_file: Path) -> Iterator[MockServer]:
    node = node_or_skip()
    script = install()
    process = subprocess.Popen(
        [
            node,
            str(script),
            "-a",
            "127.0.0.1",
            "-p",
            "0",
            "-c",
            str(cert_file),
            "-k",
            str(key_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = issuer = None
        for _ in range(10):
            line = process.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            if match := re.search(r"listening on \w+://[\d.]+:(\d+)", line):
                port = match.group(1)
            if match := re.search(r"issuer is (\S+)", line):
                issuer = match.group(1)
            if port and issuer:
                break
        assert port and issuer, process.stderr.read()  # type: ignore[union-attr]
        yield MockServer(f"https://127.0.0.1:{port}", issuer)
    finally:
        process.terminate()
        process.communicate(timeout=10)
