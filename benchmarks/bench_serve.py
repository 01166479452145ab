"""Accepted notifications per second: the kit's endpoint against a bare Starlette JSON route.

Both run as separate processes on the same server stack (TLS, keep-alive, uvloop); the load comes
from one aiohttp process. The kit's side does everything a real run does: bearer-token check,
schema validation, duplicate detection, recording in memory and to a JSON-lines file. Rounds
alternate bare/kit so drift on a shared machine hits both. The figure that matters is capacity,
requests per server CPU-second; requests per second alone is capped by the client's core.

    python benchmarks/bench_serve.py [--server uvicorn|hypercorn] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    LoadResult,
    ServerProcess,
    kit_process,
    machine,
    post_loop,
    python,
    token_for,
)

from webhook_kit.contract import notifications  # noqa: E402
from webhook_kit.contract.statuses import STATUSES  # noqa: E402

HERE = Path(__file__).resolve().parent


def bodies(count: int = 2000) -> list[bytes]:
    out = []
    for _ in range(count // len(STATUSES)):
        for body in notifications.lifecycle(validation_id=str(uuid.uuid4())):
            out.append(json.dumps(body).encode())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", default="uvicorn", choices=["uvicorn", "hypercorn"])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    certs = work / "certs"
    kit = kit_process(
        "serve", "--server", args.server, "--certs-dir", str(certs),
        "--record", str(work / "record.jsonl"), "--keep", "1000",
    )  # fmt: skip
    bare = ServerProcess(
        [python(), str(HERE / "bare_app.py"), "--server", args.server, "--certs-dir", str(certs)]
    )
    payloads = bodies()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token_for(kit.info)}"}
    results: dict[str, list[LoadResult]] = {"bare": [], "kit": []}
    try:
        for round_ in range(args.rounds):
            for name, server, url in (
                ("bare", bare, bare.info["url"]),
                ("kit", kit, kit.info["url"]),
            ):
                result = asyncio.run(
                    post_loop(
                        server,
                        url,
                        payloads,
                        headers=headers,
                        ca_file=kit.info["ca_file"],
                        connections=args.connections,
                        seconds=args.seconds,
                    )
                )
                results[name].append(result)
                print(
                    f"round {round_ + 1} {name:<4} {result.rps:8.0f} req/s  "
                    f"{result.per_cpu_second:8.0f} req/server-CPU-s  errors={result.errors}"
                )
    finally:
        kit.stop()
        bare.stop()

    def median(name: str, attr: str) -> float:
        return float(statistics.median(getattr(r, attr) for r in results[name]))

    print()
    print(
        f"machine: {machine()}; server: {args.server}; "
        f"{args.connections} keep-alive TLS connections; {args.rounds} rounds x {args.seconds:g}s"
    )
    print(
        f"bare route : {median('bare', 'rps'):8.0f} req/s, "
        f"{median('bare', 'per_cpu_second'):8.0f} req per server CPU-second"
    )
    print(
        f"kit route  : {median('kit', 'rps'):8.0f} req/s, "
        f"{median('kit', 'per_cpu_second'):8.0f} req per server CPU-second"
    )
    capacity = median("kit", "per_cpu_second") / median("bare", "per_cpu_second")
    throughput = median("kit", "rps") / median("bare", "rps")
    print(f"ratio kit/bare: capacity {capacity:.2f}, throughput {throughput:.2f} (goal >= 0.70)")
    errors = sum(r.errors for rs in results.values() for r in rs)
    if errors:
        print(f"WARNING: {errors} non-200 answers")


if __name__ == "__main__":
    main()
