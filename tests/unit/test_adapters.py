"""Source and target kinds (runbook/services/adapters.py): the defaults are today's servers, an
unknown kind is an error that lists the known ones, and the adapters give the steps what they ask."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runbook.errors import InventoryError
from runbook.inventory import Inventory, load_inventory
from runbook.services.adapters import SOURCES, TARGETS, ApacheSource, ComposeTraefikTarget, source_for, target_for

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
