"""Real HTTPS clients for the kit's endpoint and the provider API (never ``verify=False``)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests

from webhook_kit.contract import notifications
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.provider.service import Provider


def _session(ca_file: str | None) -> requests.Session:
    http = requests.Session()
    # REQUESTS_CA_BUNDLE in the environment would override session.verify (psf/requests#3829).
    http.trust_env = False
    # No kit CA means the user's own certificate: the system store checks it. ``verify=None``
    # would turn certificate checks off in requests, so it is never passed on.
    http.verify = ca_file if ca_file is not None else True
    return http


def notification(status: str = "on-course", **overrides: Any) -> dict[str, Any]:
    body = notifications.build(status, validation_id=str(uuid.uuid4()), previous_status="on-course")
    body.update(overrides)
    return body


class KitClient:
    """A requests session that trusts the kit's CA."""

    def __init__(self, sink: Endpoint) -> None:
        self.sink = sink
        self.info = sink.info
        self.http = _session(self.info.ca_file)

    def close(self) -> None:
        self.http.close()

    def token(self, **form: str) -> str:
        response = self.http.post(
            self.info.token_url,
            data={"grant_type": "client_credentials", **form},
            auth=(self.info.client_id, self.info.client_secret),
            timeout=10,
        )
        response.raise_for_status()
        value: str = response.json()["access_token"]
        return value

    def post(
        self,
        body: Any = None,
        *,
        token: str | None = "auto",
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        url: str | None = None,
    ) -> requests.Response:
        sent = {"Content-Type": "application/json"}
        if token == "auto":
            token = self.token()
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        if data is None:
            data = json.dumps(body if body is not None else notification()).encode()
        return self.http.post(url or self.info.url, data=data, headers=sent, timeout=10)


class ProviderClient:
    """A requests session on the provider API, with its apikey."""

    def __init__(self, provider: Provider) -> None:
        info = provider.info
        self.provider = provider
        self.base = info.base_url
        self.http = _session(info.ca_file)
        self.http.headers["apikey"] = info.apikey

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.http.request(method, self.base + path, **kw)

    def configure(self, sink: Endpoint, **overrides: Any) -> requests.Response:
        info = sink.info
        document: dict[str, Any] = {
            "url": info.url,
            "auth": {
                "token_url": info.token_url,
                "client_id": info.client_id,
                "client_secret": info.client_secret,
            },
        }
        document.update(overrides)
        return self.call("POST", "/webhook/settings", json=document)

    def new_validation(self) -> str:
        response = self.call("POST", "/validation")
        assert response.status_code == 201, response.text
        value: str = response.json()["data"]["id"]
        return value

    def drive_all(self, validation_id: str) -> list[str]:
        """Every change after creation, through the documented calls; returns the statuses."""
        statuses = []
        for n in range(3):
            response = self.call(
                "PUT",
                f"/validation/{validation_id}/document",
                files={"documentImage": (f"doc{n}.jpg", b"\xff\xd8 image bytes")},
                data={"analysisType": "complete", "documentType": "IDCARD"},
            )
            assert response.status_code == 200, response.text
            statuses.append(response.json()["data"]["status"])
        for path, field in (("selfie", "image"), ("video", "video")):
            response = self.call(
                "PUT", f"/validation/{validation_id}/{path}", files={field: ("f.bin", b"data")}
            )
            assert response.status_code == 200, response.text
            statuses.append(response.json()["data"]["status"])
        return statuses
