"""The databases' import scripts (runbook/remote/scripts/db-import.sh on the new host,
carryback-import.sh on the old one) compare row counts with one shared function, rows_match
(db-rows.sh), sent in front of each: the texts the adapters send parse and pass shellcheck as a
whole, and run against a fake `mariadb` and `docker`, they say what they restored, or fail naming
the first table whose count differs and restore nothing after it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runbook.services.source import CARRYBACK_IMPORT
from runbook.services.target import DB_IMPORT

#: mariadb -e QUERY answers from $FAKE/now (`db.table rows` lines; `table<TAB>rows` for each
#: `SELECT 'table', COUNT(*) FROM ...` of a UNION ALL) or `SELECT 1`; without -e it
#: reads a dump from stdin into $FAKE/restored.
MARIADB = r"""#!/bin/sh
query=
while [ $# -gt 0 ]; do if [ "$1" = -e ]; then query=$2; shift; fi; shift; done
case $query in
  "") cat >> "$FAKE/restored" ;;
  "SELECT 1") echo 1 ;;
  *) printf '%s\n' "$query" | sed 's/ UNION ALL /\n/g' |
     sed 's/.*FROM `\([^`]*\)`\.`\([^`]*\)`.*/\1.\2/' | while read -r table; do
       grep "^$table " "$FAKE/now" | sed 's/^[^.]*\.\([^ ]*\) /\1\t/'
     done ;;
esac
"""
#: docker exec [-i] CONTAINER CMD...: CMD runs here; the container's name goes to $FAKE/containers.
DOCKER = r"""#!/bin/sh
shift; [ "$1" = -i ] && shift
echo "$1" >> "$FAKE/containers"; shift
exec "$@"
"""
SCRIPTS = {"db-import": DB_IMPORT, "carryback-import": CARRYBACK_IMPORT}


def fake(tmp_path: Path, now: str) -> tuple[dict[str, str], Path]:
    """PATH with the fakes first, and a dump folder for databases shop and blog (two tables each)."""
    bin_dir, dumps = tmp_path / "bin", tmp_path / "dumps"
    bin_dir.mkdir()
    dumps.mkdir()
    for name, text in (("mariadb", MARIADB), ("docker", DOCKER)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    for db in ("shop", "blog"):
        # carryback-dump.sh's names, and db-dump.sh's (a copy named by its ID, complete: .done)
        for stem in (db, f"{db}.1764612345000000000"):
            (dumps / f"{stem}.sql").write_text(f"-- {db} dump\n")
            (dumps / f"{stem}.users.sql").write_text(f"-- {db} users\n")
            (dumps / f"{stem}.counts").write_text("orders 2\nproducts 3\n")
        (dumps / f"{db}.1764612345000000000.done").write_text("")
    (tmp_path / "now").write_text(now)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FAKE=str(tmp_path))
    return env, dumps


def run(name: str, env: dict[str, str], dumps: Path) -> subprocess.CompletedProcess[str]:
    args = ["shop_db", str(dumps)] if name == "db-import" else [str(dumps)]
    argv = ["sh", "-c", SCRIPTS[name], "import", *args, "shop", "blog"]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_the_text_sent_parses_as_a_whole(name: str, shell: str) -> None:
    result = subprocess.run([shell, "-n"], input=SCRIPTS[name], capture_output=True, text=True)
    assert result.returncode == 0, f"{shell} -n {name}: {result.stderr}"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_shellcheck_finds_nothing_in_the_text_sent(name: str) -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed: apt-get install shellcheck (scripts/install.sh does)")
    result = subprocess.run(
        ["shellcheck", "--norc", "--shell=sh", "--severity=style", "--format=gcc", "-"],
        input=SCRIPTS[name],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


#: What each import says when the counts match (for each database), and when one differs.
SAID = {
    "db-import": (
        "{db}: 2 tables restored, row counts match the old host",
        "shop.orders: 5 rows on the new host, 2 on the old one",
    ),
    "carryback-import": (
        "{db}: 2 tables carried back, row counts match the new host",
        "shop.orders: 5 rows on the old host, 2 on the new one",
    ),
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_matching_counts_say_how_many_tables_each_database_restored(tmp_path: Path, name: str) -> None:
    env, dumps = fake(tmp_path, "shop.orders 2\nshop.products 3\nblog.orders 2\nblog.products 3\n")
    result = run(name, env, dumps)
    assert result.returncode == 0, result.stderr
    said = [SAID[name][0].format(db=db) for db in ("shop", "blog")]
    if name == "db-import":  # a new dump is restored in full; the final import makes the copy the primary
        said = [said[0], "shop: restored from the full dump", said[1], "blog: restored from the full dump"]
        said.append("the new host's databases are the primary now (read_only off)")
    assert result.stdout.splitlines() == said
    restored = (tmp_path / "restored").read_text()
    assert restored.startswith("-- shop dump\n") and "-- blog dump\n" in restored
    assert ("-- shop users\n" in restored) == (name == "db-import")  # accounts go to the new host only
    if name == "db-import":
        assert set((tmp_path / "containers").read_text().split()) == {"shop_db"}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_count_that_differs_fails_naming_the_table_and_stops_the_import(tmp_path: Path, name: str) -> None:
    env, dumps = fake(tmp_path, "shop.orders 5\nshop.products 3\nblog.orders 2\nblog.products 3\n")
    result = run(name, env, dumps)
    assert result.returncode == 1
    assert result.stderr.strip() == SAID[name][1] and result.stdout == ""
    assert "-- blog dump" not in (tmp_path / "restored").read_text()  # nothing after the failure
