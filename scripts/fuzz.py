"""Hostile input at scale: 10,000 generated cases per surface (provider API, webhook route, token
endpoint) against live servers; any 5xx, non-JSON error or dead server stops it.

    python scripts/fuzz.py [--cases 10000]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fuzz_surfaces import fuzz_provider, fuzz_token_endpoint, fuzz_webhook  # noqa: E402
from tests.helpers import KitClient  # noqa: E402
from tests.provider.helpers import ProviderClient  # noqa: E402
from webhook_kit.provider.openapi import build_openapi  # noqa: E402
from webhook_kit.provider.runner import ProviderSettings, running_provider  # noqa: E402
from webhook_kit.sink.runner import running_sink  # noqa: E402
from webhook_kit.sink.settings import SinkSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=10_000)
    args = parser.parse_args()
    certs = Path(tempfile.mkdtemp(prefix="fuzz-")) / "certs"
    with running_sink(SinkSettings(port=0, certs_dir=certs, keep=1000)) as sink:
        kit = KitClient(sink)
        info = sink.info
        for name, run in (
            ("webhook route", lambda: fuzz_webhook(kit.http, info.url, kit.token(), args.cases)),
            (
                "token endpoint",
                lambda: fuzz_token_endpoint(
                    kit.http, info.token_url, info.client_id, info.client_secret, args.cases
                ),
            ),
        ):
            started = time.monotonic()
            count = run()
            print(f"{name:<15} {count:6d} cases, no 5xx, {time.monotonic() - started:6.1f} s")
        operations = sum(len(methods) for methods in build_openapi()["paths"].values())
        per_operation = math.ceil(args.cases / operations)
        with running_provider(
            ProviderSettings(port=0, db=":memory:", certs_dir=certs, ca_file=certs / "ca.pem")
        ) as provider:
            api = ProviderClient(provider)
            api.configure(sink)
            started = time.monotonic()
            count = fuzz_provider(api.http, api.base, provider.apikey, per_operation)
            print(
                f"{'provider API':<15} {count:6d} cases over {operations} operations, no 5xx, "
                f"{time.monotonic() - started:6.1f} s"
            )
            assert (
                api.http.get(
                    api.base.replace("/validas/v1", "/_kit/health"), timeout=10
                ).status_code
                == 200
            )
        assert kit.http.get(sink.urls.base + "/_kit/health", timeout=10).status_code == 200
    print("all servers alive afterwards: OK")


if __name__ == "__main__":
    main()
