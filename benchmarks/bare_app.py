"""The baseline: a bare Starlette JSON route on the same server stack as the kit's endpoint.

Same TLS certificates, same socket handling, same event loop (uvloop) and same uvicorn/hypercorn
settings, via ``webhook_kit.serving.servers``. It parses the JSON body and answers JSON, nothing
more.
Prints one JSON line with ``url`` when ready, serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from webhook_kit.serving import servers
from webhook_kit.serving.loop import run_until_signal
from webhook_kit.tls import ensure_dev_certs


async def webhook(request: Request) -> JSONResponse:
    await request.json()
    return JSONResponse({"received": True})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="uvicorn", choices=["uvicorn", "hypercorn"])
    parser.add_argument("--certs-dir", type=Path, default=Path("certs"))
    args = parser.parse_args()
    files, _ = ensure_dev_certs(args.certs_dir)
    app = Starlette(
        routes=[Route("/webhook", webhook, methods=["POST"]), Route(servers.HEALTH_PATH, health)]
    )
    sock = servers.bind("127.0.0.1", 0)
    url = f"https://127.0.0.1:{sock.getsockname()[1]}/webhook"

    async def runner(ready, shutdown):  # type: ignore[no-untyped-def]
        await servers.serve(
            app, sock=sock, files=files, server=args.server, shutdown=shutdown, ready=ready
        )

    run_until_signal(
        runner, lambda: print(json.dumps({"url": url, "ca_file": str(files.ca_file)}), flush=True)
    )


if __name__ == "__main__":
    main()
