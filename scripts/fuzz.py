"""Hostile input at scale: N generated cases per surface against live servers, counting answers.

Surfaces: the endpoint's webhook route (with a live-stream reader attached), its token endpoint,
its /_kit routes, the provider API from its OpenAPI description (schemathesis) and the provider
API by hand-written hostile operations (settings, events, validations, multipart uploads). Input
classes: lone surrogates, deep nesting, huge numbers, control characters and terminal escapes,
non-UTF-8 header bytes, rich markup (see harnesses/fuzz.py).

Nothing stops at the first failure: every 5xx, non-JSON error, dropped connection and failed
health check is counted, and one example of each distinct failure is printed. Exit 0 only when
all counts are 0 and both servers answer their health check at the end.

    python scripts/fuzz.py [--cases 10000] [--surface webhook ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harnesses.clients import KitClient, ProviderClient  # noqa: E402
from harnesses.fuzz import (  # noqa: E402
    TERMINAL_CONTROLS,
    ServeProcess,
    StreamWatch,
    SurfaceResult,
    Tally,
    fuzz_kit_routes,
    fuzz_provider,
    fuzz_provider_hostile,
    fuzz_token_endpoint,
    fuzz_webhook,
    timed,
)
from webhook_kit.delivery.dispatcher import DispatcherSettings
from webhook_kit.endpoint.service import running_endpoint  # noqa: E402
from webhook_kit.endpoint.settings import EndpointSettings  # noqa: E402
from webhook_kit.provider.apikeys import new_key  # noqa: E402
from webhook_kit.provider.openapi import build_openapi  # noqa: E402
from webhook_kit.provider.service import ProviderSettings, running_provider  # noqa: E402


def add_account(db: str, name: str, key: str) -> None:
    """Add an account with this key to the SQLite file ``db``."""
    import asyncio

    from webhook_kit.provider.apikeys import key_hash
    from webhook_kit.storage.url import open_storage

    async def add() -> None:
        storage = await open_storage(db)
        try:
            await storage.records.add_account(name, key_hash(key), time.time())
        finally:
            await storage.close()

    asyncio.run(add())


SURFACES = ("webhook", "token", "kit", "provider-openapi", "provider-hostile", "serve-console")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=10_000, help="Cases per surface.")
    parser.add_argument(
        "--surface", action="append", choices=SURFACES, help="Only these (repeatable)."
    )
    parser.add_argument(
        "--server", choices=("uvicorn", "hypercorn"), default="uvicorn", help="For both servers."
    )
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    chosen = args.surface or list(SURFACES)
    certs = Path(tempfile.mkdtemp(prefix="fuzz-")) / "certs"
    results: list[SurfaceResult] = []
    alive_at_end = True

    def run(name: str, body: Callable[[Tally], int]) -> None:
        if name not in chosen:
            return
        tally = Tally(strict=False)
        result = timed(name, tally, lambda: body(tally))
        results.append(result)
        print(
            f"{name:<17} {result.cases:6d} cases {tally.requests:7d} requests "
            f"5xx {tally.server_errors:<5d} other failures "
            f"{tally.failures - tally.server_errors:<5d} {result.seconds:7.1f} s"
            + (" (the fuzzer stopped early)" if tally.aborted else ""),
            flush=True,
        )

    started = time.monotonic()
    # keep=200: the webhook fuzzer reads back the export now and then; 10,000 kept records of up
    # to 64 KiB each would make that export, not the fuzzing, the cost.
    with running_endpoint(
        EndpointSettings(port=0, certs_dir=certs, keep=200, server=args.server)
    ) as sink:
        kit = KitClient(sink)
        info = sink.info
        health = sink.urls.base + "/_kit/health"
        stream_report = ""
        if "webhook" in chosen:
            with StreamWatch(kit.http, sink.urls.base + "/_kit/stream") as stream:
                run(
                    "webhook",
                    lambda t: fuzz_webhook(
                        kit.http, sink.urls.base, info.url, kit.token(), args.cases, t
                    ),
                )
            stream_report = (
                f"live stream: {stream.events} events, {len(stream.invalid)} not strict JSON"
                + (f", ended: {stream.error}" if stream.error else "")
                + "".join(f"\n    {line}" for line in stream.invalid[:3])
            )
            print(stream_report, flush=True)
        run(
            "token",
            lambda t: fuzz_token_endpoint(
                kit.http, info.token_url, info.client_id, info.client_secret, args.cases, t
            ),
        )
        run("kit", lambda t: fuzz_kit_routes(kit.http, sink.urls.base, args.cases, t))
        netloc = info.url.split("/")[2]
        good = {
            "url": info.url,
            "auth": {
                "token_url": info.token_url,
                "client_id": info.client_id,
                "client_secret": info.client_secret,
            },
        }
        operations = sum(len(methods) for methods in build_openapi()["paths"].values())
        # A second account, made before the provider holds the SQLite file: the hostile
        # requests use its key too, and must never see the first account's objects.
        db = str(certs.parent / "provider.db")
        other_key = new_key()
        add_account(db, "fuzz-other", other_key)
        with running_provider(
            ProviderSettings(
                port=0,
                db=db,
                certs_dir=certs,
                server=args.server,
                delivery=DispatcherSettings(ca_file=certs / "ca.pem", address_policy="local"),
            )
        ) as provider:
            api = ProviderClient(provider)
            api.configure(sink)
            apikey = provider.apikey
            run(
                "provider-openapi",
                lambda t: fuzz_provider(
                    api.http, api.base, apikey, math.ceil(args.cases / operations), t, netloc
                ),
            )
            run(
                "provider-hostile",
                lambda t: fuzz_provider_hostile(
                    api.http, api.base, apikey, netloc, good, args.cases, t, other_key
                ),
            )
            provider_health = api.base.replace("/validas/v1", "/_kit/health")
            alive_at_end &= api.http.get(provider_health, timeout=10).status_code == 200
        alive_at_end &= kit.http.get(health, timeout=10).status_code == 200
    console_report = ""
    console_dirty = 0
    if "serve-console" in chosen:
        # `webhook-kit serve` as a process: its console must show no raw control character.
        with ServeProcess(certs.parent, "--keep", "200", "--server", args.server) as serve:
            http = serve.session()
            token = serve.token(http)
            run(
                "serve-console",
                lambda t: fuzz_webhook(http, serve.base, serve.url, token, args.cases, t),
            )
            alive_at_end &= http.get(serve.base + "/_kit/health", timeout=10).status_code == 200
        raw = [
            line
            for line in serve.output().splitlines()
            if any(char in line for char in TERMINAL_CONTROLS)
        ]
        console_report = f"serve console: {len(raw)} lines with a raw control character" + "".join(
            f"\n    {line[:200]!r}" for line in raw[:3]
        )
        print(console_report, flush=True)
        console_dirty = len(raw)
    total = time.monotonic() - started
    print(f"servers alive at the end: {'yes' if alive_at_end else 'NO'}; total {total:.0f} s")
    print(f"machine: {machine()}")
    for result in results:
        statuses = ", ".join(f"{k}x{v}" for k, v in sorted(result.tally.statuses.items()))
        print(f"  {result.name:<17} {statuses}")
    for result in results:
        if result.tally.examples:
            print(f"\n[{result.name}] {result.tally.summary()}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "command": " ".join(["python", *sys.argv]),
                    "machine": machine(),
                    "alive_at_end": alive_at_end,
                    "seconds": round(total, 1),
                    "stream": stream_report,
                    "console": console_report,
                    "surfaces": [
                        {
                            "surface": r.name,
                            "cases": r.cases,
                            "requests": r.tally.requests,
                            "5xx": r.tally.server_errors,
                            "non_json_errors": r.tally.bad_errors,
                            "dropped": r.tally.dropped,
                            "health_failures": r.tally.dead,
                            "aborted": r.tally.aborted,
                            "protocol_400": r.tally.protocol_rejects,
                            "statuses": dict(sorted(r.tally.statuses.items())),
                            "seconds": round(r.seconds, 1),
                            "failures": list(r.tally.examples.items()),
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
        )
    failed = any(r.tally.failures for r in results) or not alive_at_end or console_dirty > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
