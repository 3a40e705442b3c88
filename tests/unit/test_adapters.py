"""Source and target kinds (runbook/services/adapters.py): the defaults are today's servers, an
unknown kind is an error that lists the known ones, and the adapters give the steps what they ask:
the Apache source's mail hold and release (its Postfix, on a fake old host), and the databases'
dump and import commands on either side."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runbook.actions import PutFile, RunCommand
from runbook.context import RunContext
from runbook.errors import CommandFailed, InventoryError, RunbookError
from runbook.inventory import Inventory, load_inventory
from runbook.remote.scripts import script
from runbook.services import postfix
from runbook.services.adapters import SOURCES, TARGETS, ApacheSource, ComposeTraefikTarget, source_for, target_for
from runbook.services.source import CARRYBACK_IMPORT
from runbook.services.target import DB_IMPORT
from tests.steps.fakes import FakeHost
from tests.steps.test_cases import build

REPO = Path(__file__).resolve().parents[2]


def lab(**kinds: str) -> Inventory:
    inventory = load_inventory(REPO / "hosts" / "lab.yaml")
    hosts = {name: dataclasses.replace(host, kind=kinds.get(name, host.kind)) for name, host in inventory.hosts.items()}
    return dataclasses.replace(inventory, hosts=hosts)


def test_without_a_kind_the_old_host_is_apache_and_the_new_host_compose_behind_traefik() -> None:
    assert isinstance(source_for(lab()), ApacheSource)
    assert isinstance(target_for(lab()), ComposeTraefikTarget)
    assert isinstance(source_for(lab(old="apache")), ApacheSource)


@pytest.mark.parametrize(("role", "find"), [("old", source_for), ("new", target_for)])
def test_an_unknown_kind_is_an_error_that_lists_the_known_ones(role: str, find) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InventoryError) as caught:
        find(lab(**{role: "swarm"}))
    known = SOURCES if role == "old" else TARGETS
    assert f"hosts.{role}.kind: unknown kind 'swarm'" in str(caught.value)
    assert f"known: {', '.join(sorted(known))}" in str(caught.value)


def test_the_compose_target_names_where_a_site_lives_and_how_it_starts_and_holds() -> None:
    inventory = lab()
    target, site = target_for(inventory), inventory.sites[0]
    assert target.project_file(site) == f"/srv/{site.name}/docker-compose.yml"
    assert target.data_path(site, "/var/www/www") == f"/srv/{site.name}/data/var/www/www"
    assert target.app_container(site) == f"{site.name}_app"
    assert target.start_argv({"compose": "v2"}, site)[:2] == ("docker", "compose")
    assert target.stop_argv({}, site)[0] == "docker-compose" and target.stop_argv({}, site)[-1] == "down"
    assert target.hold_argv(site)[-2:] == ("freeze", f"{site.name}_app")
    assert target.release_argv(site)[-2:] == ("thaw", f"{site.name}_app")


# -- the Apache source's mail: its Postfix (runbook/services/postfix.py) -------------------------

MAIN = "myhostname = mail.club.test\nvirtual_mailbox_domains = club.test\n"
MASTER = "smtp      inet  n       -       y       -       -       smtpd\n"
RELAY_TO = "127.0.0.12"


def old_host(tmp_path: Path, files: dict[str, str], commands: list[dict[str, object]] | None = None) -> RunContext:
    """A run whose old host is a fake (tests/steps/fakes.py) holding `files` and answering `commands`."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    return build({"hosts": {"old": {"files": files, "commands": commands or []}}}, tmp_path)


def asked(ctx: RunContext) -> list[list[str]]:
    host = ctx.hosts.get("old")
    assert isinstance(host, FakeHost)
    return host.asked


def test_the_apache_source_holds_mail_in_main_cf_and_master_cf_then_checks_and_reloads(tmp_path: Path) -> None:
    ctx = old_host(tmp_path, {postfix.MAIN_CF: MAIN, postfix.MASTER_CF: MASTER})
    source = source_for(ctx.inventory)
    files = source.mail_hold_files(ctx, RELAY_TO)
    assert files[postfix.MAIN_CF] == (MAIN, postfix.held_main_cf(MAIN, "club.test", RELAY_TO, hold=True))
    assert files[postfix.MASTER_CF] == (MASTER, postfix.relay_master_cf(MASTER))
    actions = source.mail_hold_actions(ctx, RELAY_TO)
    assert [a.describe().split(" (")[0] for a in actions] == [
        "old: write /etc/postfix/main.cf",
        "old: write /etc/postfix/master.cf",
        "old$ postfix check",
        "old$ postfix reload",
    ]
    assert [a.describe() for a in source.mail_unhold_actions()] == ["old$ postfix reload", "old$ postqueue -f"]


def test_a_broken_postfix_check_stops_the_hold_before_postfix_reloads(tmp_path: Path) -> None:
    held = {
        postfix.MAIN_CF: postfix.held_main_cf(MAIN, "club.test", RELAY_TO, hold=True),
        postfix.MASTER_CF: postfix.relay_master_cf(MASTER),
    }
    broken = {"argv": ["postfix", "check"], "exit": 1, "stderr": "postfix: fatal: /etc/postfix/main.cf: bad line"}
    ctx = old_host(tmp_path, held, [broken])
    actions = source_for(ctx.inventory).mail_hold_actions(ctx, RELAY_TO)
    assert all(isinstance(a, RunCommand) for a in actions)  # the files hold already: nothing to write
    with pytest.raises(CommandFailed, match="bad line"):
        for action in actions:  # as the runner applies them: in order, the first failure stops the rest
            action.apply(ctx)
    assert ["postfix", "reload"] not in asked(ctx)


@pytest.mark.parametrize(
    ("deferred", "held", "seen"),
    [("runbook-relay\n", True, "defer_transports = runbook-relay"), ("\n", False, "defer_transports = -")],
)
def test_the_apache_source_says_whether_the_running_postfix_holds(
    tmp_path: Path, deferred: str, held: bool, seen: str
) -> None:
    ctx = old_host(tmp_path, {}, [{"argv": list(postfix.DEFERRED), "stdout": deferred}])
    assert source_for(ctx.inventory).mail_held(ctx) == (held, seen)


def test_the_apache_source_releases_by_relaying_main_cf_and_flushing_once_relayed_it_is_done(tmp_path: Path) -> None:
    held = postfix.held_main_cf(MAIN, "club.test", RELAY_TO, hold=True)
    ctx = old_host(tmp_path, {postfix.MAIN_CF: held})
    source = source_for(ctx.inventory)
    assert not source.mail_relayed(ctx, RELAY_TO)
    release = source.mail_release_actions(ctx, RELAY_TO)
    assert isinstance(release[0], PutFile) and "defer_transports" not in release[0].content
    assert [a.describe() for a in release[1:]] == ["old$ postfix reload", "old$ postqueue -f"]
    relayed = postfix.held_main_cf(held, "club.test", RELAY_TO, hold=False)
    ctx = old_host(tmp_path / "relayed", {postfix.MAIN_CF: relayed})
    assert source.mail_relayed(ctx, RELAY_TO)
    assert [a.describe() for a in source.mail_release_actions(ctx, RELAY_TO)] == [
        "old$ postfix reload",
        "old$ postqueue -f",
    ]
    assert not source.mail_relayed(ctx, "192.0.2.9")  # relayed, but not to this address


@pytest.mark.parametrize(("output", "count"), [("3\n", 3), ("0\n", 0), ("", 0), ("postqueue: fatal\n", 0)])
def test_the_apache_source_counts_its_backlog_and_flushes_it(tmp_path: Path, output: str, count: int) -> None:
    ctx = old_host(
        tmp_path, {}, [{"argv": ["sh", "-c", postfix.BACKLOG], "stdout": output}, {"argv": ["postqueue", "-f"]}]
    )
    source = source_for(ctx.inventory)
    assert source.mail_backlog(ctx) == count
    source.mail_flush(ctx)
    assert asked(ctx) == [["sh", "-c", postfix.BACKLOG], ["postqueue", "-f"]]


def test_the_apache_source_waits_on_the_old_host_until_postfix_delivers_nothing() -> None:
    action = source_for(lab()).mail_wait_idle_action()
    assert isinstance(action, RunCommand)
    assert (action.host, action.argv, action.timeout) == ("old", ("sh", "-c", script("mail-wait-idle.sh")), 60)


def test_the_apache_source_without_mail_says_so(tmp_path: Path) -> None:
    inventory = dataclasses.replace(lab(), mail=None)
    ctx = old_host(tmp_path, {postfix.MAIN_CF: MAIN})
    with pytest.raises(RunbookError, match="no mail section"):
        ApacheSource(inventory).mail_hold_files(ctx, RELAY_TO)


# -- databases: the source dumps and imports on the old host, the target on the new one ----------


def test_the_databases_are_dumped_and_imported_by_the_adapters_with_values_only_as_arguments() -> None:
    inventory = lab()
    source, target = source_for(inventory), target_for(inventory)
    site = next(s for s in inventory.sites if s.database)
    names = site.database.names if site.database else ()
    assert source.dump_argv("/d", names) == ("sh", "-c", script("db-dump.sh"), "dump", "/d", *names)
    assert source.import_argv("/d", names) == ("sh", "-c", CARRYBACK_IMPORT, "import", "/d", *names)
    assert target.db_container(site) == f"{site.name}_db"
    db = target.db_container(site)
    assert target.db_import_argv(site, "/n", names) == ("sh", "-c", DB_IMPORT, "import", db, "/n", *names)
    assert target.db_dump_argv(site, "/n", names) == ("sh", "-c", script("carryback-dump.sh"), "dump", db, "/n", *names)
    # both imports compare row counts with the one shared function, sent in front of them
    assert CARRYBACK_IMPORT.startswith(script("db-rows.sh")) and DB_IMPORT.startswith(script("db-rows.sh"))
    assert CARRYBACK_IMPORT.count("rows_match") == DB_IMPORT.count("rows_match") == 2
