"""A real headless Chromium (Debian's package) driven by Playwright, trusting the kit's leaf key."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("WEBHOOK_KIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
REBOUND_NAME = "rebound.example"


def spki_pin(cert_file: Path) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of the server certificate: Chromium trusts exactly
    that key (--ignore-certificate-errors-spki-list), the browser's form of trusting an explicit
    CA; verification of every other certificate stays on."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def browser(certs_dir: Path) -> Iterator[Any]:
    """Module-scoped: Playwright's sync API keeps an event loop running in the main thread while
    it is open, and later tests call asyncio.run() there."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if os.environ.get("WEBHOOK_KIT_REQUIRE_BROWSER"):
            pytest.fail(f"Chromium not found at {CHROMIUM} (.ci/run installs Debian's chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--ignore-certificate-errors-spki-list={spki_pin(certs_dir / 'server.pem')}",
                # A name that resolves to loopback, as a DNS-rebinding attacker's would.
                f"--host-resolver-rules=MAP {REBOUND_NAME} 127.0.0.1",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
