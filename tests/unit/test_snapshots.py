"""The dry-run snapshots hold Traefik's own certificate writes apart without letting an engine's
change through."""

from __future__ import annotations

from tests.integration.snapshots import differences


def snap(acme: dict[str, str], routed: list[str]) -> dict[str, object]:
    return {"new/srv": {"traefik/traefik.yml": "100644 abc"}, "acme.json": acme, "routed": routed}


BEFORE = snap(
    {"mode": "100600", "le account": "a1", "le certificate club.test": "c1"}, ["admin.club.test", "club.test"]
)


def test_a_certificate_traefik_got_for_a_router_that_was_there_before_is_not_a_difference() -> None:
    after = snap({**BEFORE["acme.json"], "le certificate admin.club.test": "c2"}, BEFORE["routed"])  # type: ignore[dict-item,arg-type]
    assert differences(BEFORE, after) == []


def test_a_certificate_for_a_name_no_router_asked_for_is_a_difference() -> None:
    after = snap({**BEFORE["acme.json"], "le certificate shop.club.test": "c3"}, BEFORE["routed"])  # type: ignore[dict-item,arg-type]
    assert differences(BEFORE, after) == ["acme.json/le certificate shop.club.test: None -> c3"]


def test_a_changed_certificate_account_or_mode_is_a_difference() -> None:
    after = snap(
        {"mode": "100644", "le account": "a2", "le certificate club.test": "c9"},
        BEFORE["routed"],  # type: ignore[arg-type]
    )
    assert len(differences(BEFORE, after)) == 3


def test_a_new_router_is_a_difference_even_when_its_certificate_would_be_traefiks_own() -> None:
    after = snap({**BEFORE["acme.json"], "le certificate www.club.test": "c4"}, [*BEFORE["routed"], "www.club.test"])  # type: ignore[dict-item,misc]
    assert differences(BEFORE, after) == [
        "acme.json/le certificate www.club.test: None -> c4",
        "routed: ['www.club.test']",
    ]
