"""How much CPU this machine's scheduler leaves idle while processes wait for one (issue 12).

No webhook-kit code runs here: plain processes that compute for a burst, sleep briefly, and
again, none waiting for another. With more such processes than cores and more demand than the
cores can serve, a scheduler that keeps every core busy while anything is runnable leaves
(almost) no CPU idle. The shape is that of the engine's PostgreSQL runs in ``bench_workers.py``:
three busy processes (a worker, its database backend, the endpoint) on two cores, each waking
and sleeping many times a second.

Per configuration, over the timed window: the CPU the processes got, as a share of the
machine's; the share left idle (``/proc/stat``); and how long they sat runnable but waiting for
a CPU (``/proc/<pid>/schedstat``), in seconds per second. The baseline, measured in the same
run: one process per core that never sleeps. One process per core with the same bursts and
sleeps shows what each asks for when it has a core of its own (its sleeps overshoot a little):
one process more than cores then asks for more than the machine has. Idle CPU while the
processes wait is time the scheduler lost: a 2-core machine that loses 15 % runs a 3-process
pipeline at most at 0.85 of what its cores could.

    python benchmarks/bench_scheduler.py [--seconds 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import IDLE, cpu_seconds, machine, machine_ticks, waited_ns  # noqa: E402


@dataclass(frozen=True)
class Shape:
    processes: int
    burst: float  # seconds computing between sleeps (0: never sleeps)
    sleep: float

    @property
    def name(self) -> str:
        if not self.burst:
            return f"{self.processes} processes, never sleeping"
        return (
            f"{self.processes} processes, {self.burst * 1e3:g} ms computing / "
            f"{self.sleep * 1e3:g} ms asleep"
        )


@dataclass(frozen=True)
class Measured:
    used: float  # the processes' CPU, share of the machine's
    idle: float  # the machine's idle share
    waiting: float  # seconds runnable but waiting for a CPU, per second


def cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0))


def spin(shape: Shape, until: float) -> None:
    """A child's loop: compute for ``burst``, sleep ``sleep``, until ``until`` (monotonic)."""
    while time.monotonic() < until:
        end = time.perf_counter() + (shape.burst or 0.05)
        while time.perf_counter() < end:
            pass
        if shape.sleep:
            time.sleep(shape.sleep)


def measure(shape: Shape, seconds: float) -> Measured:
    settle = 0.5
    # Far enough out that the children outlast the window however slowly they start.
    until = time.monotonic() + settle + seconds + 2.0
    pids: list[int] = []
    try:
        for _ in range(shape.processes):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                try:
                    spin(shape, until)
                finally:
                    os._exit(0)
            pids.append(pid)
        time.sleep(settle)
        ticks, waited = machine_ticks(), [waited_ns(p) for p in pids]
        cpu, wall = [cpu_seconds(p) for p in pids], time.perf_counter()
        time.sleep(seconds)
        elapsed = time.perf_counter() - wall
        spent = [b - a for a, b in zip(ticks, machine_ticks(), strict=True)]
        used = sum(cpu_seconds(p) - c for p, c in zip(pids, cpu, strict=True))
        waits = sum(waited_ns(p) - w for p, w in zip(pids, waited, strict=True))
    finally:
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise RuntimeError(f"a spinning process ended with status {status}")
    share = used / (elapsed * cores())
    return Measured(share, spent[IDLE] / max(sum(spent), 1), waits / 1e9 / elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="timed window per run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.seconds < 1 or args.rounds < 1:
        parser.error("--seconds must be 1 or more (CPU times come in clock ticks); --rounds 1+")
    n = cores()
    more = n + 1
    shapes = [
        Shape(n, 0.0, 0.0),  # the baseline
        Shape(n, 0.001, 0.0003),
        Shape(more, 0.001, 0.0003),
        Shape(more, 0.0002, 0.00005),
        Shape(more, 0.005, 0.0015),
    ]
    runs: dict[Shape, list[Measured]] = {s: [] for s in shapes}
    for round_ in range(args.rounds):
        for shape in shapes[round_ % len(shapes) :] + shapes[: round_ % len(shapes)]:
            runs[shape].append(measure(shape, args.seconds))
    base = statistics.median(m.used for m in runs[shapes[0]])
    print(f"machine: {machine()}; {args.rounds} rounds of {args.seconds:g} s, rotated")
    print("| processes | CPU they got | ratio to baseline | idle CPU | waiting for a CPU, s/s |")
    print("|---|---|---|---|---|")
    for shape, measured in runs.items():
        used = statistics.median(m.used for m in measured)
        idle = statistics.median(m.idle for m in measured)
        waiting = statistics.median(m.waiting for m in measured)
        print(f"| {shape.name} | {used:.0%} | {used / base:.2f} | {idle:.0%} | {waiting:.2f} |")


if __name__ == "__main__":
    main()
