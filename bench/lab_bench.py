"""Benchmarks that change the lab, run as a pytest session so that they reset the lab through the
fixtures and queue behind other lab tests. They are measurements, not tests: the file and its
functions are named bench_*, which pytest does not collect; `inv bench` (`inv dev.bench`) runs them
with `-o python_functions=bench_*`. Figures go to bench-results/parts/*.json; nothing here asserts
a time.

- final sync vs. delta: rsync_pull (steps/transfer.py) of a 200 MB tree from the old host to the
  new one, then again with nothing, 1 MB and 50 MB changed
- a site's freeze window and its availability under bench/probe.py's client (reads and writes), moved
  and then rolled back (the rollback's freeze window beside the forward one; BENCH_FREEZE_RUNS, default 3)
- WordPress's freeze window under a 20/s probe and a comment a second, with its database as the lab
  has it and inflated by BENCH_WP_MB (default 1024) MB: how long requests are held (the hold's
  journal times) and the freeze and final-sync steps; the freeze ships the binary log's changes, so
  the hold should not grow with the database (BENCH_FREEZE_RUNS runs each)
- the mail switch window (mail/hold to mail/verify) while tests.integration.test_mail's sender
  delivers without pause, with every message counted on the new host (BENCH_MAIL_RUNS, default 3)
- the next host upgrade's freeze windows beside the first migration's (issue 19): www, admin and
  shop moved from the Apache host to the new host, then from that compose host to the next host,
  under a probe on admin (BENCH_NEXT_RUNS, default 3)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench.common import median, save
from bench.probe import FormWriter, Probe
from runbook.inventory import load_inventory
from runbook.remote.hosts import HostPool
from steps.transfer import rsync_pull
from tests.integration.helpers import SETUP, inventory_variant, must, run_inv
from tests.integration.test_mail import USERS, Sender, Submitter, journal_window, new_queue_drained, wait_for_ids
from tests.integration.test_sites import acme_trust

pytestmark = pytest.mark.lab
MB = 1024 * 1024


def bench_final_sync_time_against_the_size_of_the_delta(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    inventory = inventory_variant(tmp_path, "bench-sync")
    must(run_inv("migrate", "--yes", "--only", "preflight/*,transfer/key,transfer/authorize", inventory=inventory))
    files, size = int(os.environ.get("BENCH_SYNC_FILES", "200")), MB
    source = lab.root / "old" / "www" / "zz-bench-sync"  # /var/www/zz-bench-sync on the old host
    source.mkdir()
    for number in range(files):
        (source / f"f{number:04d}.bin").write_bytes(os.urandom(size))
    inv = load_inventory(inventory)
    pool = HostPool(inv)
    new = pool.get("new")
    command = rsync_pull(inv, "/var/www/zz-bench-sync", "/srv/zz-bench-sync")

    def sync() -> float:
        started = time.monotonic()
        new.run(command, timeout=600)
        return time.monotonic() - started

    def change(count: int) -> None:
        for number in range(count):
            (source / f"f{number:04d}.bin").write_bytes(os.urandom(size))

    figures: dict[str, float] = {}
    try:
        figures["tree_mb"] = files * size / MB
        figures["first_sync_seconds"] = sync()
        figures["no_change_seconds"] = median([sync() for _ in range(3)])
        for changed in (1, 50):
            runs = []
            for _ in range(3):
                change(changed)
                runs.append(sync())
            figures[f"changed_{changed}mb_seconds"] = median(runs)
    finally:
        pool.close()
        shutil.rmtree(source, ignore_errors=True)
        shutil.rmtree(lab.root / "new" / "srv" / "zz-bench-sync", ignore_errors=True)
    figures["ratio_50mb_over_1mb"] = figures["changed_50mb_seconds"] / figures["changed_1mb_seconds"]
    print(
        f"\nfinal sync of a {figures['tree_mb']:.0f} MB tree: first {figures['first_sync_seconds']:.2f} s, "
        f"unchanged {figures['no_change_seconds']:.2f} s, 1 MB changed {figures['changed_1mb_seconds']:.2f} s, "
        f"50 MB changed {figures['changed_50mb_seconds']:.2f} s (medians of 3; "
        f"50 MB / 1 MB = {figures['ratio_50mb_over_1mb']:.1f}x)"
    )
    save("sync", figures)


def bench_freeze_window_and_availability_of_a_site_move(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Site admin moves under the probe, takes writes on the new host, and is rolled back (a move in
    reverse, steps/carryback.py) under the same probe; BENCH_FREEZE_RUNS times (default 3)."""
    lab = clean_lab
    runs: list[dict[str, float]] = []
    for run in range(int(os.environ.get("BENCH_FREEZE_RUNS", "3"))):
        if run:
            lab.lab.reset()
        runs.append(_move_and_roll_back(lab, inventory_variant(tmp_path / str(run), "bench-freeze")))
    keys = sorted(runs[0])
    figures: dict[str, Any] = {"site": "admin", "runs": runs, **{k: median([r[k] for r in runs]) for k in keys}}
    each = ", ".join(f"{r['freeze_window_seconds']:.2f}/{r['rollback_window_seconds']:.2f}" for r in runs)
    print(
        f"\nsite admin, medians of {len(runs)} runs (forward/rollback each: {each}):\n"
        f"  forward: freeze window {figures['freeze_window_seconds']:.2f} s (freeze "
        f"{figures['freeze_step_seconds']:.2f} s + final sync {figures['final_sync_step_seconds']:.2f} s), "
        f"whole move {figures['move_seconds']:.1f} s\n"
        f"  rollback: freeze window {figures['rollback_window_seconds']:.2f} s (relay held to relay thawed: "
        f"writes carried back, old vhost serving), whole rollback {figures['rollback_seconds']:.1f} s\n"
        f"  probe: {figures['requests']:.0f} requests, {figures['failed']:.0f} failed, {figures['stale']:.0f} stale, "
        f"{figures['writes_acknowledged']:.0f} writes kept ({figures['writes_on_old_once']:.0f} once on the old "
        f"host after the rollback); slowest request {figures['slowest_request_seconds']:.2f} s"
    )
    save("freeze", figures)


def _move_and_roll_back(lab: Any, inventory: Path) -> dict[str, float]:
    from runbook.journal import BEFORE_ROLLBACK, Journal

    must(
        run_inv(
            "migrate",
            "--yes",
            "--only",
            f"{SETUP},site:admin/pre-sync,site:admin/start,site:admin/verify-new",
            inventory=inventory,
        )
    )
    probe = Probe("admin.club.test", lab.resolver, acme_trust(lab), rate=20, write_every=5)
    probe.start()
    time.sleep(1.0)
    started = time.monotonic()
    must(run_inv("migrate", "--yes", "--only", "site:admin/*", inventory=inventory))
    move_seconds = time.monotonic() - started
    moved = Journal(load_inventory(inventory).journal_path).status()  # before the rollback marks them
    time.sleep(8)  # past the cutover TTL: the probe writes to the new host
    started = time.monotonic()
    must(run_inv("rollback", "--yes", "--to", "site:admin/pre-sync", inventory=inventory))
    rollback_seconds = time.monotonic() - started
    time.sleep(8)  # past the cutover TTL again
    probe.stop()
    summary = probe.summary()
    journal = Journal(load_inventory(inventory).journal_path)
    freeze, final = moved["site:admin/freeze"], moved["site:admin/final-sync"]
    # Forward: from the start of the freeze (old host starts proxying to the new one) to the end of
    # the final sync. Rollback: from the relay holding the site's requests on the new host to its
    # thaw, when the old host serves them again with everything carried back.
    events = [r for r in journal.records() if r.event == BEFORE_ROLLBACK and "admin_relay" in r.body["text"]]
    held = [r.ts for r in events if "hold freeze" in r.body["text"]][-1]
    thawed = [r.ts for r in events if "hold thaw" in r.body["text"]][-1]
    on_old = (lab.root / "old" / "www" / "admin" / "data" / "entries.txt").read_text().splitlines()
    requests, failed = int(summary["requests"]), int(summary["failed"])  # type: ignore[call-overload]
    return {
        "move_seconds": move_seconds,
        "freeze_window_seconds": final["finished"] - freeze["started"],
        "freeze_step_seconds": freeze["seconds"],
        "final_sync_step_seconds": final["seconds"],
        "rollback_seconds": rollback_seconds,
        "rollback_window_seconds": thawed - held,
        "requests": float(requests),
        "failed": float(failed),
        "stale": float(summary["stale"]),  # type: ignore[arg-type]
        "writes_acknowledged": float(summary["writes_acknowledged"]),  # type: ignore[arg-type]
        "writes_failed": float(summary["writes_failed"]),  # type: ignore[arg-type]
        "writes_on_old_once": float(sum(1 for _, e in probe.acknowledged if on_old.count(e) == 1)),
        "availability_percent": 100.0 * (requests - failed) / requests if requests else 0.0,
        "slowest_request_seconds": float(summary["slowest"]),  # type: ignore[arg-type]
    }


def _comment(text: str) -> dict[str, str]:
    return {"comment": text, "author": "Bench", "email": "bench@club.test", "comment_post_ID": "1", "submit": "1"}


def _inflate_blog(lab: Any, megabytes: int) -> None:
    """Adds `megabytes` of rows (1 KiB each) to the old host's blog database, as a year of a real
    WordPress's options, post meta and revisions would."""
    from lab import db, sshhosts

    if megabytes <= 0:
        return
    ns = sshhosts.ns_pid(lab.lab.paths, "old")
    rows, statements = (
        1,
        [
            "CREATE TABLE IF NOT EXISTS blog.wp_bench_meta (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT) ENGINE=InnoDB;",
            "INSERT INTO blog.wp_bench_meta (v) VALUES (REPEAT('x', 1024));",
        ],
    )
    while rows < megabytes * 1024:  # doubling: 1 KiB rows up to the size asked
        statements.append("INSERT INTO blog.wp_bench_meta (v) SELECT v FROM blog.wp_bench_meta;")
        rows *= 2
    db.sql(ns, "\n".join(statements))


def _move_wordpress(lab: Any, inventory: Path, megabytes: int) -> dict[str, float]:
    from runbook.journal import ACTION, APPLIED, Journal

    _inflate_blog(lab, megabytes)
    must(run_inv("migrate", "--yes", "--only", f"{SETUP},site:blog/pre-sync,site:blog/start", inventory=inventory))
    probe = Probe("blog.club.test", lab.resolver, acme_trust(lab), rate=20, read_path="/", write_every=0)
    writer = FormWriter("blog.club.test", "/wp-comments-post.php", _comment, lab.resolver, acme_trust(lab))
    probe.start()
    writer.start()
    try:
        must(run_inv("migrate", "--yes", "--only", "site:blog/*", inventory=inventory))
        time.sleep(8)
    finally:
        writer.stop()
        probe.stop()
    journal = Journal(load_inventory(inventory).journal_path)
    moved = journal.status()
    freeze, final = moved["site:blog/freeze"], moved["site:blog/final-sync"]
    summary = probe.summary()
    # Requests wait from the hold of the new container (journaled just before it runs) to its thaw
    # (journaled once done): the final sync, the database's last changes and the release.
    records = list(journal.records())
    actions = [r for r in records if r.event == ACTION]
    held = [r.ts for r in actions if "hold freeze blog_app" in r.body["text"]][-1]
    thaw = [r.seq for r in actions if "hold thaw blog_app" in r.body["text"]][-1]
    thawed = [r.ts for r in records if r.event == APPLIED and r.body.get("of") == thaw][-1]
    # Where the held time goes: each action journaled inside the window, with its own time.
    done = {r.body.get("of"): r.ts for r in records if r.event == APPLIED}

    def label(r: Any) -> str:
        if r.event != ACTION:
            return f"{r.event} {r.step}"
        why = r.body["action"].get("why") or r.body["text"].splitlines()[0]
        return f"+{done.get(r.seq, r.ts) - r.ts:5.2f} s  {r.body['action'].get('host', '')}: {why[:80]}"

    timeline = [f"{r.ts - held:6.2f}  {label(r)}" for r in records if held <= r.ts <= thawed and r.event != APPLIED]
    argv = ["docker", "exec", "blog_db", "mariadb", "-N", "-B", "-e", "SELECT comment_content FROM blog.wp_comments"]
    on_new = set(subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout.split("\n"))
    return {
        "comments_on_new_host": float(len(set(writer.acknowledged) & on_new)),
        "held_seconds": thawed - held,
        # The freeze starts when the old copy stops taking requests: the graceful reload, right
        # after the hold; the new host serves at the thaw. So the window is the held time.
        "freeze_window_seconds": thawed - held,
        "freeze_and_final_sync_steps_seconds": final["finished"] - freeze["started"],
        "freeze_step_seconds": freeze["seconds"],
        "final_sync_step_seconds": final["seconds"],
        "requests": float(summary["requests"]),  # type: ignore[arg-type]
        "failed": float(summary["failed"]),  # type: ignore[arg-type]
        "slowest_request_seconds": float(summary["slowest"]),  # type: ignore[arg-type]
        "comments_acknowledged": float(len(writer.acknowledged)),
        "comments_failed": float(len(writer.failed)),
        "held_timeline": timeline,  # type: ignore[dict-item]
    }


def bench_wordpress_freeze_window_against_its_database_size(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """WordPress (site blog) moves under a 20/s probe and a comment a second, with its database as
    the lab has it and inflated by BENCH_WP_MB; BENCH_FREEZE_RUNS times each (default 3)."""
    lab = clean_lab
    sizes = (0, int(os.environ.get("BENCH_WP_MB", "1024")))
    figures: dict[str, Any] = {"site": "blog", "sizes_mb": list(sizes)}
    lines = []
    for size in sizes:
        runs = []
        for run in range(int(os.environ.get("BENCH_FREEZE_RUNS", "3"))):
            lab.lab.reset()
            runs.append(_move_wordpress(lab, inventory_variant(tmp_path / f"{size}-{run}", "bench-wp"), size))
        keys = sorted(k for k in runs[0] if k != "held_timeline")
        for number, each in enumerate(runs):
            head = f"\n  +{size} MB, run {number + 1}, held {each['held_seconds']:.2f} s:\n    "
            print(head + "\n    ".join(each["held_timeline"]))
        figures[str(size)] = {"runs": runs, **{k: median([r[k] for r in runs]) for k in keys}}
        f = figures[str(size)]
        each_held = ", ".join(f"{r['held_seconds']:.2f}" for r in f["runs"])
        lines.append(
            f"  database +{size} MB: freeze window (hold to thaw) {f['freeze_window_seconds']:.2f} s "
            f"[{each_held}]; freeze and final-sync steps "
            f"{f['freeze_and_final_sync_steps_seconds']:.2f} s (freeze step {f['freeze_step_seconds']:.2f} s, "
            f"with the catch-up before the hold; final sync {f['final_sync_step_seconds']:.2f} s), "
            f"{f['requests']:.0f} requests, "
            f"{f['failed']:.0f} failed, "
            f"slowest {f['slowest_request_seconds']:.2f} s, {f['comments_acknowledged']:.0f} comments acknowledged "
            f"({f['comments_on_new_host']:.0f} in the new host's database), "
            f"{f['comments_failed']:.0f} failed"
        )
    small, big = figures[str(sizes[0])], figures[str(sizes[1])]
    ratio = big["held_seconds"] / small["held_seconds"] if small["held_seconds"] else 0.0
    print(f"\nWordPress (blog), medians of {len(small['runs'])} runs:\n" + "\n".join(lines))
    print(
        f"  requests are held {ratio:.2f}x as long with +{sizes[1]} MB: the freeze ships the binary log's "
        "changes, not the database"
    )
    save("wordpress-freeze", figures)


def step_seconds(status: dict[str, Any], step: str) -> float:
    """How long a step took in this run, from its journal times (nan if it did not run)."""
    entry = status.get(step, {})
    if entry.get("started") is None or entry.get("finished") is None:
        return float("nan")
    return float(entry["finished"]) - float(entry["started"])


@pytest.mark.timeout(3600)
def bench_mail_switch_window_under_delivery(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    runs: list[dict[str, float]] = []
    for run in range(int(os.environ.get("BENCH_MAIL_RUNS", "3"))):
        if run:
            lab.lab.reset()
        inventory = inventory_variant(tmp_path / str(run), "bench-mail")
        must(run_inv("migrate", "--yes", "--only", f"{SETUP},mail/pre-sync", inventory=inventory, timeout=600))
        # delivery on 25 without pause (BENCH_MAIL_RATE: at most that many a second), as for the earlier figures,
        # and members submitting on 587 all along
        sender = Sender(lab.resolver, rate=float(os.environ.get("BENCH_MAIL_RATE", "0")))
        submitter = Submitter(lab, lab.resolver)
        threads = [
            threading.Thread(target=sender.run, daemon=True),
            threading.Thread(target=submitter.run, daemon=True),
        ]
        for thread in threads:
            thread.start()
        time.sleep(2)
        result = run_inv("migrate", "--yes", "--only", "mail/*", inventory=inventory, timeout=600)
        time.sleep(3)
        sender.stop.set()
        submitter.stop.set()
        for thread in threads:
            thread.join(30)
        must(result)
        status = json.loads(must(run_inv("status", "--json", inventory=inventory)).stdout)["steps"]
        window, switch = journal_window(status)
        expected = {u: {m for m, user, _, _ in sender.sent + submitter.sent if user == u} for u in USERS}
        new_queue_drained()
        seen = wait_for_ids(lab, acme_trust(lab), expected)
        counts = {u: Counter(seen[u]) for u in USERS}
        figures = {
            "window_seconds": window,
            "switch_dns_seconds": switch,
            **{f"{part}_seconds": step_seconds(status, f"mail/{part}") for part in ("hold", "final-sync", "release")},
            # mail/verify's journal entry has no start of its own: from the end of switch-dns
            "verify_seconds": float(status["mail/verify"]["finished"]) - float(status["mail/switch-dns"]["finished"]),
            "messages": float(len(sender.sent)),
            "lost": float(sum(len(expected[u] - set(counts[u])) for u in USERS)),
            "twice": float(sum(1 for u in USERS for m in expected[u] if counts[u][m] > 1)),
            "send_retries": float(sum(sender.failures.values())),
            "submitted": float(len(submitter.sent)),
            "failed_submissions": float(len(submitter.failures)),
        }
        print(f"\nmail switch run {run + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()))
        for failure in submitter.failures:
            print(f"  failed submission: {failure}")
        runs.append(figures)
    summary = {f"{key}_median": median([r[key] for r in runs]) for key in runs[0]}
    summary["runs"] = float(len(runs))
    summary["lost_total"] = sum(r["lost"] for r in runs)
    summary["twice_total"] = sum(r["twice"] for r in runs)
    print(
        f"\nmail switch window (mail/hold start to mail/verify end): median {summary['window_seconds_median']:.1f} s "
        f"of {len(runs)} runs (switch-dns {summary['switch_dns_seconds_median']:.1f} s, hold "
        f"{summary['hold_seconds_median']:.1f} s, final sync {summary['final-sync_seconds_median']:.1f} s); "
        f"{summary['messages_median']:.0f} messages per run, {summary['lost_total']:.0f} lost, "
        f"{summary['twice_total']:.0f} twice; {summary['submitted_median']:.0f} submitted on 587 per run, "
        f"{sum(r['failed_submissions'] for r in runs):.0f} failed; the README's earlier window, sender alone: "
        f"10.0 s median, about 4,700 messages per run"
    )
    save("mail_switch", summary)


NEXT_BENCH_SITES = ("www", "admin", "shop")


@pytest.mark.timeout(3600)
def bench_next_upgrade_freeze_window_beside_the_first(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Each site's freeze window (the target's hold to its thaw, from the journal) when it moves off
    the Apache host, and when it moves again off the compose host that move built; medians of
    BENCH_NEXT_RUNS runs (default 3), each from a reset lab."""
    from tests.integration.test_next_upgrade import NEXT_INVENTORY, freeze_windows

    lab = clean_lab
    runs: list[dict[str, float]] = []
    for run in range(int(os.environ.get("BENCH_NEXT_RUNS", "3"))):
        if run:
            lab.lab.reset()
        must(run_inv("migrate", "--yes", timeout=1200))
        first = freeze_windows()
        only = ",".join([SETUP, *(f"site:{name}/*" for name in NEXT_BENCH_SITES)])
        probe = Probe("admin.club.test", lab.resolver, acme_trust(lab), rate=20, write_every=5)
        probe.start()
        try:
            must(run_inv("migrate", "--yes", "--only", only, inventory=NEXT_INVENTORY, timeout=1200))
            time.sleep(8)  # past the cutover TTL
        finally:
            probe.stop()
        second = freeze_windows(NEXT_INVENTORY)
        summary = probe.summary()
        figures = {f"{name}_first": first[name] for name in NEXT_BENCH_SITES}
        figures.update({f"{name}_next": second[name] for name in NEXT_BENCH_SITES})
        figures["admin_requests"] = float(summary["requests"])  # type: ignore[arg-type]
        figures["admin_failed"] = float(summary["failed"])  # type: ignore[arg-type]
        runs.append(figures)
    medians = {key: median([r[key] for r in runs]) for key in runs[0]}
    print(f"\nfreeze window (s), medians of {len(runs)} runs: Apache host -> new host | compose host -> next host")
    for name in NEXT_BENCH_SITES:
        each = ", ".join(f"{r[name + '_first']:.2f}|{r[name + '_next']:.2f}" for r in runs)
        print(f"  {name:6} {medians[name + '_first']:6.2f} | {medians[name + '_next']:6.2f}   (runs: {each})")
    print(
        f"  probe on admin during the next upgrade: {sum(r['admin_requests'] for r in runs):.0f} requests, "
        f"{sum(r['admin_failed'] for r in runs):.0f} failed"
    )
    save("next-upgrade", {"sites": list(NEXT_BENCH_SITES), "runs": runs, **medians})
