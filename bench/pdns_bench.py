"""Benchmark of the lexicon provider against the lab's PowerDNS (zone lexicon.test).

For fresh names: the compare-and-swap write (read, compare, fresh re-check, PATCH, read back),
then `wait_propagated` until PowerDNS serves the change over DNS. Prints the medians of the write
time, of the propagation wait after the write, and of the detection latency after PowerDNS first
serves the change (seen by an independent 1 ms poller, as in bench/dns_bench.py).

Run (with the lab up): .venv/bin/python bench/pdns_bench.py [--runs 15]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dns_bench import INVENTORY, first_seen  # noqa: E402
from lab.topology import PDNS, PDNS_ZONE  # noqa: E402
from runbook.dns import dns_service  # noqa: E402
from runbook.dns.values import RRsetValue  # noqa: E402
from runbook.errors import DnsError  # noqa: E402
from runbook.inventory import load_inventory  # noqa: E402

CREDENTIALS = Path(__file__).resolve().parents[1] / ".lab" / "pdns" / "lexicon.yaml"


def runs(count: int) -> tuple[list[float], list[float], list[float]]:
    """(write seconds, propagation wait seconds, detection latency seconds) of each run."""
    spec = load_inventory(INVENTORY).dns
    assert spec is not None
    spec = dataclasses.replace(
        spec,
        zone=PDNS_ZONE,
        provider="lexicon",
        server=None,
        tsig=None,
        lexicon={"provider": "powerdns", "credentials_file": CREDENTIALS},
    )
    svc = dns_service(spec)
    writes, waits, latencies = [], [], []
    for _ in range(count):
        name = f"t-bench-{secrets.token_hex(3)}.{PDNS_ZONE}"
        new = RRsetValue.of(5, ["127.0.0.12"])
        stop, seen = threading.Event(), list[float]()
        probe = threading.Thread(target=first_seen, args=(PDNS, name, "127.0.0.12", stop, seen))
        probe.start()
        try:
            started = time.monotonic()
            serial = svc.replace(name, "A", None, new)
            written = time.monotonic()
            waits.append(svc.wait_propagated(name, "A", new, serial, timeout=3))
            reported = time.monotonic()
        except DnsError as exc:
            print(f"  run skipped: {str(exc).splitlines()[0]}")
            stop.set()
            continue
        probe.join(2)
        stop.set()
        writes.append(written - started)
        if seen:
            latencies.append(max(0.0, reported - seen[0]))
        with contextlib.suppress(DnsError):
            svc.replace(name, "A", new, None)
        time.sleep(0.05)
    svc.close()
    return writes, waits, latencies


def summary(what: str, samples: list[float]) -> str:
    ms = sorted(x * 1000 for x in samples)
    if not ms:
        return f"{what}: no runs"
    return f"{what}: median {statistics.median(ms):.1f} ms, min {ms[0]:.1f}, max {ms[-1]:.1f} ({len(ms)} runs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    writes, waits, latencies = runs(args.runs)
    print(summary("PowerDNS via lexicon: compare-and-swap write", writes))
    print(summary("PowerDNS: propagation detected after the write returned", waits))
    print(summary("PowerDNS: detection after PowerDNS first serves the change", latencies))


if __name__ == "__main__":
    main()
