"""Benchmark of the DNS checks against the lab's BIND primary and secondary.

1. Detection latency: how long after the secondary first serves a change (seen by an independent
   1 ms poller) `wait_propagated` reports it. Goal: median < 250 ms.
2. Batch checks: N names at M servers with `served_many`, against one round trip (1 name) and
   against asking the same questions one by one.

Run: .venv/bin/python bench/dns_bench.py [--runs 15] [--names 50]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

import dns.message
import dns.query

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from runbook.dns import dns_service  # noqa: E402
from runbook.dns.values import RRsetValue  # noqa: E402
from runbook.errors import DnsError  # noqa: E402
from runbook.inventory import load_inventory  # noqa: E402

INVENTORY = Path(__file__).resolve().parents[1] / "hosts" / "lab.yaml"


def first_seen(server: str, name: str, want: str, stop: threading.Event, out: list[float]) -> None:
    """Poll `server` every ~1 ms; note when it first serves `want` for name A."""
    query = dns.message.make_query(name + ".", "A")
    while not stop.is_set():
        try:
            response = dns.query.udp(query, server, timeout=0.2)
            if any(want in rd.to_text() for rrset in response.answer for rd in rrset):
                out.append(time.monotonic())
                return
        except Exception:  # noqa: BLE001 - keep polling
            pass
        time.sleep(0.001)


def detection(runs: int) -> list[float]:
    svc = dns_service(load_inventory(INVENTORY).dns)  # type: ignore[arg-type]
    secondary = [s for s in svc.authoritative_servers() if s.address != svc.spec.server][0]
    latencies = []
    for _ in range(runs):
        name = f"t-bench-{secrets.token_hex(3)}.club.test"
        new = RRsetValue.of(5, ["127.0.0.12"])
        stop, seen = threading.Event(), []
        probe = threading.Thread(target=first_seen, args=(secondary.address, name, "127.0.0.12", stop, seen))
        probe.start()
        try:
            serial = svc.replace(name, "A", None, new)
            svc.wait_propagated(name, "A", new, serial, timeout=3)
        except DnsError as exc:  # e.g. the lab reloaded its pristine zone meanwhile
            print(f"  run skipped: {str(exc).splitlines()[0]}")
            stop.set()
            continue
        reported = time.monotonic()
        probe.join(2)
        stop.set()
        if seen:
            latencies.append(max(0.0, reported - seen[0]))
        with contextlib.suppress(DnsError):
            svc.replace(name, "A", new, None)
        time.sleep(0.05)
    svc.close()
    return latencies


def batch(names: int, rounds: int = 7) -> None:
    svc = dns_service(load_inventory(INVENTORY).dns)  # type: ignore[arg-type]
    servers = svc.authoritative_servers()
    records = [(f"t-batch{i}.club.test", "A") for i in range(names)]

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        samples = []
        for _ in range(rounds):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        return statistics.median(samples)

    one = timed(lambda: svc.served_many(records[:1]))
    many = timed(lambda: svc.served_many(records))

    def sequential() -> None:
        for server in servers:
            for name, rdtype in records:
                dns.query.udp(dns.message.make_query(name + ".", rdtype), server.address, port=server.port, timeout=1)

    seq = timed(sequential)
    print(
        f"batch: {names} names x {len(servers)} servers (+ SOA each): {many * 1000:.1f} ms "
        f"median; 1 name: {one * 1000:.1f} ms; ratio {many / one:.1f}x one check"
    )
    print(
        f"       the same {names * len(servers)} queries one by one: {seq * 1000:.1f} ms "
        f"({seq / many:.1f}x slower than the batch)"
    )
    svc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--names", type=int, default=50)
    args = parser.parse_args()
    lat = detection(args.runs)
    if lat:
        ms = sorted(x * 1000 for x in lat)
        print(
            f"detection after the secondary serves the change: median {statistics.median(ms):.1f}"
            f" ms, min {ms[0]:.1f}, max {ms[-1]:.1f} ({len(ms)} runs; goal < 250 ms)"
        )
    batch(args.names)


if __name__ == "__main__":
    main()
