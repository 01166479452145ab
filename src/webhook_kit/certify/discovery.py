"""Authorization server metadata (RFC 8414, then OpenID discovery) and the JWKS it points to.

The well-known URLs are the OAuth client's own (:func:`webhook_kit.oauth.client.metadata_urls`),
so certify looks where the sender looks. Certify reads more of the document than the client
(``jwks_uri``) and says why a document was not usable, so it keeps its own reader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from webhook_kit.delivery.guard import url_problem
from webhook_kit.display import visible
from webhook_kit.errors import DiscoveryError
from webhook_kit.oauth.client import metadata_urls

MAX_DOCUMENT = 256 * 1024


@dataclass(frozen=True)
class Metadata:
    issuer: str
    token_endpoint: str | None
    jwks_uri: str | None
    source: str


async def get_json(session: aiohttp.ClientSession, url: str, timeout: float) -> dict[str, Any]:
    problem = url_problem(url)
    if problem is not None:
        raise DiscoveryError(f"{visible(url)}: {problem}")
    try:
        async with session.get(
            url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            raw = await response.content.read(MAX_DOCUMENT + 1)
            status = response.status
    except TimeoutError as exc:
        raise DiscoveryError(f"{visible(url)} timed out") from exc
    except aiohttp.ClientError as exc:
        raise DiscoveryError(f"{visible(url)}: {visible(str(exc)[:200])}") from exc
    if status != 200:
        raise DiscoveryError(f"{visible(url)} answered HTTP {status}")
    try:
        value = json.loads(raw) if len(raw) <= MAX_DOCUMENT else None
    except (ValueError, RecursionError):  # any shape a hostile server can send
        value = None
    if not isinstance(value, dict):
        raise DiscoveryError(f"{visible(url)} is not a JSON object")
    return value


async def discover(session: aiohttp.ClientSession, issuer: str, timeout: float) -> Metadata:
    errors = []
    for url in metadata_urls(issuer):
        try:
            document = await get_json(session, url, timeout)
        except DiscoveryError as exc:
            errors.append(str(exc))
            continue
        # RFC 8414 section 3.3: metadata for another issuer must not be used.
        if document.get("issuer") != issuer:
            errors.append(f"{visible(url)} names another issuer")
            continue
        token = document.get("token_endpoint")
        jwks = document.get("jwks_uri")
        return Metadata(
            issuer,
            token if isinstance(token, str) else None,
            jwks if isinstance(jwks, str) else None,
            url,
        )
    raise DiscoveryError("no usable metadata: " + "; ".join(errors))


async def fetch_jwks(session: aiohttp.ClientSession, url: str, timeout: float) -> dict[str, Any]:
    document = await get_json(session, url, timeout)
    if not isinstance(document.get("keys"), list):
        raise DiscoveryError(f"{visible(url)} has no 'keys' list")
    return document
