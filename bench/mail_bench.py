"""Benchmark of the mail pre-sync and final sync (steps/mail.py) on the lab's hosts.

Mailboxes of thousands of messages are made on the old host under a domain of their own
(bench.test, so the lab's club.test is untouched); each run copies them to a scratch folder on the
new host with the very rsync command the mail steps use (pre-sync: a full copy), then changes the
old side as a day of mail would (new messages delivered, flags changed = Maildir renames) and
runs the final sync. Prints the median of several runs.

Needs a running lab. It queues on the lab's pytest session lock (.lab/pytest.lock), runs
transfer/key and transfer/authorize under its own inventory name, and revokes the key at the end
when it was not there before.

Run: .venv/bin/python bench/mail_bench.py [--users 3] [--messages 3000] [--runs 5]
"""

from __future__ import annotations

import argparse
import fcntl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import save  # noqa: E402
from runbook.inventory import load_inventory  # noqa: E402
from runbook.remote.hosts import HostPool  # noqa: E402
from steps.transfer import KEY as TRANSFER_KEY  # noqa: E402
from steps.transfer import rsync_pull  # noqa: E402
from tests.labcopy import lab_inventory_copy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DOMAIN = "bench.test"
SOURCE = f"/var/vmail/{DOMAIN}"
DEST = f"/srv/mail-bench/vmail/{DOMAIN}"

MAKE = r"""
import os, sys, time
root, users, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
body = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 40 + "\n").encode()
for u in range(users):
    md = os.path.join(root, f"user{u}", "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    have = len(os.listdir(os.path.join(md, "cur")))
    with open(os.path.join(md, "dovecot-uidvalidity"), "w") as f:
        f.write("6b06f775\n")
    for i in range(have, count):
        name = f"{1700000000 + i}.M{i}P1.bench,S={len(body) + 120}:2,S"
        with open(os.path.join(md, "cur", name), "wb") as f:
            f.write(b"From: a@fans.example\nTo: user@bench.test\nSubject: m %d\nMessage-ID: <%d@b>\n\n" % (i, i) + body)
"""

CHANGE = r"""
import os, sys, time
root, users, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
stamp = int(time.time() * 1000)
for u in range(users):
    md = os.path.join(root, f"user{u}", "Maildir")
    for i in range(new):
        with open(os.path.join(md, "new", f"{stamp}.N{i}P2.bench"), "wb") as f:
            f.write(b"Subject: new %d\n\nnew mail\n" % i)
    cur = sorted(os.listdir(os.path.join(md, "cur")))
    for name in cur[::20]:  # 5 % get a flag changed: a rename in Maildir
        base, _, flags = name.partition(":2,")
        flags = "".join(sorted(set(flags) ^ {"F"}))
        os.rename(os.path.join(md, "cur", name), os.path.join(md, "cur", f"{base}:2,{flags}"))
"""


def run_steps(inventory: Path, only: str) -> None:
    """Run the named steps under the bench's own inventory name."""
    inv = str(Path(sys.executable).parent / "inv")
    subprocess.run(
        [inv, "migrate", "--yes", "--only", only],
        env={"INVOKE_RUNBOOK_INVENTORY": str(inventory), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        check=True,
        capture_output=True,
        text=True,
    )


def timed(host, argv: list[str]) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    host.run(argv, timeout=3600)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--messages", type=int, default=3000, help="messages per mailbox")
    parser.add_argument("--new", type=int, default=50, help="messages per mailbox arriving before the final sync")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    # the lab is shared: queue with pytest sessions on the same lock the `lab` fixture holds
    lock = open(REPO / ".lab" / "pytest.lock", "w")  # noqa: SIM115 - held for the whole run
    fcntl.flock(lock, fcntl.LOCK_EX)
    with tempfile.TemporaryDirectory() as tmp:
        path = lab_inventory_copy(Path(tmp), "mail-bench")
        inventory = load_inventory(path)
        pool = HostPool(inventory)
        old, new = pool.get("old"), pool.get("new")
        had_key = new.run(["test", "-e", TRANSFER_KEY], check=False).exit_code == 0
        run_steps(path, "transfer/key,transfer/authorize")
        pre, final = [], []
        try:
            for _ in range(args.runs):
                old.run(["rm", "-rf", SOURCE])
                old.run(["python3", "-c", MAKE, SOURCE, str(args.users), str(args.messages)], timeout=600)
                new.run(["sh", "-c", f"rm -rf {DEST} && mkdir -p {DEST}"])
                pre.append(timed(new, list(rsync_pull(inventory, SOURCE, DEST, "--delete"))))
                old.run(["python3", "-c", CHANGE, SOURCE, str(args.users), str(args.new)], timeout=600)
                final.append(timed(new, list(rsync_pull(inventory, SOURCE, DEST, "--delete"))))
        finally:
            old.run(["rm", "-rf", SOURCE])
            new.run(["rm", "-rf", "/srv/mail-bench"])
            pool.close()
            if not had_key:
                run_steps(path, "transfer/revoke")
    lock.close()
    total = args.users * args.messages
    print(
        f"mailboxes: {args.users} x {args.messages} messages ({total} in all), {args.new} new per mailbox "
        f"and 5 % flag changes before the final sync, {args.runs} runs"
    )
    print(f"pre-sync   median {statistics.median(pre):6.2f} s  (min {min(pre):.2f}, max {max(pre):.2f})")
    print(f"final sync median {statistics.median(final):6.2f} s  (min {min(final):.2f}, max {max(final):.2f})")
    figures = {
        "mailboxes": args.users,
        "messages": total,
        "new_per_mailbox": args.new,
        "runs": args.runs,
        "pre_sync_seconds_median": statistics.median(pre),
        "final_sync_seconds_median": statistics.median(final),
    }
    print(f"written: {save('mail_sync', figures)}")


if __name__ == "__main__":
    main()
