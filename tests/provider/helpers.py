from __future__ import annotations

from typing import Any

import requests

from webhook_kit.endpoint.service import Endpoint
from webhook_kit.provider.service import Provider


class ProviderClient:
    def __init__(self, provider: Provider) -> None:
        info = provider.info
        self.provider = provider
        self.base = info.base_url
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = info.ca_file
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
