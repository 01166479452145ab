"""Crash safety, full run: at least 10,000 events, the provider SIGKILLed at random moments.

    python scripts/crash.py [--events 10000] [--kills 5] [--seed 1]

Prints what it found; exits 1 if an acknowledged event was lost, an event is not sent, or the
duplicates exceed the deliveries that can be in flight at the kills.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harnesses.crash import CONCURRENCY, run_crash  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result = run_crash(
        args.events, args.kills, Path(tempfile.mkdtemp(prefix="crash-")), seed=args.seed
    )
    print(f"events acknowledged by the API: {result.acknowledged}")
    print(f"kills (SIGKILL) at seconds: {', '.join(f'{t:.1f}' for t in result.kill_times)}")
    print(f"delivered: {result.delivered_distinct} distinct, {result.delivered_total} in all")
    print(f"lost: {len(result.lost)}; not sent in the database: {result.not_sent_in_db}")
    print(
        f"duplicates at the endpoint: {result.duplicates} (bound: {result.duplicate_bound} = "
        f"{result.kills} kills x ({CONCURRENCY} in flight + 64 in the 10 ms record window))"
    )
    print(f"took {result.seconds:.1f} s")
    ok = (
        not result.lost
        and result.not_sent_in_db == 0
        and result.duplicates <= result.duplicate_bound
    )
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
