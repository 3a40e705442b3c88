"""Benchmark: how soon the manual DNS provider notices the operator's change, on a real terminal.

`inv migrate --only ttl/lower` runs in a pty with the manual provider; for each instruction it
shows, the "operator" (tests/manualpty.py) makes the change at the lab's BIND primary by RFC 2136.
The figure is the time from the primary's answer to that update to the engine's next line on the
terminal (it has seen the change at every authoritative server, primary and secondary).

Run: .venv/bin/python bench/manual_bench.py [--runs 5] [--names 3]   (holds the lab's pytest lock)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import lab_lock, save  # noqa: E402
from tests.manualpty import LabZone, fresh_names, manual_inventory, run_manual_ttl_lower  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--names", type=int, default=3, help="records (manual changes) per run")
    args = parser.parse_args()
    from lab.manager import ADDRESSES

    zone = LabZone(str(ADDRESSES["ns1"]), REPO / ".lab" / "dns" / "tsig.secret")
    delays: list[float] = []
    with lab_lock(), tempfile.TemporaryDirectory() as tmp:
        for number in range(args.runs):
            names = fresh_names(zone, args.names)
            try:
                inventory = manual_inventory(Path(tmp) / f"run{number}", f"manualbench{number}", names)
                run = run_manual_ttl_lower(inventory, zone)
            finally:
                for name in names:
                    zone.delete(name)
            if run.exit_code != 0 or len(run.detected_after) != args.names:
                raise SystemExit(f"run {number} failed (exit {run.exit_code}):\n{run.output[-2000:]}")
            delays += run.detected_after
            print(f"run {number}: " + ", ".join(f"{d:.2f} s" for d in run.detected_after), flush=True)
    figures = {
        "changes": len(delays),
        "median_s": round(statistics.median(delays), 3),
        "min_s": round(min(delays), 3),
        "max_s": round(max(delays), 3),
    }
    print(
        f"manual DNS change -> detected on the terminal: median {figures['median_s']:.2f} s "
        f"(min {figures['min_s']:.2f}, max {figures['max_s']:.2f}) over {len(delays)} changes"
    )
    save("manual", figures)


if __name__ == "__main__":
    main()
