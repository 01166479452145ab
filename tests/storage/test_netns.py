"""A worker on "another machine": its own network namespace, reaching the database and the
endpoint over TCP through a veth pair, with nothing shared but the database.

PostgreSQL listens on loopback only, and the system's server is not ours to reconfigure, so a
forwarder in the test listens on the host side of the veth and passes each connection on to it.
Needs root and ``ip`` (iproute2); skips with the reason without them, and fails instead when
``WEBHOOK_KIT_REQUIRE_NETNS=1`` (CI).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest
import trustme

from tests.storage.workers import (
    Database,
    TcpForwarder,
    lifecycles,
    order_violations,
    receipts,
    settings_document,
    start_serve,
    start_worker,
)

pytestmark = pytest.mark.slow

REQUIRE = "WEBHOOK_KIT_REQUIRE_NETNS"
VALIDATIONS = 30
PER_VALIDATION = 5


@dataclass(frozen=True)
class Namespace:
    name: str
    host_ip: str
    ns_ip: str

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]


def unavailable(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE):
        pytest.fail(f"{reason}, and {REQUIRE}=1 requires network namespaces")
    pytest.skip(reason)


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def free_subnet(pid: int) -> tuple[str, str]:
    """A /30 in 10.200.0.0/16 picked by ``pid`` (parallel runs differ), not in use here."""
    in_use = ip("-o", "-4", "addr", "show").stdout
    for step in range(16384):
        block = (pid + step) % 16384
        base = f"10.200.{block // 64}.{(block % 64) * 4}"
        prefix = base.rsplit(".", 1)[0]
        last = int(base.rsplit(".", 1)[1])
        host, inside = f"{prefix}.{last + 1}", f"{prefix}.{last + 2}"
        if f" {host}/" not in in_use and f" {inside}/" not in in_use:
            return host, inside
    unavailable("no free /30 in 10.200.0.0/16")


@contextlib.contextmanager
def namespace() -> Iterator[Namespace]:
    """A network namespace joined to this one by a veth pair; both gone afterwards, always."""
    if shutil.which("ip") is None:
        unavailable("`ip` (iproute2) is not installed")
    if os.geteuid() != 0:
        unavailable("creating network namespaces needs root")
    pid = os.getpid()
    name, host_if, ns_if = f"wk-test-{pid}", f"wkh{pid}", f"wkn{pid}"
    host_ip, ns_ip = free_subnet(pid)
    added = ip("netns", "add", name)
    if added.returncode != 0:
        unavailable(f"`ip netns add` is not permitted here: {added.stderr.strip()}")
    try:
        steps = [
            ("link", "add", host_if, "type", "veth", "peer", "name", ns_if),
            ("link", "set", ns_if, "netns", name),
            ("addr", "add", f"{host_ip}/30", "dev", host_if),
            ("link", "set", host_if, "up"),
            ("netns", "exec", name, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if),
            ("netns", "exec", name, "ip", "link", "set", ns_if, "up"),
            ("netns", "exec", name, "ip", "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = ip(*step)
            if done.returncode != 0:
                unavailable(f"`ip {' '.join(step)}` failed: {done.stderr.strip()}")
        yield Namespace(name, host_ip, ns_ip)
    finally:
        ip("netns", "del", name)  # takes its end of the veth, and so the pair, with it
        ip("link", "del", host_if)  # in case the pair was made but not moved


def test_a_worker_in_its_own_network_namespace_delivers_everything(
    postgres_url: str, tmp_path: Path
) -> None:
    rng = random.Random(12)
    expected = lifecycles(VALIDATIONS, PER_VALIDATION, rng)
    total = VALIDATIONS * PER_VALIDATION
    record = tmp_path / "received.jsonl"
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(namespace())
        # The endpoint's certificate names the address the worker reaches it at.
        ca = trustme.CA()
        leaf = ca.issue_cert(ns.host_ip)
        ca_file, cert_file, key_file = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
        ca.cert_pem.write_to_path(str(ca_file))
        leaf.private_key_pem.write_to_path(str(key_file))
        leaf.cert_chain_pems[0].write_to_path(str(cert_file))
        for pem in leaf.cert_chain_pems[1:]:
            pem.write_to_path(str(cert_file), append=True)

        server = urlsplit(postgres_url)
        forwarder = TcpForwarder(
            listen=(ns.host_ip, 0), target=(server.hostname or "127.0.0.1", server.port or 5432)
        )
        stack.callback(forwarder.close)
        user = server.netloc.rsplit("@", 1)[0] + "@" if "@" in server.netloc else ""
        remote_db = urlunsplit(server._replace(netloc=f"{user}{ns.host_ip}:{forwarder.address[1]}"))

        serve = start_serve(
            tmp_path,
            record,
            host=ns.host_ip,
            extra=["--certfile", str(cert_file), "--keyfile", str(key_file)],
        )
        stack.callback(serve.stop)
        assert serve.info["url"].startswith(f"https://{ns.host_ip}:")

        with Database(postgres_url) as db:
            db.put_settings(settings_document(serve.info))
            worker = start_worker(
                tmp_path,
                remote_db,
                str(ca_file),
                "worker-netns",
                concurrency=4,
                timeout=5.0,
                lease=15.0,
                prefix=ns.exec_prefix,
                extra=["--allow-private"],
            )
            stack.callback(worker.kill)
            for events in expected:
                db.insert(events)
            try:
                final = db.wait_for_counts(lambda c: c.get("sent", 0) >= total, timeout=90)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}; worker said: {worker.stderr_tail()}") from exc
            assert final == {"sent": total}
            assert worker.stop() == 0
        serve.stop()

    seen, refused = receipts(record)
    assert refused == []
    assert {r.event_id for r in seen} == {e.event_id for events in expected for e in events}
    assert order_violations([[e.event_id for e in events] for events in expected], seen) == []
    # Every delivery came from the namespace's address: the worker in it, over the veth.
    assert {r.remote.rsplit(":", 1)[0] for r in seen} == {ns.ns_ip}
    assert forwarder.connections > 0  # it reached the database through the forwarder
