"""Start-up and certify costs, each against a bare baseline measured in the same run.

- ``webhook-kit --help`` against ``python -c pass`` (goal: at most 0.3 s);
- a pytest start (collecting one trivial test) with the plugin installed and enabled, against the
  same with ``-p no:webhook_kit`` (goal: at most 50 ms added);
- ``webhook-kit certify`` of a conforming local endpoint with default settings, against the
  process start of ``webhook-kit --version`` (goal: at most 3 s).

    python benchmarks/bench_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import kit_process, machine, python  # noqa: E402

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def timed(args: list[str], runs: int, cwd: Path | None = None) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, check=False, capture_output=True, cwd=cwd)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def import_cost(module: str, preload: str) -> float:
    """Microseconds to import ``module`` once ``preload`` is imported (its own cumulative time)."""
    code = f"import {preload}; import {module}"
    err = subprocess.run(
        [python(), "-X", "importtime", "-c", code], capture_output=True, text=True
    ).stderr
    for line in err.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return float(parts[1])
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    (work / "test_one.py").write_text("def test_one():\n    assert True\n")
    (work / "pytest.ini").write_text("[pytest]\n")

    bare = timed([python(), "-c", "pass"], args.runs)
    helped = timed([python(), "-m", "webhook_kit", "--help"], args.runs)
    pytest_off = timed(
        [python(), "-m", "pytest", "-q", "-p", "no:webhook_kit", "-p", "no:cacheprovider"],
        args.runs,
        work,
    )
    pytest_on = timed([python(), "-m", "pytest", "-q", "-p", "no:cacheprovider"], args.runs, work)
    plugin_import_us = import_cost("webhook_kit.pytest_plugin", preload="pytest")
    version = timed([python(), "-m", "webhook_kit", "--version"], args.runs)

    sink = kit_process("serve", "--certs-dir", str(work / "certs"))
    try:
        info = sink.info
        certify_args = [
            python(),
            "-m",
            "webhook_kit",
            "certify",
            info["url"],
            "--token-url",
            info["token_url"],
            "--client-id",
            info["client_id"],
            "--client-secret",
            info["client_secret"],
            "--ca",
            info["ca_file"],
            "--format",
            "json",
        ]
        result = subprocess.run(certify_args, capture_output=True, text=True)
        verdict = json.loads(result.stdout)["verdict"]
        certified = timed(certify_args, max(3, args.runs // 2))
    finally:
        sink.stop()

    print(f"machine: {machine()}; medians of {args.runs} runs")
    print(f"python -c pass:           {bare * 1000:7.0f} ms (baseline)")
    print(
        f"webhook-kit --help:       {helped * 1000:7.0f} ms  ratio {helped / bare:.2f}x "
        "(goal <= 300)"
    )
    print(f"pytest, plugin disabled:  {pytest_off * 1000:7.0f} ms (baseline)")
    print(
        f"pytest, plugin enabled:   {pytest_on * 1000:7.0f} ms  "
        f"added {(pytest_on - pytest_off) * 1000:+.0f} ms, ratio {pytest_on / pytest_off:.2f}x "
        "(goal <= +50)"
    )
    print(f"plugin module import (-X importtime, pytest already loaded): {plugin_import_us:.0f} us")
    print(f"webhook-kit --version:    {version * 1000:7.0f} ms (baseline for certify)")
    print(
        f"webhook-kit certify:      {certified * 1000:7.0f} ms  ratio {certified / version:.2f}x  "
        f"verdict {verdict}  (goal <= 3000 ms)"
    )


if __name__ == "__main__":
    main()
