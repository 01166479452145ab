"""Deliveries per second from `webhook-kit worker` processes on PostgreSQL (issue 12).

Against ``webhook-kit serve`` as its own process (TLS + OAuth), in the same run and with the same
total concurrency:

- **bare**: an aiohttp POST loop, the same requests (bodies as stored, the contract's headers), no
  engine;
- **bare×N** (N > 1 of ``--workers``): the bare loop in N processes, the events dealt between
  them and the concurrency as the workers get it: what N processes cost on these cores with no
  engine at all, the control for pg×N;
- **sqlite**: the dispatcher on an SQLite file, in this process;
- **pg×N**: N ``webhook-kit worker --db postgresql://...`` processes (N = 1, 2, 4), the total
  concurrency split between them, each configuration in a fresh schema (dropped after).

Every engine gets its events once its workers are ready and idle, as a stream: inserts of
``--stream`` events (1,000), one after the other as fast as the store takes them, while the
deliveries run, as a provider's API calls keep coming while its workers send (``--stream 0``:
all in one insert, one transaction, which delivers nothing until it commits). The clock starts
before the first insert and stops at the last attempt's answer (for PostgreSQL read from the
``attempts`` rows the workers wrote: ``max(at + duration)``); the engines' inserts are in the
window, CPU included. Configurations rotate within each round; ratios are per round against that
round's bare loop, then the median.

Per delivery, for the PostgreSQL runs: round trips (client-to-server TCP segments carrying data
on the workers' connections to the database, from the kernel's per-socket counters, ``ss -ti``
``data_segs_out``: every request the driver sends is one write, so one segment, up to the
loopback MSS); the CPU of the backends serving the workers, of all ``postgres`` processes (which
includes other sessions' load on the shared server), of the workers, of the endpoint, and of this
process. The same CPU figures are taken for the bare loop and SQLite (where "all postgres" is
then the other sessions' noise floor).

What bounds a configuration on a small machine, for every configuration: the share of the
machine's CPU time left idle over the timed window (``/proc/stat``), and how long the engine's
processes (this process for the bare loop and SQLite; the workers and their backends for
PostgreSQL) and the endpoint sat runnable but waiting for a CPU (``/proc/<pid>/schedstat``), in
seconds per second of the window. Idle CPU while processes wait for one is time the scheduler
lost, not work the code did.

    python benchmarks/bench_workers.py [--events 20000] [--rounds 5] [--concurrency 16]
        [--dsn postgresql://postgres@127.0.0.1:5432/test] [--workers 1,2,4] [--per-worker]
        [--stream 1000] [--endpoint-delay 0]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import orjson  # noqa: E402
from _common import (  # noqa: E402
    CLOCK_TICKS,
    IDLE,
    add_dsn_argument,
    cpu_seconds,
    kit_process,
    machine,
    machine_ticks,
    python,
    token_for,
    waited_ns,
)

from webhook_kit.contract import notifications  # noqa: E402
from webhook_kit.delivery import transport  # noqa: E402
from webhook_kit.delivery.dispatcher import Dispatcher, DispatcherSettings, Target  # noqa: E402
from webhook_kit.oauth.client import OAuthSettings  # noqa: E402
from webhook_kit.provider import webhook_settings  # noqa: E402
from webhook_kit.serving.loop import run  # noqa: E402
from webhook_kit.storage.rows import NewEvent  # noqa: E402
from webhook_kit.storage.url import open_storage  # noqa: E402
from webhook_kit.tls import client_context  # noqa: E402

PG_PORT_RE = re.compile(r":(\d+)\s")
#: How often the bench looks whether the workers are done. The end time is read from their
#: attempts, so this sets how long the bench waits after it (and the CPU window's tail, up to
#: this long); the query stops at the first pending head, where the store's ``outstanding()``
#: (a sum over the pending heads) cost the machine under test about 1 % of its CPU at 50 polls
#: a second.
POLL = 0.05
DONE = "SELECT EXISTS (SELECT 1 FROM heads WHERE pending > 0)"


@dataclass
class Result:
    rate: float
    seconds: float
    insert_seconds: float = 0.0
    #: CPU seconds over the timed window, by who spent them.
    cpu: dict[str, float] = field(default_factory=dict)
    round_trips: int = 0
    #: The share of the machine's CPU time left idle over the timed window.
    idle: float = 0.0
    #: Seconds runnable but waiting for a CPU, per second of the window, by who waited.
    waiting: dict[str, float] = field(default_factory=dict)


#: Who is watched for waiting on a CPU: group name -> process ids (read again at the end).
Groups = Callable[[], dict[str, set[int]]]


class Window:
    """CPU spent during the timed part of a run: the endpoint, this process, all of PostgreSQL;
    the machine's idle share, and how long the processes of ``groups`` waited for a CPU."""

    def __init__(self, endpoint_pid: int) -> None:
        self.endpoint_pid = endpoint_pid
        self._start: tuple[float, float, dict[int, float]] = (0.0, 0.0, {})
        self._groups: Groups = self.default_groups
        self._ticks: list[int] = []
        self._waited: dict[int, int] = {}
        self._wall = 0.0

    def default_groups(self) -> dict[str, set[int]]:
        return {"engine": {os.getpid()}, "endpoint": {self.endpoint_pid}}

    def start(self, groups: Groups | None = None) -> None:
        self._groups = groups or self.default_groups
        self._waited = {p: waited_ns(p) for pids in self._groups().values() for p in pids}
        self._ticks = machine_ticks()
        self._wall = time.perf_counter()
        self._start = (cpu_seconds(self.endpoint_pid), time.process_time(), postgres_cpu())

    def stop(self, result: Result) -> None:
        endpoint, here, pg = self._start
        now = postgres_cpu()
        wall = time.perf_counter() - self._wall
        ticks = [b - a for a, b in zip(self._ticks, machine_ticks(), strict=True)]
        result.idle = ticks[IDLE] / max(sum(ticks), 1)
        for name, pids in self._groups().items():
            # A process that started within the window waited only within it.
            waited = sum(waited_ns(p) - self._waited.get(p, 0) for p in pids)
            result.waiting[name] = waited / 1e9 / wall
        result.cpu["endpoint"] = cpu_seconds(self.endpoint_pid) - endpoint
        result.cpu["bench"] = time.process_time() - here
        result.cpu.setdefault("postgres", sum(c - pg.get(p, 0.0) for p, c in now.items()))


def make_events(count: int) -> list[NewEvent]:
    out: list[NewEvent] = []
    while len(out) < count:
        out.extend(NewEvent.of(n) for n in notifications.lifecycle())
    return out[:count]


async def feed(
    insert: Callable[[list[NewEvent]], Awaitable[None]], events: list[NewEvent], stream: int
) -> asyncio.Future[None]:
    """Insert ``events`` in slices of ``stream`` (0: at once): the first now, the others in the
    background, one after the other; returns what finishes with the last."""
    size = stream or len(events)
    await insert(events[:size])

    async def rest() -> None:
        for start in range(size, len(events), size):
            await insert(events[start : start + size])

    return asyncio.ensure_future(rest())


# -- CPU and sockets, from the kernel ---------------------------------------------------------


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every ``postgres`` process now (server, backends, background workers)."""
    out: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name, rest = stat.split("(", 1)[1].rsplit(")", 1)
        if name == "postgres":
            fields = rest.split()
            out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


def pg_sockets(port: int) -> Iterator[tuple[str, int, int, int]]:
    """Each TCP socket to or from ``port``: (side, pid, the client's port, data segments sent)."""
    text = subprocess.run(
        ["ss", "-tinpH", f"( dport = :{port} or sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = text.splitlines()
    for head, detail in zip(lines[::2], lines[1::2], strict=False):
        parts = head.split()
        local, peer = parts[3], parts[4]
        pid = re.search(r"pid=(\d+)", head)
        segs = re.search(r"data_segs_out:(\d+)", detail)
        if pid is None:
            continue
        sent = int(segs.group(1)) if segs else 0
        if local.endswith(f":{port}"):
            yield "server", int(pid.group(1)), int(peer.rsplit(":", 1)[1]), sent
        else:
            yield "client", int(pid.group(1)), int(local.rsplit(":", 1)[1]), sent


@dataclass
class DbSnapshot:
    """What the workers' side of the database has used so far."""

    segments: dict[int, int]  # the workers' sockets (by client port): data segments sent
    backends: dict[int, float]  # the backends serving them: CPU seconds
    everything: dict[int, float]  # every postgres process: CPU seconds

    @classmethod
    def take(cls, port: int, workers: set[int]) -> DbSnapshot:
        sockets = list(pg_sockets(port))
        ports = {p: s for side, pid, p, s in sockets if side == "client" and pid in workers}
        everything = postgres_cpu()
        backends = {
            pid: everything.get(pid, 0.0)
            for side, pid, p, _ in sockets
            if side == "server" and p in ports
        }
        return cls(ports, backends, everything)

    def since(self, before: DbSnapshot) -> tuple[int, float, float]:
        """Round trips, workers' backends' CPU, all postgres CPU, from ``before`` to this."""
        trips = sum(n - before.segments.get(p, 0) for p, n in self.segments.items())
        backends = sum(c - before.backends.get(p, 0.0) for p, c in self.backends.items())
        everything = sum(c - before.everything.get(p, 0.0) for p, c in self.everything.items())
        return trips, backends, everything


# -- the three engines ------------------------------------------------------------------------


def target(info: dict[str, str]) -> Target:
    oauth = OAuthSettings(info["token_url"], info["client_id"], info["client_secret"])
    return Target(info["url"], oauth)


def bare_session(info: dict[str, str], conc: int) -> aiohttp.ClientSession:
    return transport.make_session(client_context(Path(info["ca_file"])), limit=conc * 2)


async def send_all(
    session: aiohttp.ClientSession,
    info: dict[str, str],
    token: str,
    events: list[NewEvent],
    conc: int,
) -> None:
    """The same requests with no engine: no store, no queue, no retry bookkeeping."""
    queue = iter(events)

    async def sender() -> None:
        for event in queue:
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
                "User-Agent": transport.USER_AGENT,
                "Webhook-Id": event.event_id,
                "Webhook-Timestamp": str(int(time.time())),
            }
            body = event.body.encode()
            async with session.post(info["url"], data=body, headers=headers) as r:
                await r.read()
                assert r.status == 200, r.status

    await asyncio.gather(*(sender() for _ in range(conc)))


async def bare_loop(
    info: dict[str, str], token: str, events: list[NewEvent], conc: int, window: Window
) -> Result:
    async with bare_session(info, conc) as session:
        window.start()
        started = time.perf_counter()
        await send_all(session, info, token, events, conc)
        elapsed = time.perf_counter() - started
        result = Result(len(events) / elapsed, elapsed)
        window.stop(result)
    return result


def bare_child(
    info: dict[str, str], token: str, events: list[NewEvent], conc: int, signals: Any
) -> None:
    """One of the bare loop's processes: ready, wait for go, send, say done, wait for quit (so
    that its CPU and waits can still be read from ``/proc``)."""
    ready, go, done, leave = signals

    async def main() -> None:
        async with bare_session(info, conc) as session:
            ready.release()
            await asyncio.get_running_loop().run_in_executor(None, go.wait)
            await send_all(session, info, token, events, conc)
            done.release()
            await asyncio.get_running_loop().run_in_executor(None, leave.wait)

    run(main())


def bare_processes(
    info: dict[str, str], token: str, events: list[NewEvent], count: int, conc: int, window: Window
) -> Result:
    """The bare loop in ``count`` processes, the events dealt between them: what that many
    processes cost on these cores with no engine at all (the control for ``pg×N``)."""
    context = multiprocessing.get_context("fork")
    ready, done = context.Semaphore(0), context.Semaphore(0)
    go, leave = context.Event(), context.Event()
    children = [
        context.Process(
            target=bare_child,
            args=(info, token, events[n::count], conc, (ready, go, done, leave)),
        )
        for n in range(count)
    ]
    try:
        for child in children:
            child.start()
        for _ in children:
            assert ready.acquire(timeout=60), "a bare loop process did not start"
        pids = {c.pid for c in children if c.pid is not None}
        cpu = {pid: cpu_seconds(pid) for pid in pids}
        window.start(lambda: {"engine": pids, "endpoint": {window.endpoint_pid}})
        started = time.perf_counter()
        go.set()
        for _ in children:
            assert done.acquire(timeout=600), "a bare loop process did not finish"
        elapsed = time.perf_counter() - started
        result = Result(len(events) / elapsed, elapsed)
        window.stop(result)
        result.cpu["workers"] = sum(cpu_seconds(pid) - c for pid, c in cpu.items())
    finally:
        leave.set()
        for child in children:
            child.join(30)
    assert all(c.exitcode == 0 for c in children), [c.exitcode for c in children]
    return result


async def sqlite_run(
    info: dict[str, str], db: Path, events: list[NewEvent], conc: int, window: Window, stream: int
) -> Result:
    storage = await open_storage(str(db))
    settings = DispatcherSettings(concurrency=conc, ca_file=Path(info["ca_file"]))
    try:
        async with Dispatcher(storage.events, settings, target=target(info)) as d:
            window.start()
            started = time.perf_counter()
            feeding = await feed(storage.events.insert, events, stream)
            inserted = time.perf_counter()
            await feeding
            assert await d.wait_idle(600), "deliveries did not finish"
            elapsed = time.perf_counter() - started
            result = Result(len(events) / elapsed, elapsed, inserted - started)
            window.stop(result)
        counts = await storage.events.counts()
    finally:
        await storage.close()
    assert counts == {"sent": len(events)}, counts
    return result


class Workers:
    """N ``webhook-kit worker`` processes, started at once, ready when each printed its line."""

    def __init__(self, count: int, url: str, info: dict[str, str], conc: int, logs: Path) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs = logs
        for n in range(count):
            # Each worker's log goes to a file: a full pipe would stall it.
            with open(logs / f"worker{n}.log", "ab") as log:
                self.processes.append(
                    subprocess.Popen(
                        [
                            *(python(), "-m", "webhook_kit", "worker", "--json"),
                            *("--db", url, "--ca", info["ca_file"]),
                            *("--concurrency", str(conc), "--timeout", "10", "--lease", "60"),
                        ],
                        stdout=subprocess.PIPE,
                        stderr=log,
                    )
                )
        for process in self.processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line:
                self.stop()
                raise RuntimeError(f"worker exited {process.wait()}: see {logs}")
            orjson.loads(line)

    @classmethod
    def start(cls, count: int, url: str, info: dict[str, str], conc: int, logs: Path) -> Workers:
        """Start them; once more after a pause if one fails at start (the working tree is
        shared with other sessions' edits: a half-written module fails an import)."""
        try:
            return cls(count, url, info, conc, logs)
        except RuntimeError as exc:
            print(f"{exc}; starting them again", flush=True)
            time.sleep(3)
            return cls(count, url, info, conc, logs)

    @property
    def pids(self) -> set[int]:
        return {p.pid for p in self.processes}

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            if process.poll() is None:
                process.wait(30)


async def postgres_run(
    info: dict[str, str],
    dsn: str,
    schema: str,
    count: int,
    events: list[NewEvent],
    conc: int,
    logs: Path,
    window: Window,
    *,
    per_worker: bool,
    stream: int,
) -> Result:
    url = f"{dsn}?schema={schema}"
    port = urlsplit(dsn).port or 5432
    storage = await open_storage(url)
    conn = await asyncpg.connect(dsn)
    workers: Workers | None = None
    try:
        document = {
            "url": info["url"],
            # The cap counts every event the workers hold for the endpoint (sent, queued in a
            # worker, or not yet recorded), up to 16 per slot: the most, so that it holds back
            # no configuration here (the bare loop has no cap).
            "max_in_flight": 1024,
            "auth": {
                "token_url": info["token_url"],
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
            },
        }
        await storage.records.put_settings(webhook_settings.validate(document), time.time())
        each = conc if per_worker else max(1, conc // count)
        workers = Workers.start(count, url, info, each, logs)
        await asyncio.sleep(0.2)  # past the workers' first claim and settings read
        before = DbSnapshot.take(port, workers.pids)
        workers_cpu = workers.cpu()
        running = workers
        taken: list[DbSnapshot] = []  # the window's last one is the run's end

        def groups() -> dict[str, set[int]]:
            taken.append(DbSnapshot.take(port, running.pids))
            backends = set(taken[-1].backends)
            return {"engine": running.pids, "database": backends, "endpoint": {window.endpoint_pid}}

        await conn.execute(f'SET search_path TO "{schema}"')  # for DONE
        window.start(groups)
        wall_start = time.time()
        feeding = await feed(storage.events.insert, events, stream)
        insert_seconds = time.time() - wall_start
        await feeding
        deadline = time.monotonic() + 600
        while await conn.fetchval(DONE):
            assert time.monotonic() < deadline, "deliveries did not finish"
            await asyncio.sleep(POLL)
        result = Result(0.0, 0.0, insert_seconds)
        window.stop(result)
        after = taken[-1]
        workers_cpu = workers.cpu() - workers_cpu
        trips, backends, everything = after.since(before)
        counts = await storage.events.counts()
        assert counts == {"sent": len(events)}, counts
        row = await conn.fetchrow(
            f'SELECT max(at + duration_ms / 1000), count(*) FROM "{schema}".attempts'
        )
        assert row is not None
        last, attempts = row
        assert attempts == len(events), f"{attempts} attempts for {len(events)} events"
        elapsed = last - wall_start
        result.rate, result.seconds, result.round_trips = len(events) / elapsed, elapsed, trips
        result.cpu.update(workers=workers_cpu, backends=backends, postgres=everything)
        return result
    finally:
        if workers is not None:
            workers.stop()
        await storage.close()
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


# -- the run ----------------------------------------------------------------------------------


def per_event(seconds: float, events: int) -> float:
    return seconds / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16, help="in flight, in total")
    parser.add_argument(
        "--per-worker",
        action="store_true",
        help="give every worker the whole --concurrency (as `webhook-kit worker` would run), "
        "instead of splitting it between them",
    )
    parser.add_argument("--workers", default="1,2,4", help="worker counts to run")
    parser.add_argument(
        "--endpoint-delay",
        type=float,
        default=0.0,
        help="seconds the endpoint takes to answer each request (serve --delay): a receiver's "
        "latency, rather than the CPU, bounds every configuration",
    )
    parser.add_argument(
        "--stream",
        type=int,
        default=1000,
        help="insert the events in slices of this many while the deliveries run (0: all in "
        "one insert before any delivery)",
    )
    add_dsn_argument(parser)
    args = parser.parse_args()
    if args.stream < 0 or args.endpoint_delay < 0 or args.events < 1 or args.rounds < 1:
        parser.error("--stream and --endpoint-delay must not be negative; --events and --rounds 1+")
    counts = [int(n) for n in args.workers.split(",")]
    configs = [
        "bare",
        *(f"bare×{n}" for n in counts if n > 1),
        "sqlite",
        *(f"pg×{n}" for n in counts),
    ]

    work = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    delay = ("--delay", str(args.endpoint_delay)) if args.endpoint_delay else ()
    sink = kit_process("serve", "--certs-dir", str(work / "certs"), "--keep", "1000", *delay)
    info: dict[str, Any] = sink.info
    token = token_for(info)
    window = Window(sink.process.pid)
    results: dict[str, list[Result]] = {c: [] for c in configs}
    ratios: dict[str, list[float]] = {c: [] for c in configs}
    runs = 0
    try:
        for round_ in range(args.rounds):
            events = make_events(args.events)  # fresh ids each round
            order = configs[round_ % len(configs) :] + configs[: round_ % len(configs)]
            got: dict[str, Result] = {}
            for config in order:
                runs += 1
                if config == "bare":
                    got[config] = run(bare_loop(info, token, events, args.concurrency, window))
                elif config.startswith("bare×"):
                    n = int(config.split("×")[1])
                    each = args.concurrency if args.per_worker else max(1, args.concurrency // n)
                    got[config] = bare_processes(info, token, events, n, each, window)
                elif config == "sqlite":
                    db = work / f"round{round_}.db"
                    got[config] = run(
                        sqlite_run(info, db, events, args.concurrency, window, args.stream)
                    )
                else:
                    n = int(config.split("×")[1])
                    schema = f"bench_{os.getpid()}_{runs}"
                    got[config] = run(
                        postgres_run(
                            info,
                            args.dsn,
                            schema,
                            n,
                            events,
                            args.concurrency,
                            work,
                            window,
                            per_worker=args.per_worker,
                            stream=args.stream,
                        )
                    )
                r = got[config]
                print(
                    f"round {round_ + 1} {config:6}: {r.rate:6.0f}/s ({r.seconds:.2f} s, first "
                    f"insert {r.insert_seconds * 1000:.0f} ms)",
                    flush=True,
                )
            for config in configs:
                results[config].append(got[config])
                ratios[config].append(got[config].rate / got["bare"].rate)
            print(
                f"round {round_ + 1} ratios: "
                + ", ".join(f"{c} {ratios[c][-1]:.2f}" for c in configs[1:]),
                flush=True,
            )
    finally:
        sink.stop()

    n = args.events
    print()
    print(
        f"machine: {machine()}; {n} events x {args.rounds} rounds; total concurrency "
        f"{args.concurrency} "
        f"({'each worker' if args.per_worker else 'split between workers'}); "
        + (f"the endpoint answers after {args.endpoint_delay:g} s; " if args.endpoint_delay else "")
        + (f"inserts of {args.stream} events" if args.stream else "one insert")
        + " in the timed window; configurations rotate each round"
    )
    header = (
        "| configuration | deliveries/s (median) | ratio to bare (median of paired) | rounds | "
        "DB round trips/event | CPU µs/event: workers · their backends · all postgres · "
        "endpoint · bench process | idle CPU | waiting for a CPU, s/s: engine · database · "
        "endpoint |"
    )
    print(header)
    print("|---|---|---|---|---|---|---|---|")
    for config in configs:
        rs = results[config]

        def med(key: str, rs: list[Result] = rs) -> float:
            return statistics.median(per_event(r.cpu.get(key, 0.0), n) for r in rs)

        def waited(key: str, rs: list[Result] = rs) -> str:
            values = [r.waiting[key] for r in rs if key in r.waiting]
            return f"{statistics.median(values):.2f}" if values else "–"

        rate = statistics.median(r.rate for r in rs)
        ratio = statistics.median(ratios[config])
        each = ", ".join(f"{x:.2f}" for x in ratios[config])
        trips = (
            f"{statistics.median(r.round_trips for r in rs) / n:.3f}"
            if config.startswith("pg")
            else "–"
        )
        engine = med("bench") if config == "sqlite" else med("workers")
        cpu = (
            f"{engine:.0f} · {med('backends'):.0f} · {med('postgres'):.0f} · "
            f"{med('endpoint'):.0f} · {med('bench'):.0f}"
        )
        idle = statistics.median(r.idle for r in rs)
        waits = f"{waited('engine')} · {waited('database')} · {waited('endpoint')}"
        print(
            f"| {config} | {rate:,.0f} | **{ratio:.2f}** | {each} | {trips} | {cpu} | "
            f"{idle:.0%} | {waits} |"
        )


if __name__ == "__main__":
    main()
