"""The mail domain's records as pure functions (steps/maildns.py): MX values kept as a set with
their preferences, SPF records that get the new host beside the old one; TXT record texts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runbook.dns import txt_record, txt_text
from runbook.dns.values import RRsetValue
from steps.maildns import Reader, Spf, is_spf, mx_target, parse_term, spf_decision, switched_mx

OLD = ("192.0.2.10", "2001:db8::10")
NEW = ("192.0.2.20", "2001:db8::20")
ZONE = "club.example"


def zone(records: dict[tuple[str, str], list[str]]) -> Reader:
    def read(name: str, rdtype: str) -> RRsetValue | None:
        values = records.get((name, rdtype))
        return RRsetValue.of(300, values) if values else None

    return read


NO_RECORDS = zone({})


def decide(text: str, read: Reader = NO_RECORDS, new: tuple[str, ...] = NEW) -> Spf:
    return spf_decision(text, OLD, new, read, ZONE, ZONE)


# -- MX -----------------------------------------------------------------------------------------


def on_old(*names: str) -> Callable[[str], bool]:
    return lambda target: target in names


def test_mx_values_pointing_at_the_old_host_point_at_the_mail_host_with_their_own_preference():
    values = ["10 old.club.example.", "20 mx.backup.example."]
    assert switched_mx(values, "mail.club.example", on_old("old.club.example")) == (
        "10 mail.club.example.",
        "20 mx.backup.example.",
    )


def test_an_mx_at_the_mail_host_and_a_backup_elsewhere_need_no_change():
    values = ["10 mail.club.example.", "20 mx.backup.example."]
    asked: list[str] = []

    def old(target: str) -> bool:
        asked.append(target)
        return False

    assert switched_mx(values, "mail.club.example.", old) == tuple(values)
    assert asked == ["mx.backup.example"]  # the mail host's own name is never looked up


def test_a_rewritten_mx_value_that_repeats_one_already_there_appears_once():
    values = ["10 mail.club.example.", "10 club.example."]
    assert switched_mx(values, "mail.club.example", on_old("club.example")) == ("10 mail.club.example.",)


def test_the_null_mx_has_no_target_and_is_kept():
    assert mx_target("0 .") == ""
    assert switched_mx(["0 ."], "mail.club.example", on_old("")) == ("0 .",)


# -- TXT texts ------------------------------------------------------------------------------------


def test_txt_text_joins_the_strings_of_a_record_and_txt_record_quotes_and_splits_long_text():
    assert txt_text('"v=spf1 ip4:192.0.2.10" " -all"') == "v=spf1 ip4:192.0.2.10 -all"
    long = "v=spf1 " + " ".join(f"ip4:198.51.100.{n}" for n in range(30)) + " -all"
    record = txt_record(long)
    assert record.count('" "') == len(long.encode()) // 255  # strings of at most 255 bytes
    assert txt_text(record) == long
    assert txt_record('say "hi"') == '"say \\"hi\\""'


def test_is_spf_needs_the_version_then_a_space_or_nothing():
    assert is_spf("v=spf1 -all") and is_spf("V=SPF1") and is_spf("v=spf1")
    assert not is_spf("v=spf10 -all") and not is_spf("google-site-verification=x") and not is_spf("")


def test_terms_are_read_with_qualifiers_prefix_lengths_and_modifiers():
    assert parse_term("-ip4:192.0.2.0/24").qualifier == "-"
    assert parse_term("-ip4:192.0.2.0/24").cidr4 == 24
    assert parse_term("ip6:2001:db8::/32").argument == "2001:db8::"
    term = parse_term("a:mail.club.example/24//64")
    assert (term.name, term.argument, term.cidr4, term.cidr6) == ("a", "mail.club.example", 24, 64)
    assert parse_term("redirect=_spf.example.net").modifier
    assert parse_term("ip4:192.0.2.1/x").malformed
    assert parse_term("ip4:192.0.2.1/33").malformed and parse_term("a/24//129").malformed
    assert decide("v=spf1 ip4:192.0.2.10/40 -all").unevaluated == ("ip4:192.0.2.10/40 (not understood)",)


# -- SPF ------------------------------------------------------------------------------------------

SPF_CASES = [
    # (case, record, zone, new host's addresses, state, new record or None)
    (
        "ip4 and ip6 literals: the new host's go in right after each",
        "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all",
        {},
        NEW,
        "add",
        "v=spf1 ip4:192.0.2.10 ip4:192.0.2.20 ip6:2001:db8::10 ip6:2001:db8::20 -all",
    ),
    (
        "only ip4:OLD: both of the new host's addresses follow it",
        "v=spf1 ip4:192.0.2.10 ~all",
        {},
        NEW,
        "add",
        "v=spf1 ip4:192.0.2.10 ip4:192.0.2.20 ip6:2001:db8::20 ~all",
    ),
    (
        "a new host without IPv6 gets only ip4",
        "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all",
        {},
        ("192.0.2.20",),
        "add",
        "v=spf1 ip4:192.0.2.10 ip4:192.0.2.20 ip6:2001:db8::10 -all",
    ),
    (
        "the record names the new host already: done",
        "v=spf1 ip4:192.0.2.10 ip4:192.0.2.20 ip6:2001:db8::10 ip6:2001:db8::20 -all",
        {},
        NEW,
        "done",
        None,
    ),
    (
        "a network that holds both hosts: done",
        "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/64 -all",
        {},
        NEW,
        "done",
        None,
    ),
    (
        "a network that holds the old host only: the new host goes after it",
        "v=spf1 ip4:192.0.2.8/30 -all",
        {},
        ("192.0.2.20",),
        "add",
        "v=spf1 ip4:192.0.2.8/30 ip4:192.0.2.20 -all",
    ),
    (
        "the + qualifier is kept",
        "v=spf1 +ip4:192.0.2.10 -all",
        {},
        ("192.0.2.20",),
        "add",
        "v=spf1 +ip4:192.0.2.10 +ip4:192.0.2.20 -all",
    ),
    (
        "a failing mention of the old host is no authorization",
        "v=spf1 -ip4:192.0.2.10 ip4:198.51.100.1 -all",
        {},
        NEW,
        "not-old",
        None,
    ),
    (
        "`a` of the mail domain resolves to the old host: after `a`",
        "v=spf1 a -all",
        {("club.example", "A"): ["192.0.2.10"]},
        ("192.0.2.20",),
        "add",
        "v=spf1 a ip4:192.0.2.20 -all",
    ),
    (
        "`mx`, through the MX target's address in the zone",
        "v=spf1 mx -all",
        {("club.example", "MX"): ["10 mail.club.example."], ("mail.club.example", "A"): ["192.0.2.10"]},
        ("192.0.2.20",),
        "add",
        "v=spf1 mx ip4:192.0.2.20 -all",
    ),
    (
        "`mx` once the mail host points at the new host: done",
        "v=spf1 mx -all",
        {("club.example", "MX"): ["10 mail.club.example."], ("mail.club.example", "A"): ["192.0.2.20"]},
        ("192.0.2.20",),
        "done",
        None,
    ),
    (
        "a literal beside `mx` is where the new address goes",
        "v=spf1 mx ip4:192.0.2.10 -all",
        {("club.example", "MX"): ["10 mail.club.example."], ("mail.club.example", "A"): ["192.0.2.10"]},
        ("192.0.2.20",),
        "add",
        "v=spf1 mx ip4:192.0.2.10 ip4:192.0.2.20 -all",
    ),
    (
        "mechanisms after all are never reached: no anchor there",
        "v=spf1 a -all ip4:192.0.2.10",
        {("club.example", "A"): ["192.0.2.10"]},
        ("192.0.2.20",),
        "add",
        "v=spf1 a ip4:192.0.2.20 -all ip4:192.0.2.10",
    ),
    (
        "an include only (not followed): nothing is added",
        "v=spf1 include:_spf.hoster.example -all",
        {},
        NEW,
        "not-old",
        None,
    ),
    (
        "`+all` lets everyone pass: done",
        "v=spf1 +all",
        {},
        NEW,
        "done",
        None,
    ),
]


@pytest.mark.parametrize(
    ("record", "records", "new", "state", "wanted"),
    [c[1:] for c in SPF_CASES],
    ids=[c[0] for c in SPF_CASES],
)
def test_spf_decision(record, records, new, state, wanted):
    decision = decide(record, zone(records), new)
    assert decision.state == state, decision
    assert decision.record == wanted


def test_the_terms_the_engine_does_not_evaluate_are_named():
    decision = decide(
        "v=spf1 include:_spf.hoster.example a:mail.%{d} ip4:192.0.2.10 exists:x.example redirect=y.example"
    )
    assert decision.unevaluated == (
        "include:_spf.hoster.example",
        "a:mail.%{d}",
        "exists:x.example",
        "redirect=y.example",
    )
    assert decision.state == "add"


def test_an_mx_term_with_a_backup_target_outside_the_zone_says_which_it_did_not_resolve():
    read = zone({("club.example", "MX"): ["10 mail.club.example.", "20 mx.backup.example."]})
    decision = decide("v=spf1 mx -all", read)
    assert decision.unevaluated == ("mx (its targets outside the zone: mx.backup.example)",)


def test_spf_decision_is_idempotent():
    first = decide("v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 include:_spf.hoster.example -all")
    assert first.state == "add"
    assert first.record is not None
    again = decide(first.record)
    assert again.state == "done" and again.record is None
