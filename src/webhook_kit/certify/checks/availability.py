"""availability: "available at all times", measured.

``availability.probes`` sends N notifications back to back; ``availability.soak`` (``--soak
DURATION --rate R``) sends contract-valid notifications at a steady rate for a while and reports
uptime, latency percentiles against the timeout, and every failed attempt with its time. Any
failed or late attempt fails: the documented requirement has no error budget.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from webhook_kit.certify.context import Context, Timer, blocked, describe, ms, skipped
from webhook_kit.certify.model import CheckResult
from webhook_kit.delivery.outcome import AttemptResult

CHECK_IDS = ("availability.probes", "availability.soak")

#: Called after each soak attempt with (attempts done, attempts planned).
SoakProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class Sample:
    """One attempt: when it started (UTC seconds), how long it took, what came back."""

    at: float
    result: AttemptResult


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _stamp(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%H:%M:%S.%f")[:-3]


def judge(check_id: str, samples: Sequence[Sample], timeout: float) -> CheckResult:
    """Pure: uptime and latency from the samples; any failure or late answer fails."""
    if not samples:
        return CheckResult(check_id, "availability", "fail", "no attempt could be made")
    limit_ms = timeout * 1000
    bad = [s for s in samples if not s.result.ok or s.result.duration_ms > limit_ms]
    latencies = [s.result.duration_ms for s in samples]
    uptime = 100.0 * (len(samples) - len(bad)) / len(samples)
    summary = (
        f"{len(samples) - len(bad)}/{len(samples)} answered 2xx in time (uptime {uptime:.2f} %); "
        f"latency p50 {ms(percentile(latencies, 0.5))}, p95 {ms(percentile(latencies, 0.95))}, "
        f"p99 {ms(percentile(latencies, 0.99))}, max {ms(max(latencies))} "
        f"(timeout {limit_ms:.0f} ms)"
    )
    if not bad:
        return CheckResult(check_id, "availability", "pass", summary)
    listed = "; ".join(
        f"{_stamp(s.at)} UTC {describe(s.result)}"
        + (f" after {ms(s.result.duration_ms)}" if s.result.ok else "")
        for s in bad[:20]
    )
    more = f" (and {len(bad) - 20} more)" if len(bad) > 20 else ""
    return CheckResult(
        check_id,
        "availability",
        "fail",
        f"{summary}. Failed or late: {listed}{more}. The endpoint must be available at all times",
    )


async def _probes(ctx: Context) -> list[Sample]:
    samples = []
    for _ in range(ctx.settings.probes):
        at = time.time()
        token = await ctx.valid_token()
        samples.append(Sample(at, await ctx.post(ctx.notification(), token=token)))
    return samples


async def _soak(ctx: Context, progress: SoakProgress | None) -> list[Sample]:
    """Fresh notifications at a steady rate; a slow answer does not delay the next send."""
    soak = ctx.settings.soak
    assert soak is not None
    planned = max(1, int(soak.duration * soak.rate))
    interval = 1.0 / soak.rate
    loop = asyncio.get_running_loop()
    start = loop.time()
    samples: list[Sample] = []

    async def one() -> None:
        at = time.time()
        # Each notification is fresh (new event id) and marked "test": true.
        result = await ctx.post(ctx.notification(), token=await ctx.valid_token())
        samples.append(Sample(at, result))
        if progress is not None:
            progress(len(samples), planned)

    tasks = []
    for n in range(planned):
        delay = start + n * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # the schedule itself: sends are due at fixed times
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return sorted(samples, key=lambda s: s.at)


async def run(ctx: Context, soak_progress: SoakProgress | None = None) -> list[CheckResult]:
    if (by := ctx.needs_acceptance()) is not None:
        return [blocked(i, "availability", by) for i in CHECK_IDS]
    timer = Timer()
    out = [timer.stamp(judge("availability.probes", await _probes(ctx), ctx.settings.timeout))]
    if ctx.settings.soak is None:
        out.append(
            skipped(
                "availability.soak",
                "availability",
                "no soak asked for: pass --soak 10m (and --rate 2) to measure uptime over time",
            )
        )
    else:
        timer = Timer()
        samples = await _soak(ctx, soak_progress)
        out.append(timer.stamp(judge("availability.soak", samples, ctx.settings.timeout)))
    return out
