"""availability: N probes; the success ratio and latency percentiles against the timeout."""

from __future__ import annotations

import math

from webhook_kit.certify.context import Context, Timer, describe, ms, skipped
from webhook_kit.certify.model import CheckResult

CHECK_IDS = ("availability.probes",)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def run(ctx: Context) -> list[CheckResult]:
    if not ctx.reachable or ctx.token is None:
        return [
            skipped(
                "availability.probes", "availability", "needs a verified HTTPS endpoint and a token"
            )
        ]
    s = ctx.settings
    timer = Timer()
    latencies: list[float] = []
    failures: list[str] = []
    for n in range(s.probes):
        result = await ctx.post(ctx.notification(), token=ctx.token)
        latencies.append(result.duration_ms)
        if not result.ok:
            failures.append(f"probe {n + 1}: {describe(result)}")
    ok = s.probes - len(failures)
    summary = (
        f"{ok}/{s.probes} probes answered 2xx; latency p50 {ms(_percentile(latencies, 0.5))}, "
        f"p95 {ms(_percentile(latencies, 0.95))}, p99 {ms(_percentile(latencies, 0.99))} "
        f"(timeout {s.timeout * 1000:.0f} ms)"
    )
    if failures:
        return [
            timer.result(
                "availability.probes",
                "availability",
                "fail",
                f"{summary}. Failed: {'; '.join(failures[:5])}. The endpoint must be "
                "available at all times",
            )
        ]
    return [timer.result("availability.probes", "availability", "pass", summary)]
