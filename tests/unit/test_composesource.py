"""The compose+Traefik source (runbook/services/composesource.py) as hosts/lab-next.yaml names it:
where its data is, the Traefik route its freeze writes, the db container its dumps come from, the
steps an upgrade from it has (the certificates carried, no certbot or Apache steps), and where its
mail server runs commands and keeps files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from runbook.errors import RunbookError
from runbook.inventory import load_inventory
from runbook.services import compose
from runbook.services.adapters import ComposeTraefikSource, source_for
from runbook.services.composesource import frozen_route, probe_path
from steps import build_steps

REPO = Path(__file__).resolve().parents[2]
NEXT = REPO / "hosts" / "lab-next.yaml"


def site(name: str):  # type: ignore[no-untyped-def]
    return next(s for s in load_inventory(NEXT).sites if s.name == name)


def test_the_next_inventory_names_a_compose_source_whose_data_are_the_projects_bind_mounts() -> None:
    inventory = load_inventory(NEXT)
    source = source_for(inventory)
    assert isinstance(source, ComposeTraefikSource)
    www = site("www")
    assert source.data_path(www, "/var/www/www") == "/srv/www/data/var/www/www"
    # where the new host's target put it when hosts/lab.yaml moved the site
    assert source.data_path(www, "/var/www/www") == compose.data_path(
        load_inventory(REPO / "hosts" / "lab.yaml"), www, "/var/www/www"
    )
    assert source.serves(None, www) == ("https", 443)  # type: ignore[arg-type]


def test_the_frozen_route_outranks_the_docker_provider_and_verifies_the_target_under_the_sites_name() -> None:
    www = site("www")
    document = yaml.safe_load(frozen_route(www, "https://127.0.0.13", "-----BEGIN CERTIFICATE-----\n"))
    routers = document["http"]["routers"]
    main, probe = routers["runbook-freeze-www"], routers["runbook-freeze-www-probe"]
    assert main["rule"] == compose.host_rule(www.domains) and main["entryPoints"] == ["https"]
    # the docker provider's routers have their rule's length as priority
    assert main["priority"] > len(compose.host_rule(www.domains)) + 1000
    assert probe["priority"] > main["priority"] and probe["service"] == "ping@internal"
    assert probe_path(www) in probe["rule"] and probe["entryPoints"] == ["http"]
    service = document["http"]["services"]["runbook-freeze-www"]["loadBalancer"]
    assert service["servers"] == [{"url": "https://127.0.0.13"}] and service["passHostHeader"] is True
    transport = document["http"]["serversTransports"][service["serversTransport"]]
    assert transport["serverName"] == "club.test"
    assert transport["rootCAs"] == ["/etc/traefik/dynamic/runbook-freeze-www-root.pem"]
    headers = document["http"]["middlewares"]["runbook-freeze-www"]["headers"]["customResponseHeaders"]
    assert headers == {"X-Runbook-Frozen": "www"}
    # with Let's Encrypt (no ACME root to fetch) the system's roots verify the target
    plain = yaml.safe_load(frozen_route(www, "https://127.0.0.13", None))
    assert "rootCAs" not in plain["http"]["serversTransports"]["runbook-freeze-www"]


def test_databases_are_dumped_in_their_sites_db_container_and_an_unknown_one_is_an_error() -> None:
    source = source_for(load_inventory(NEXT))
    argv = source.dump_argv("/srv/runbook-backups/shop", ("shop",), changes=True)
    assert argv[:2] == ("sh", "-c") and "mysqlbinlog_at()" in argv[2]
    assert argv[3:] == ("dump", "shop_db", "/srv/runbook-backups/shop", "--changes", "shop")
    assert source.import_argv("/d", ("blog",))[3:] == ("import", "blog_db", "/d", "blog")
    with pytest.raises(RunbookError, match="no site of the inventory has the database"):
        source.dump_argv("/d", ("nope",))


def test_an_upgrade_from_a_compose_host_carries_the_certificates_and_has_no_certbot_or_apache_steps() -> None:
    ids = [s.id for s in build_steps(load_inventory(NEXT))]
    assert ids.index("provision/acme-carry") > ids.index("transfer/authorize")
    assert ids.index("provision/acme-carry") < ids.index("site:www/pre-sync")
    for apache_only in ("provision/acme-relay", "preflight/certificates", "finish/old-renewals", "finish/decommission"):
        assert apache_only not in ids
    lab_ids = [s.id for s in build_steps(load_inventory(REPO / "hosts" / "lab.yaml"))]
    assert "provision/acme-relay" in lab_ids and "provision/acme-carry" not in lab_ids


def test_a_compose_sources_mail_server_runs_in_its_container_and_keeps_its_files_in_the_project() -> None:
    source = source_for(load_inventory(NEXT))
    assert isinstance(source, ComposeTraefikSource)
    assert source.mail_command(["doveadm", "reload"]) == ("docker", "exec", "mail_server", "doveadm", "reload")
    assert source.mail_path("/etc/runbook/passwd") == "/srv/mail/config/passwd"
    assert source.mail_path("/etc/dovecot/dovecot.conf") == "/srv/mail/config/dovecot.conf"
    assert source.mail_path("/etc/dkimkeys/lab2026.private") == "/srv/mail/config/dkim/lab2026.private"
    with pytest.raises(RunbookError, match="mail_server names /etc/postfix/main.cf, which is not in a folder"):
        source.mail_path("/etc/postfix/main.cf")
    # the hold edits the project's main.cf (the container reads the folder), copied and reloaded in it
    assert source.postfix_main_cf() == "/srv/mail/config/main.cf" and source.postfix_master_cf() is None
    check, reload = source.postfix_apply()
    assert check[:3] == ("docker", "exec", "mail_server") and check[-1].endswith("&& postfix check")
    assert reload[-1] == "cp /etc/runbook/main.cf /etc/postfix/main.cf && postfix reload"
    assert source.dovecot_include() == "/etc/runbook/runbook-imap-proxy.conf"


def test_a_compose_sources_cron_jobs_are_the_ones_this_engine_carried() -> None:
    from steps import siteapp

    mitglieder = site("mitglieder")
    # in the project's cron service: frozen with the site's containers, nothing to pause on the host
    assert siteapp.old_cron_jobs(mitglieder, "compose-traefik") == []
    on_host = dataclasses.replace(
        mitglieder, cron=tuple(dataclasses.replace(j, on_new="host") for j in mitglieder.cron)
    )
    [(kind, where, line, command)] = siteapp.old_cron_jobs(on_host, "compose-traefik")
    assert (kind, where) == ("file", "/etc/cron.d/runbook-mitglieder")
    assert line in siteapp.host_cron_text(on_host, "mitglieder_fpm").splitlines()
    assert command == "php /var/www/mitglieder/cron.php"
    # an Apache host runs the inventory's own line
    assert siteapp.old_cron_jobs(mitglieder)[0][2] == mitglieder.cron[0].line


def test_the_safety_nets_mysqldump_runs_in_the_db_container_of_the_database_it_dumps(tmp_path: Path) -> None:
    import subprocess

    fake = tmp_path / "docker"
    fake.write_text('#!/bin/sh\nprintf "%s|" "$@"\n')
    fake.chmod(0o755)
    prelude = source_for(load_inventory(NEXT)).mysqldump_prelude(("shop", "blog"))
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}

    def dump(db: str) -> subprocess.CompletedProcess[str]:
        command = prelude + f"mysqldump --single-transaction --databases {db}"
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, check=False)

    shop = dump("shop")
    assert shop.returncode == 0 and shop.stdout.startswith("exec|shop_db|sh|-c|")
    assert shop.stdout.endswith("|mysqldump|--single-transaction|--databases|shop|")
    assert dump("blog").stdout.startswith("exec|blog_db|")
    stray = dump("other")
    assert stray.returncode == 1 and "no db container holds other" in stray.stderr
    with pytest.raises(RunbookError, match="no site of the inventory has the database"):
        source_for(load_inventory(NEXT)).mysqldump_prelude(("nowhere",))
    assert source_for(load_inventory(REPO / "hosts" / "lab.yaml")).mysqldump_prelude(("shop",)) == ""
